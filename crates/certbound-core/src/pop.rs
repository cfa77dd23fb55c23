//! Proof-of-possession at the application layer: DPoP proofs (RFC 9449) and Microsoft's
//! signed HTTP request ("PoP", SHR), on both sides — creating proofs with a [`ProofKey`]
//! and verifying a compact JWS against the public JWK it embeds.
//!
//! Where TLS is terminated by a proxy the RFC 8705 certificate binding cannot reach the API;
//! these schemes bind the token to a key the client proves per request instead.
//!
//! - [`ProofKey`]: the app's proof key (EC P-256 by default, RSA/PS256 possible), kept in
//!   memory, rotatable, never shown by `Debug`;
//! - [`ProofKey::dpop_proof`] / [`ProofKey::signed_http_request`]: one proof per request;
//! - [`ProofKey::req_cnf`] and [`ProofKey::thumbprint`]: what the token request carries
//!   (`req_cnf` for `token_type=pop`; the DPoP header carries the key itself);
//! - [`verify_dpop_proof`] / [`verify_signed_http_request`]: the checks a resource server
//!   or a token endpoint makes (signature with the embedded key, `typ`, method and URL,
//!   time window, `ath`, nonce); the `jti` replay check is the caller's (it needs state).
//!
//! ```
//! use certbound_core::pop::{self, DpopExpectations, ProofKey};
//! let key = ProofKey::generate().unwrap();
//! let proof = key
//!     .dpop_proof("GET", "https://API.example:443/orders?x=1", Some("the-access-token"), None)
//!     .unwrap();
//! let now = certbound_core::now_unix();
//! let checked = pop::verify_dpop_proof(
//!     &proof,
//!     &DpopExpectations::new("GET", "https://api.example/orders", now)
//!         .access_token("the-access-token"),
//! )
//! .unwrap();
//! assert_eq!(checked.jkt, key.thumbprint());
//! assert_eq!(checked.htu, "https://api.example/orders");
//! ```

use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value, json};

use crate::b64;
use crate::jose::{Jwk, JwsAlgorithm, JwsHeader, sign_compact};
use crate::key::{KeyKind, PrivateKey};

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";
/// The `typ` of a signed HTTP request.
pub const SHR_TYP: &str = "pop";
/// Largest proof accepted by the verifiers (bytes). A DPoP proof with an RSA-4096 key is
/// about 1.5 KiB; an SHR also carries the access token.
pub const MAX_PROOF_LEN: usize = 24 * 1024;
/// The algorithms proofs may use, as advertised in `algs` challenges.
pub const PROOF_ALGORITHMS: [JwsAlgorithm; 4] = [
    JwsAlgorithm::ES256,
    JwsAlgorithm::ES384,
    JwsAlgorithm::RS256,
    JwsAlgorithm::PS256,
];

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof could not be made or was refused. The text names the rule, never a value
/// taken from the proof or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// Longer than [`MAX_PROOF_LEN`].
    #[error("proof too large")]
    TooLarge,
    /// Not `header.payload.signature` with strict base64url JSON objects.
    #[error("proof is not a compact JWS ({0})")]
    Malformed(&'static str),
    /// `alg` missing, `none`, HMAC or outside ES256/ES384/RS256/PS256.
    #[error("proof algorithm not accepted (use ES256, ES384, RS256 or PS256)")]
    Algorithm,
    /// `typ` is not the one the scheme requires.
    #[error("proof type (typ) must be {0}")]
    Typ(&'static str),
    /// The embedded `jwk` is missing or not a public EC/RSA key of a supported size.
    #[error("proof key (jwk) missing or not a usable public key")]
    Jwk,
    /// The embedded `jwk` carries private key members.
    #[error("proof key (jwk) contains private key material")]
    PrivateJwk,
    /// The key cannot make signatures of the proof's `alg`.
    #[error("proof key does not fit the proof's algorithm")]
    KeyAlgMismatch,
    /// The signature does not verify with the embedded key.
    #[error("proof signature invalid")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("proof claim {0} missing or malformed")]
    Claim(&'static str),
    /// `htm`/`m` is not the request's method.
    #[error("proof is for another HTTP method")]
    MethodMismatch,
    /// `htu`/`u`/`p` is not the request's URL.
    #[error("proof is for another URL")]
    UrlMismatch,
    /// `iat`/`ts` is outside the accepted window.
    #[error("proof is too old or issued in the future")]
    Stale,
    /// `ath` is missing although an access token is presented.
    #[error("proof has no ath (access token hash)")]
    AthMissing,
    /// `ath` is not the hash of the presented access token.
    #[error("proof ath does not match the access token")]
    AthMismatch,
    /// The server requires a nonce and the proof has none or another one.
    #[error("proof nonce missing or not the current server nonce")]
    Nonce,
    /// The SHR's `kid` is not the thumbprint of its `cnf.jwk`.
    #[error("signed request kid is not the thumbprint of its cnf.jwk")]
    KidMismatch,
    /// A URL given to the proof functions is not an absolute http(s) URL.
    #[error("not an absolute http(s) URL")]
    BadUrl,
    /// An HTTP method is not a token (RFC 9110 §9.1).
    #[error("not a valid HTTP method")]
    BadMethod,
    /// Making a proof failed (key generation or signing).
    #[error("cannot make the proof: {0}")]
    Sign(String),
    /// The request has no single `Host` (or HTTP/2 `:authority`) to pick the server's
    /// origin by.
    #[error("the request has no single Host or :authority naming this server")]
    HostMissing,
    /// The request's `Host`/`:authority` is none of the origins the server is configured
    /// with (RFC 9449 §11.1: a proof must name this server).
    #[error("the request's Host is not an origin of this server")]
    HostNotOrigin,
    /// The server has no origin to check proofs against: no external URL is configured and
    /// it listens on a wildcard address (or its address is unknown).
    #[error("this server has no origin to check proofs against: configure its external URL")]
    NoOrigin,
}

// ---------------------------------------------------------------------------------------
// URLs and hashes
// ---------------------------------------------------------------------------------------

/// The parts of an absolute http(s) URL a proof covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `http` or `https`, lowercase.
    pub scheme: String,
    /// Host, lowercase, with `:port` when the port is not the scheme's default.
    pub authority: String,
    /// Path with percent-encoding normalised (never empty: `/` at least).
    pub path: String,
}

impl HttpTarget {
    /// Parses an absolute `http`/`https` URL; the query and fragment are dropped.
    pub fn parse(url: &str) -> Result<Self, PopError> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or(PopError::BadUrl)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => "443",
            "http" => "80",
            _ => return Err(PopError::BadUrl),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at_checked(end).ok_or(PopError::BadUrl)?;
        if authority.is_empty() || authority.contains('@') {
            return Err(PopError::BadUrl);
        }
        let authority = authority.to_ascii_lowercase();
        // Split host and port (IPv6 literals are bracketed).
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (authority.as_str(), None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~[]:%!$&'()*+,;=".contains(&b))
        {
            return Err(PopError::BadUrl);
        }
        let authority = match port {
            None | Some("") => host.to_owned(),
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 => {
                return Err(PopError::BadUrl);
            }
            Some(p) => {
                let p = p.trim_start_matches('0');
                let p = if p.is_empty() { "0" } else { p };
                if p == default_port {
                    host.to_owned()
                } else {
                    format!("{host}:{p}")
                }
            }
        };
        let path = tail.split(['?', '#']).next().unwrap_or_default();
        let path = normalize_path(path)?;
        Ok(Self {
            scheme,
            authority,
            path,
        })
    }

    /// The RFC 9449 `htu` form: `scheme://authority/path` (no query or fragment).
    pub fn htu(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// Normalises a DPoP `htu` (RFC 9449 §4.3 with RFC 3986 §6.2.2–6.2.3): lowercase scheme
/// and host, default port removed, empty path as `/`, percent-encoding normalised, query
/// and fragment dropped.
///
/// ```
/// use certbound_core::pop::normalize_htu;
/// assert_eq!(normalize_htu("HTTPS://Api.Example:443?q=1").unwrap(), "https://api.example/");
/// assert_eq!(normalize_htu("http://h:8080/a%7eb%2f#f").unwrap(), "http://h:8080/a~b%2F");
/// assert!(normalize_htu("ftp://h/").is_err());
/// ```
pub fn normalize_htu(url: &str) -> Result<String, PopError> {
    HttpTarget::parse(url).map(|t| t.htu())
}

fn normalize_path(path: &str) -> Result<String, PopError> {
    if path.is_empty() {
        return Ok("/".into());
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PopError::BadUrl)?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PopError::BadUrl)?;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(b as char);
            i += 1;
        } else {
            return Err(PopError::BadUrl);
        }
    }
    Ok(out)
}

fn check_method(method: &str) -> Result<(), PopError> {
    if !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        Ok(())
    } else {
        Err(PopError::BadMethod)
    }
}

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    b64::encode(d.as_ref())
}

/// Whether two JWK thumbprints (base64url text) are equal, in constant time.
///
/// ```
/// use certbound_core::pop::thumbprints_equal;
/// assert!(thumbprints_equal("abc", "abc"));
/// assert!(!thumbprints_equal("abc", "abd"));
/// ```
pub fn thumbprints_equal(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// The `req_cnf` token-request parameter for a key thumbprint:
/// `base64url({"kid":"<thumbprint>"})`.
pub fn req_cnf_for(thumbprint: &str) -> String {
    b64::encode(json!({ "kid": thumbprint }).to_string())
}

/// Reads a `req_cnf` token-request parameter (what the authority does for
/// `token_type=pop`): base64url of `{"kid":"<thumbprint>"}` → the thumbprint to put into
/// the token's `cnf.kid`. The thumbprint must be 43 characters of base64url (a SHA-256).
///
/// ```
/// use certbound_core::pop::{parse_req_cnf, ProofKey};
/// let key = ProofKey::generate().unwrap();
/// assert_eq!(parse_req_cnf(&key.req_cnf()).unwrap(), key.thumbprint());
/// assert!(parse_req_cnf("e30").is_err()); // {}
/// ```
pub fn parse_req_cnf(value: &str) -> Result<String, PopError> {
    let bad = PopError::Claim("req_cnf");
    if value.len() > 1024 {
        return Err(bad);
    }
    let bytes = b64::decode(value.trim().trim_end_matches('=')).map_err(|_| bad.clone())?;
    let Ok(StrictValue(Value::Object(m))) = serde_json::from_slice::<StrictValue>(&bytes) else {
        return Err(bad);
    };
    let kid = m.get("kid").and_then(Value::as_str).ok_or(bad.clone())?;
    match b64::decode(kid) {
        Ok(d) if d.len() == 32 && kid.len() == 43 => Ok(kid.to_owned()),
        _ => Err(bad),
    }
}

fn random_id() -> Result<String, PopError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PopError::Sign("no randomness".into()))?;
    Ok(b64::encode(bytes))
}

// ---------------------------------------------------------------------------------------
// The proof key
// ---------------------------------------------------------------------------------------

struct KeyState {
    key: PrivateKey,
    alg: JwsAlgorithm,
    jwk: Jwk,
    jwk_value: Value,
    thumbprint: String,
}

impl KeyState {
    fn new(key: PrivateKey, alg: JwsAlgorithm) -> Result<Self, PopError> {
        if !key.supports(alg) {
            return Err(PopError::Sign(format!(
                "algorithm {alg} cannot be used with a {} key",
                key.describe()
            )));
        }
        let jwk = key.public_jwk();
        let thumbprint = jwk
            .thumbprint()
            .map_err(|e| PopError::Sign(e.to_string()))?;
        let jwk_value = serde_json::to_value(&jwk).map_err(|e| PopError::Sign(e.to_string()))?;
        Ok(Self {
            key,
            alg,
            jwk,
            jwk_value,
            thumbprint,
        })
    }
}

/// The app's proof-of-possession key: generated per app, kept in memory, rotatable.
///
/// Cheap to clone (clones share the key, and a [`rotate`](Self::rotate) is seen by all).
/// `Debug` shows the key type and thumbprint only.
///
/// ```
/// use certbound_core::pop::ProofKey;
/// let key = ProofKey::generate().unwrap();
/// let before = key.thumbprint();
/// key.rotate().unwrap();
/// assert_ne!(key.thumbprint(), before);
/// assert!(!format!("{key:?}").contains("\"d\""));
/// ```
#[derive(Clone)]
pub struct ProofKey {
    kind: KeyKind,
    state: Arc<RwLock<Arc<KeyState>>>,
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.current();
        f.debug_struct("ProofKey")
            .field("type", &s.key.describe())
            .field("alg", &s.alg)
            .field("thumbprint", &s.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ProofKey {
    /// A fresh EC P-256 key signing ES256 (the default, as MSAL uses for DPoP).
    pub fn generate() -> Result<Self, PopError> {
        Self::generate_kind(KeyKind::EcP256)
    }

    /// A fresh key of `kind`, signing with its default algorithm (PS256 for RSA, ES256/
    /// ES384 for EC).
    pub fn generate_kind(kind: KeyKind) -> Result<Self, PopError> {
        let key = PrivateKey::generate(kind).map_err(PopError::Sign)?;
        let alg = key.default_jws_algorithm();
        Ok(Self {
            kind,
            state: Arc::new(RwLock::new(Arc::new(KeyState::new(key, alg)?))),
        })
    }

    /// Uses an existing key with `alg` (e.g. an RSA key with RS256).
    pub fn from_private_key(key: PrivateKey, alg: JwsAlgorithm) -> Result<Self, PopError> {
        let kind = match alg {
            JwsAlgorithm::ES256 => KeyKind::EcP256,
            JwsAlgorithm::ES384 => KeyKind::EcP384,
            JwsAlgorithm::RS256 | JwsAlgorithm::PS256 => KeyKind::Rsa2048,
        };
        Ok(Self {
            kind,
            state: Arc::new(RwLock::new(Arc::new(KeyState::new(key, alg)?))),
        })
    }

    fn current(&self) -> Arc<KeyState> {
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the key with a fresh one of the same kind. Tokens bound to the old key
    /// (`cnf.jkt`/`cnf.kid`) no longer match: the client must acquire new ones (its cache
    /// key should include [`thumbprint`](Self::thumbprint)).
    pub fn rotate(&self) -> Result<(), PopError> {
        let key = PrivateKey::generate(self.kind).map_err(PopError::Sign)?;
        let alg = self.current().alg;
        let alg = if key.supports(alg) {
            alg
        } else {
            key.default_jws_algorithm()
        };
        let fresh = Arc::new(KeyState::new(key, alg)?);
        match self.state.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.current().alg
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        self.current().jwk.clone()
    }

    /// The RFC 7638 thumbprint of the public key: the value of `cnf.jkt` (DPoP) and
    /// `cnf.kid` (PoP) in tokens bound to this key.
    pub fn thumbprint(&self) -> String {
        self.current().thumbprint.clone()
    }

    /// Whether `thumbprint` is the current key's (no allocation; constant time).
    pub fn has_thumbprint(&self, thumbprint: &str) -> bool {
        thumbprints_equal(&self.current().thumbprint, thumbprint)
    }

    /// The `req_cnf` token-request parameter (`token_type=pop`).
    pub fn req_cnf(&self) -> String {
        req_cnf_for(&self.current().thumbprint)
    }

    /// A DPoP proof (RFC 9449 §4.2) for one request: header `typ: dpop+jwt`, `alg`, `jwk`;
    /// claims `jti` (random), `htm`, `htu` (normalised), `iat`, `ath` when an access token
    /// is given (resource requests) and `nonce` when the server asked for one.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, PopError> {
        self.dpop_proof_at(method, url, access_token, nonce, crate::now_unix())
    }

    /// [`dpop_proof`](Self::dpop_proof) with an explicit `iat` (tests, clock correction
    /// from a server's `Date`).
    pub fn dpop_proof_at(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: i64,
    ) -> Result<String, PopError> {
        check_method(method)?;
        let htu = normalize_htu(url)?;
        let s = self.current();
        let header = JwsHeader::new(s.alg)
            .typ(DPOP_TYP)
            .set("jwk", s.jwk_value.clone());
        let mut claims = Map::new();
        claims.insert("jti".into(), Value::String(random_id()?));
        claims.insert("htm".into(), Value::String(method.into()));
        claims.insert("htu".into(), Value::String(htu));
        claims.insert("iat".into(), Value::from(iat));
        if let Some(t) = access_token {
            claims.insert("ath".into(), Value::String(access_token_hash(t)));
        }
        if let Some(n) = nonce {
            claims.insert("nonce".into(), Value::String(n.into()));
        }
        sign_compact(&header, &claims, &s.key).map_err(|e| PopError::Sign(e.to_string()))
    }

    /// A signed HTTP request ("PoP", SHR) wrapping `access_token` for one request:
    /// header `{"alg","kid":<thumbprint>,"typ":"pop"}`, payload
    /// `{"at","ts","nonce","m","u","p","cnf":{"jwk"}}`; sent as `Authorization: PoP <shr>`.
    pub fn signed_http_request(
        &self,
        access_token: &str,
        method: &str,
        url: &str,
    ) -> Result<String, PopError> {
        self.signed_http_request_at(access_token, method, url, crate::now_unix())
    }

    /// [`signed_http_request`](Self::signed_http_request) with an explicit `ts`.
    pub fn signed_http_request_at(
        &self,
        access_token: &str,
        method: &str,
        url: &str,
        ts: i64,
    ) -> Result<String, PopError> {
        check_method(method)?;
        let target = HttpTarget::parse(url)?;
        let s = self.current();
        let header = JwsHeader::new(s.alg).kid(&s.thumbprint).typ(SHR_TYP);
        let claims = json!({
            "at": access_token,
            "ts": ts,
            "nonce": random_id()?,
            "m": method,
            "u": target.authority,
            "p": target.path,
            "cnf": { "jwk": s.jwk_value },
        });
        sign_compact(&header, &claims, &s.key).map_err(|e| PopError::Sign(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// Verification against an embedded key
// ---------------------------------------------------------------------------------------

/// A compact JWS whose signature verified with the public key it embeds.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The algorithm.
    pub alg: JwsAlgorithm,
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload.
    pub payload: Map<String, Value>,
    /// The verifying key (public members only).
    pub jwk: Jwk,
    /// Its RFC 7638 thumbprint.
    pub thumbprint: String,
}

const DUPLICATE: &str = "duplicate member";

/// A JSON value that refuses duplicate object members at any depth (serde_json keeps the
/// last one, which would let two parsers disagree about a proof's `htu` or `jwk`).
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = StrictValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(StrictValue(Value::Array(out)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(StrictValue(Value::Object(out)))
    }
}

type Decoded = (JwsAlgorithm, Map<String, Value>, Map<String, Value>);

/// Splits and decodes a compact JWS (strict base64url, JSON objects), checking the proof
/// algorithm allowlist. Nothing is verified yet.
fn decode(token: &str) -> Result<Decoded, PopError> {
    if token.len() > MAX_PROOF_LEN {
        return Err(PopError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PopError::Malformed("expected three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(PopError::Malformed("empty part"));
    }
    let obj = |part: &str, what: &'static str| -> Result<Map<String, Value>, PopError> {
        let bytes = b64::decode(part).map_err(|_| PopError::Malformed(what))?;
        match serde_json::from_slice::<StrictValue>(&bytes) {
            Ok(StrictValue(Value::Object(m))) => Ok(m),
            Err(e) if e.to_string().starts_with(DUPLICATE) => {
                Err(PopError::Malformed("duplicate JSON member"))
            }
            _ => Err(PopError::Malformed(what)),
        }
    };
    let header = obj(h, "header is not base64url JSON object")?;
    let payload = obj(p, "payload is not base64url JSON object")?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => PROOF_ALGORITHMS
            .iter()
            .copied()
            .find(|x| x.as_str() == a)
            .ok_or(PopError::Algorithm)?,
        _ => return Err(PopError::Algorithm),
    };
    Ok((alg, header, payload))
}

/// Parses a public JWK value, refusing private members and unsupported keys.
pub fn public_jwk_from_value(value: &Value) -> Result<Jwk, PopError> {
    let obj = value.as_object().ok_or(PopError::Jwk)?;
    if PRIVATE_JWK_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err(PopError::PrivateJwk);
    }
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|_| PopError::Jwk)?;
    match jwk.kty.as_str() {
        "EC" | "RSA" => Ok(jwk),
        _ => Err(PopError::Jwk),
    }
}

/// Verifies `signature` over `input` with `alg` and the public `jwk`.
pub fn verify_signature(
    jwk: &Jwk,
    alg: JwsAlgorithm,
    input: &[u8],
    sig: &[u8],
) -> Result<(), PopError> {
    let dec = |m: &Option<String>| -> Result<Vec<u8>, PopError> {
        b64::decode(m.as_deref().ok_or(PopError::Jwk)?).map_err(|_| PopError::Jwk)
    };
    match (jwk.kty.as_str(), alg) {
        ("EC", JwsAlgorithm::ES256 | JwsAlgorithm::ES384) => {
            let (crv, size, verifier): (
                &str,
                usize,
                &'static signature::EcdsaVerificationAlgorithm,
            ) = if alg == JwsAlgorithm::ES256 {
                ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED)
            } else {
                ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED)
            };
            if jwk.crv.as_deref() != Some(crv) {
                return Err(PopError::KeyAlgMismatch);
            }
            let (x, y) = (dec(&jwk.x)?, dec(&jwk.y)?);
            if x.len() != size || y.len() != size {
                return Err(PopError::Jwk);
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(verifier, &point)
                .verify(input, sig)
                .map_err(|_| PopError::BadSignature)
        }
        ("RSA", JwsAlgorithm::RS256 | JwsAlgorithm::PS256) => {
            let (n, e) = (dec(&jwk.n)?, dec(&jwk.e)?);
            let bits = n
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |i| (n.len() - i) * 8);
            if !(2048..=8192).contains(&bits) {
                return Err(PopError::Jwk);
            }
            let params: &'static signature::RsaParameters = if alg == JwsAlgorithm::PS256 {
                &signature::RSA_PSS_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, input, sig)
                .map_err(|_| PopError::BadSignature)
        }
        ("EC" | "RSA", _) => Err(PopError::KeyAlgMismatch),
        _ => Err(PopError::Jwk),
    }
}

/// Verifies a compact JWS with the public JWK it embeds — in the header member `jwk`
/// (DPoP) or in the payload's `cnf.jwk` (SHR) — checking `typ` (case-insensitive).
///
/// Only ES256, ES384, RS256 and PS256 are accepted (`none` and HMAC never); a JWK with
/// private members (`d`, `p`, `q` …) is refused.
pub fn verify_with_embedded_jwk(
    token: &str,
    location: JwkLocation,
    typ: &'static str,
) -> Result<VerifiedJws, PopError> {
    let token = token.trim();
    let (alg, header, payload) = decode(token)?;
    match header.get("typ").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case(typ) => {}
        _ => return Err(PopError::Typ(typ)),
    }
    if header.contains_key("crit") {
        return Err(PopError::Malformed("crit is not supported in proofs"));
    }
    let jwk_value = match location {
        JwkLocation::Header => header.get("jwk"),
        JwkLocation::PayloadCnf => payload
            .get("cnf")
            .and_then(Value::as_object)
            .and_then(|c| c.get("jwk")),
    }
    .ok_or(PopError::Jwk)?;
    let jwk = public_jwk_from_value(jwk_value)?;
    let (signing_input, sig) = token
        .rsplit_once('.')
        .ok_or(PopError::Malformed("no signature"))?;
    let sig = b64::decode(sig).map_err(|_| PopError::Malformed("signature"))?;
    verify_signature(&jwk, alg, signing_input.as_bytes(), &sig)?;
    let thumbprint = jwk.thumbprint().map_err(|_| PopError::Jwk)?;
    Ok(VerifiedJws {
        alg,
        header,
        payload,
        jwk,
        thumbprint,
    })
}

/// Where the verifying key of a proof is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkLocation {
    /// The protected header's `jwk` (DPoP).
    Header,
    /// The payload's `cnf.jwk` (SHR).
    PayloadCnf,
}

/// What a DPoP proof must match; see [`verify_dpop_proof`].
#[derive(Debug, Clone)]
pub struct DpopExpectations<'a> {
    method: &'a str,
    url: &'a str,
    now: i64,
    access_token: Option<&'a str>,
    nonce: Option<&'a str>,
    max_age: i64,
    future_skew: i64,
}

impl<'a> DpopExpectations<'a> {
    /// The request's method and (external) URL, and the current time. Defaults: proofs up
    /// to 60 s old and 5 s in the future, no access token, no nonce.
    pub fn new(method: &'a str, url: &'a str, now: i64) -> Self {
        Self {
            method,
            url,
            now,
            access_token: None,
            nonce: None,
            max_age: 60,
            future_skew: 5,
        }
    }
    /// The presented access token: `ath` is then required and compared.
    pub fn access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }
    /// The nonce the server currently requires (compared exactly).
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }
    /// Oldest accepted `iat` (seconds before now) and tolerated clock skew into the future.
    pub fn window(mut self, max_age: i64, future_skew: i64) -> Self {
        self.max_age = max_age;
        self.future_skew = future_skew;
        self
    }
}

/// A DPoP proof that passed [`verify_dpop_proof`].
#[derive(Debug, Clone)]
pub struct DpopProof {
    /// `jti`: the caller must refuse a value seen within the window (replay).
    pub jti: String,
    /// `htm`.
    pub htm: String,
    /// `htu`, normalised.
    pub htu: String,
    /// `iat`.
    pub iat: i64,
    /// `nonce`, when present.
    pub nonce: Option<String>,
    /// The RFC 7638 thumbprint of the proof key: `cnf.jkt` of the bound token.
    pub jkt: String,
    /// The proof key.
    pub jwk: Jwk,
}

fn str_claim<'m>(m: &'m Map<String, Value>, name: &'static str) -> Result<&'m str, PopError> {
    m.get(name)
        .and_then(Value::as_str)
        .ok_or(PopError::Claim(name))
}

fn int_claim(m: &Map<String, Value>, name: &'static str) -> Result<i64, PopError> {
    match m.get(name) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or(PopError::Claim(name)),
        _ => Err(PopError::Claim(name)),
    }
}

/// Verifies a DPoP proof (RFC 9449 §4.3 checks 1–11, except the `jti` replay check which
/// needs the caller's state): compact JWS, `typ: dpop+jwt`, allowed `alg`, public `jwk`
/// that verifies the signature, `jti`, `htm` equal to the method, `htu` equal to the URL
/// (both normalised), `iat` in the window, `nonce` when required, and `ath` when an access
/// token is presented.
pub fn verify_dpop_proof(proof: &str, want: &DpopExpectations<'_>) -> Result<DpopProof, PopError> {
    let v = verify_with_embedded_jwk(proof, JwkLocation::Header, DPOP_TYP)?;
    let p = &v.payload;
    let jti = str_claim(p, "jti")?;
    if jti.is_empty() || jti.len() > 256 {
        return Err(PopError::Claim("jti"));
    }
    let htm = str_claim(p, "htm")?;
    let htu = str_claim(p, "htu")?;
    let iat = int_claim(p, "iat")?;
    if htm != want.method {
        return Err(PopError::MethodMismatch);
    }
    let expected_htu = normalize_htu(want.url)?;
    let htu = normalize_htu(htu).map_err(|_| PopError::UrlMismatch)?;
    if htu != expected_htu {
        return Err(PopError::UrlMismatch);
    }
    if iat < want.now.saturating_sub(want.max_age)
        || iat > want.now.saturating_add(want.future_skew)
    {
        return Err(PopError::Stale);
    }
    let nonce = match p.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(PopError::Claim("nonce")),
    };
    if let Some(required) = want.nonce
        && nonce.as_deref() != Some(required)
    {
        return Err(PopError::Nonce);
    }
    if let Some(at) = want.access_token {
        let ath = match p.get("ath") {
            None => return Err(PopError::AthMissing),
            Some(Value::String(a)) => a,
            Some(_) => return Err(PopError::Claim("ath")),
        };
        let expected = access_token_hash(at);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            ath.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(PopError::AthMismatch);
        }
    }
    Ok(DpopProof {
        jti: jti.to_owned(),
        htm: htm.to_owned(),
        htu,
        iat,
        nonce,
        jkt: v.thumbprint,
        jwk: v.jwk,
    })
}

/// A signed HTTP request whose signature verified with its `cnf.jwk` and whose `kid` is
/// that key's thumbprint. Request matching is [`SignedHttpRequest::check_request`].
#[derive(Clone)]
pub struct SignedHttpRequest {
    /// The inner access token (`at`): validate it as usual, and compare its `cnf.kid` with
    /// [`thumbprint`](Self::thumbprint).
    pub access_token: String,
    /// `ts`.
    pub ts: i64,
    /// `nonce`, when present.
    pub nonce: Option<String>,
    /// `m`, when present.
    pub method: Option<String>,
    /// `u`, when present.
    pub host: Option<String>,
    /// `p`, when present.
    pub path: Option<String>,
    /// RFC 7638 thumbprint of `cnf.jwk` (equal to the header's `kid`).
    pub thumbprint: String,
}

impl fmt::Debug for SignedHttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHttpRequest")
            .field("access_token", &"<redacted>")
            .field("ts", &self.ts)
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl SignedHttpRequest {
    /// Checks `m` (case-sensitively, RFC 9110 §9.1), `u`, `p` against the request (each is
    /// required) and `ts` within `max_age` seconds before `now` (and `future_skew` after).
    pub fn check_request(
        &self,
        method: &str,
        url: &str,
        now: i64,
        max_age: i64,
        future_skew: i64,
    ) -> Result<(), PopError> {
        let target = HttpTarget::parse(url)?;
        match &self.method {
            // RFC 9110 §9.1: methods are case-sensitive (`get` is not `GET`).
            Some(m) if m == method => {}
            Some(_) => return Err(PopError::MethodMismatch),
            None => return Err(PopError::Claim("m")),
        }
        match &self.host {
            Some(u) if u.eq_ignore_ascii_case(&target.authority) => {}
            Some(_) => return Err(PopError::UrlMismatch),
            None => return Err(PopError::Claim("u")),
        }
        match &self.path {
            Some(p) if normalize_path(p).ok().as_deref() == Some(target.path.as_str()) => {}
            Some(_) => return Err(PopError::UrlMismatch),
            None => return Err(PopError::Claim("p")),
        }
        if self.ts < now.saturating_sub(max_age) || self.ts > now.saturating_add(future_skew) {
            return Err(PopError::Stale);
        }
        Ok(())
    }
}

/// Verifies an SHR's signature with its payload's `cnf.jwk`, `typ: pop`, and that the
/// header `kid` is the key's RFC 7638 thumbprint; reads `at`, `ts`, `m`, `u`, `p`, `nonce`.
pub fn verify_signed_http_request(shr: &str) -> Result<SignedHttpRequest, PopError> {
    let v = verify_with_embedded_jwk(shr, JwkLocation::PayloadCnf, SHR_TYP)?;
    match v.header.get("kid").and_then(Value::as_str) {
        Some(k) if k == v.thumbprint => {}
        Some(_) => return Err(PopError::KidMismatch),
        None => return Err(PopError::Claim("kid")),
    }
    let p = &v.payload;
    let opt = |name: &'static str| -> Result<Option<String>, PopError> {
        match p.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(PopError::Claim(name)),
        }
    };
    Ok(SignedHttpRequest {
        access_token: str_claim(p, "at")?.to_owned(),
        ts: int_claim(p, "ts")?,
        nonce: opt("nonce")?,
        method: opt("m")?,
        host: opt("u")?,
        path: opt("p")?,
        thumbprint: v.thumbprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalisation() {
        for (a, b) in [
            ("https://EXAMPLE.com", "https://example.com/"),
            ("https://example.com:443/a?b#c", "https://example.com/a"),
            ("http://example.com:80/", "http://example.com/"),
            ("http://example.com:8443/", "http://example.com:8443/"),
            ("https://example.com:0443/x", "https://example.com/x"),
            ("https://[::1]:8443/%7e", "https://[::1]:8443/~"),
            ("https://h/a%2fb", "https://h/a%2Fb"),
        ] {
            assert_eq!(normalize_htu(a).unwrap(), b, "{a}");
        }
        for bad in [
            "",
            "example.com/x",
            "ftp://h/",
            "https://",
            "https://u@h/",
            "https://h:99999999/",
            "https://h/%zz",
            "https://h/a b",
        ] {
            assert!(normalize_htu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_members_are_refused() {
        let key = ProofKey::generate().unwrap();
        let proof = key.dpop_proof("GET", "https://h/", None, None).unwrap();
        assert!(decode(&proof).is_ok());
        let (h, rest) = proof.split_once('.').unwrap();
        let header = String::from_utf8(b64::decode(h).unwrap()).unwrap();
        for dup in [
            header.replacen('{', r#"{"typ":"jwt","#, 1),
            header.replacen(r#""crv""#, r#""crv":"P-384","crv""#, 1),
        ] {
            let t = format!("{}.{rest}", b64::encode(&dup));
            assert_eq!(
                decode(&t).unwrap_err(),
                PopError::Malformed("duplicate JSON member"),
                "{dup}"
            );
        }
    }

    #[test]
    fn ath_rfc9449_example() {
        // RFC 9449 §7.1 example.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn req_cnf_shape() {
        let k = ProofKey::generate().unwrap();
        let decoded = b64::decode(k.req_cnf()).unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v, json!({"kid": k.thumbprint()}));
    }

    #[test]
    fn signed_request_methods_compare_case_sensitively() {
        let k = ProofKey::generate().unwrap();
        let url = "https://api.example/orders";
        let now = crate::now_unix();
        for (made, sent) in [("GET", "get"), ("get", "GET"), ("Post", "POST")] {
            let shr = k.signed_http_request("at", made, url).unwrap();
            let v = verify_signed_http_request(&shr).unwrap();
            assert_eq!(
                v.check_request(sent, url, now, 60, 5),
                Err(PopError::MethodMismatch),
                "m={made} for {sent}"
            );
            assert_eq!(v.check_request(made, url, now, 60, 5), Ok(()));
        }
    }
}
