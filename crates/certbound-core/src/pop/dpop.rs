//! DPoP proofs (RFC 9449): what a proof must match, and the check.

use serde_json::{Map, Value};

use crate::jwk::Jwk;

use super::{
    DEFAULT_PROOF_FUTURE_SKEW, DEFAULT_PROOF_WINDOW, DPOP_TYP, JwkLocation, PopError,
    access_token_hash, normalize_htu, verify_with_embedded_jwk,
};

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
            // The shared defaults (60 s, 5 s), as whole seconds.
            max_age: DEFAULT_PROOF_WINDOW.as_secs() as i64,
            future_skew: DEFAULT_PROOF_FUTURE_SKEW.as_secs() as i64,
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

pub(super) fn str_claim<'m>(
    m: &'m Map<String, Value>,
    name: &'static str,
) -> Result<&'m str, PopError> {
    m.get(name)
        .and_then(Value::as_str)
        .ok_or(PopError::Claim(name))
}

pub(super) fn int_claim(m: &Map<String, Value>, name: &'static str) -> Result<i64, PopError> {
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

/// Why a DPoP proof was refused (`invalid_dpop_proof`, RFC 9449 §7.1). The text names the
/// rule and never a value from the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// No `DPoP` header.
    #[error("DPoP proof header missing")]
    Missing,
    /// More than one `DPoP` header.
    #[error("more than one DPoP proof header")]
    Multiple,
    /// A proof rule failed.
    #[error("{0}")]
    Proof(PopError),
    /// The proof's `jti` was already used within the window.
    #[error("DPoP proof replayed (jti already used)")]
    Replayed,
    /// The proof key's thumbprint is not the token's `cnf.jkt`.
    #[error("DPoP proof key does not match the token's cnf.jkt")]
    KeyMismatch,
}

/// The one `DPoP` header of a request (RFC 9449 §4.3: exactly one), trimmed: `Missing`
/// without one (or an empty or non-text one), `Multiple` with several.
pub fn dpop_header(headers: &http::HeaderMap) -> Result<&str, DpopError> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next().ok_or(DpopError::Missing)?;
    if values.next().is_some() {
        return Err(DpopError::Multiple);
    }
    let text = first.to_str().map_err(|_| DpopError::Missing)?.trim();
    if text.is_empty() {
        return Err(DpopError::Missing);
    }
    Ok(text)
}
