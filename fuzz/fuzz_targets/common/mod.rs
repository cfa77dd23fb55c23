//! Structure-aware inputs shared by the `*_structured` targets: arbitrary JSON values of any
//! shape and any Unicode, with member names drawn mostly from the real JOSE / OAuth ones and
//! string values mostly realistic (with multi-byte text spliced in), overlaid on a realistic
//! base object so the fuzzer reaches the deep rules, and a compact JWS built from them that
//! is often signed with a real key.
#![allow(dead_code)]

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Member names the verifiers read (and a few neighbours).
pub const NAMES: &[&str] = &[
    "alg",
    "typ",
    "kid",
    "crit",
    "jwk",
    "cnf",
    "x5t#S256",
    "x5t",
    "x5c",
    "x5u",
    "jku",
    "jwe",
    "jkt",
    "exp",
    "nbf",
    "iat",
    "aud",
    "iss",
    "sub",
    "azp",
    "appid",
    "tid",
    "oid",
    "scp",
    "scope",
    "roles",
    "ver",
    "idtyp",
    "jti",
    "cty",
    "ext",
    "xms_ksl",
    "htm",
    "htu",
    "ath",
    "nonce",
    "at",
    "ts",
    "m",
    "u",
    "p",
    "q",
    "h",
    "kty",
    "crv",
    "x",
    "y",
    "n",
    "e",
    "d",
    "client_id",
    "access_token",
    "token_type",
    "expires_in",
    "ext_expires_in",
    "refresh_in",
    "expires_on",
    "error",
    "error_description",
];

/// Realistic string values.
pub const STRINGS: &[&str] = &[
    "ES256",
    "ES384",
    "RS256",
    "PS256",
    "HS256",
    "none",
    "at+jwt",
    "application/at+jwt",
    "JWT",
    "dpop+jwt",
    "pop",
    "k1",
    "EC",
    "RSA",
    "oct",
    "P-256",
    "P-384",
    "GET",
    "POST",
    "get",
    "https://issuer.test",
    "https://issuer.test/",
    "api://fuzz",
    "https://api.test/r",
    "https://api.test:443/r?x#y",
    "api.test",
    "/r",
    "/r/../r",
    "mtls_pop",
    "Bearer",
    "DPoP",
    "fuzz-client",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
    "sw",
    "",
    " ",
    "€",
    "é",
    "𝄞",
    "\u{0}",
];

const INSERTS: &[&str] = &[
    "é", "€", "𝄞", "\u{7f}", "\u{fffd}", "\u{202e}", "\"", "\\", ".",
];

/// A string: arbitrary Unicode, a realistic value, or a realistic value with multi-byte
/// text inserted at an arbitrary offset (a character boundary: the values are ASCII).
pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => String::arbitrary(u)?,
        1 => (*u.choose(STRINGS)?).to_owned(),
        _ => {
            let base = *u.choose(STRINGS)?;
            let at = u.int_in_range(0..=base.len())?;
            let (head, tail) = if base.is_char_boundary(at) {
                base.split_at(at)
            } else {
                (base, "")
            };
            format!("{head}{}{tail}", u.choose(INSERTS)?)
        }
    })
}

/// A member name: mostly a real one.
pub fn name(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(7u8, 8u8)? {
        Ok((*u.choose(NAMES)?).to_owned())
    } else {
        string(u)
    }
}

/// A number: small, huge, negative, fractional, or a timestamp near now.
pub fn number(u: &mut Unstructured<'_>, now: i64) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => Value::from(i64::arbitrary(u)?),
        1 => Value::from(u64::arbitrary(u)?),
        2 => Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
        3 => Value::from(now.saturating_add(i64::from(i16::arbitrary(u)?))),
        _ => Value::from(i64::from(u8::arbitrary(u)?)),
    })
}

/// Any JSON value, at most `depth` levels of nesting.
pub fn value(u: &mut Unstructured<'_>, depth: u32, now: i64) -> Result<Value> {
    let top = if depth == 0 { 3 } else { 5 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => number(u, now)?,
        3 => Value::String(string(u)?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(value(u, depth - 1, now)?);
            }
            Value::Array(a)
        }
        _ => Value::Object(object(u, depth - 1, now)?),
    })
}

/// An object of up to eight members.
pub fn object(u: &mut Unstructured<'_>, depth: u32, now: i64) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=8)?;
    let mut m = Map::new();
    for _ in 0..n {
        m.insert(name(u)?, value(u, depth, now)?);
    }
    Ok(m)
}

/// Edits of a realistic base object: members replaced or added (any value), members removed.
#[derive(Debug)]
pub struct Overlay {
    pub set: Map<String, Value>,
    pub remove: Vec<String>,
    /// Replace the whole object with `set` (else overlay the base).
    pub replace: bool,
}

impl<'a> Arbitrary<'a> for Overlay {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let now = certbound_core::now_unix();
        let set = object(u, 3, now)?;
        let n = u.int_in_range(0..=2)?;
        let mut remove = Vec::with_capacity(n);
        for _ in 0..n {
            remove.push(name(u)?);
        }
        Ok(Self {
            set,
            remove,
            replace: u.ratio(1u8, 8u8)?,
        })
    }
}

impl Overlay {
    /// No edit (the base as it is).
    pub fn none() -> Self {
        Self {
            set: Map::new(),
            remove: Vec::new(),
            replace: false,
        }
    }

    /// `base` with the edits applied.
    pub fn apply(&self, base: &Map<String, Value>) -> Map<String, Value> {
        let mut m = if self.replace {
            Map::new()
        } else {
            base.clone()
        };
        for r in &self.remove {
            m.remove(r);
        }
        for (k, v) in &self.set {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

/// How a part is encoded: as the JSON of the (edited) object, or as raw text (duplicate
/// members, bad JSON, non-objects).
#[derive(Debug, Arbitrary)]
pub enum Part {
    Json(Overlay),
    Raw(String),
}

impl Part {
    pub fn bytes(&self, base: &Map<String, Value>) -> Vec<u8> {
        match self {
            Self::Json(o) => serde_json::to_vec(&o.apply(base)).unwrap_or_default(),
            Self::Raw(s) => s.as_bytes().to_vec(),
        }
    }
}

/// The signature part.
#[derive(Debug, Arbitrary)]
pub enum Signature {
    /// Signed with the fixture's real key (the common case: the claim rules run).
    Real,
    /// Signed with the real key, then one byte of the signature flipped.
    Flipped(u16),
    /// These bytes, base64url-encoded.
    Bytes(Vec<u8>),
    /// This text as the third part.
    Text(String),
}

/// A compact JWS: the two parts and a signature.
#[derive(Debug, Arbitrary)]
pub struct Jws {
    pub header: Part,
    pub payload: Part,
    pub signature: Signature,
    /// Weight towards [`Signature::Real`].
    pub force_real: bool,
}

impl Jws {
    /// Builds the token from the bases, signing with `key`/`alg` when asked.
    pub fn build(
        &self,
        header: &Map<String, Value>,
        payload: &Map<String, Value>,
        key: &certbound_core::PrivateKey,
        alg: certbound_core::JwsAlgorithm,
    ) -> String {
        use certbound_core::b64;
        let input = format!(
            "{}.{}",
            b64::encode(self.header.bytes(header)),
            b64::encode(self.payload.bytes(payload))
        );
        let real = || key.sign(alg, input.as_bytes()).unwrap_or_default();
        let sig = match (&self.signature, self.force_real) {
            (_, true) | (Signature::Real, _) => b64::encode(real()),
            (Signature::Flipped(i), _) => {
                let mut s = real();
                let n = s.len().max(1);
                if let Some(b) = s.get_mut(usize::from(*i) % n) {
                    *b ^= 1;
                }
                b64::encode(s)
            }
            (Signature::Bytes(b), _) => b64::encode(b),
            (Signature::Text(t), _) => t.clone(),
        };
        format!("{input}.{sig}")
    }
}

/// `v` as an object (the bases are written as JSON literals).
pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
