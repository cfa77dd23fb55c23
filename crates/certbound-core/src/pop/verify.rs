//! Verifying a compact JWS against the public key it embeds.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::b64;
use crate::jwk::{Jwk, JwsAlgorithm};

use super::{MAX_PROOF_LEN, PRIVATE_JWK_MEMBERS, PROOF_ALGORITHMS, PopError};

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

pub(super) type Decoded = (JwsAlgorithm, Map<String, Value>, Map<String, Value>);

/// Splits and decodes a compact JWS (strict base64url, JSON objects), checking the proof
/// algorithm allowlist. Nothing is verified yet.
pub(super) fn decode(token: &str) -> Result<Decoded, PopError> {
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
        // The same duplicate-refusing parser as the access-token validator's.
        match crate::json::parse_object(&bytes) {
            Ok(m) => Ok(m),
            Err(crate::json::StrictJsonError::Duplicate) => {
                Err(PopError::Malformed("duplicate JSON member"))
            }
            Err(_) => Err(PopError::Malformed(what)),
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
#[non_exhaustive]
pub enum JwkLocation {
    /// The protected header's `jwk` (DPoP).
    Header,
    /// The payload's `cnf.jwk` (SHR).
    PayloadCnf,
}
