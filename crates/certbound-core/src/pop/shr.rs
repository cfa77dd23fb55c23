//! Microsoft's signed HTTP request ("PoP", SHR): the check.

use std::fmt;

use serde_json::Value;

use super::{
    HttpTarget, JwkLocation, PopError, SHR_TYP, int_claim, normalize_path, str_claim,
    verify_with_embedded_jwk,
};

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
