//! The token rules a validation applies, one function each: compact form, `alg`, `typ`,
//! `crit`, audiences and numeric dates.

use certbound_core::JwsAlgorithm;
use certbound_core::json::{self as strict_json, StrictJsonError};
use serde_json::{Map, Value};

use crate::reject::TokenError;

pub(super) const HEADER_MEMBERS: [&str; 4] = ["alg", "kid", "typ", "crit"];
pub(super) const PAYLOAD_MEMBERS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "cnf"];

pub(super) fn scan<const N: usize>(
    json: &[u8],
    names: &[&str; N],
    what: &'static str,
) -> Result<[Option<Value>; N], TokenError> {
    strict_json::scan_object(json, names).map_err(|e| match e {
        StrictJsonError::Duplicate => TokenError::DuplicateMember(what),
        _ => TokenError::NotJsonObject(what),
    })
}

/// Decodes a strict base64url signature into `buf`.
pub(super) fn decode_signature(s64: &str, buf: &mut [u8; 512]) -> Result<usize, TokenError> {
    use base64::Engine as _;
    if s64.len() > 683 {
        // More than 512 bytes: not a signature of any supported key.
        return Err(TokenError::BadSignature);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(s64, buf)
        .map_err(|_| TokenError::Base64("signature"))
}

/// Splits a compact JWS into its three non-empty parts.
pub(super) fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut it = token.splitn(4, '.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Ok((h, p, s))
        }
        _ => Err(TokenError::NotCompactJws),
    }
}

pub(super) fn check_alg(
    alg: Option<&Value>,
    allowed: &[JwsAlgorithm],
) -> Result<JwsAlgorithm, TokenError> {
    let Some(Value::String(alg)) = alg else {
        return Err(TokenError::AlgMissing);
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg
        .as_bytes()
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"HS"))
    {
        return Err(TokenError::AlgHmac);
    }
    allowed
        .iter()
        .copied()
        .find(|a| a.as_str() == alg)
        .ok_or(TokenError::AlgNotAllowed)
}

pub(super) fn check_crit(
    crit: &Value,
    header_json: &[u8],
    understood: &[String],
) -> Result<(), TokenError> {
    // RFC 7515 §4.1.11: a non-empty array of names that are present in the header and are
    // not names defined by the JWS/JWA specifications.
    let Some(names) = crit.as_array() else {
        return Err(TokenError::Crit);
    };
    if names.is_empty() {
        return Err(TokenError::Crit);
    }
    let mut header: Option<Map<String, Value>> = None;
    for n in names {
        let Some(n) = n.as_str() else {
            return Err(TokenError::Crit);
        };
        if !understood.iter().any(|u| u == n) {
            return Err(TokenError::Crit);
        }
        // Rare path (only with configured extensions): the named member must be present.
        let h =
            header.get_or_insert_with(|| serde_json::from_slice(header_json).unwrap_or_default());
        if !h.contains_key(n) {
            return Err(TokenError::Crit);
        }
    }
    Ok(())
}

/// `text` without a leading `prefix` compared ASCII-case-insensitively (`prefix` is ASCII),
/// without slicing `text` at a byte offset that may fall inside a multi-byte character.
pub(super) fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let n = prefix.len();
    let head = text.as_bytes().get(..n)?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    // The first `n` bytes equal ASCII bytes, so byte `n` is a character boundary.
    text.get(n..)
}

pub(super) fn check_typ(
    typ: Option<&Value>,
    types: &[String],
    allow_missing: bool,
) -> Result<(), TokenError> {
    match typ {
        None if allow_missing => Ok(()),
        None => Err(TokenError::TypMissing),
        Some(Value::String(t)) => {
            // Compare without allocating in the common case.
            let t = t.trim();
            let t = strip_prefix_ignore_ascii_case(t, "application/")
                .filter(|rest| !rest.is_empty())
                .unwrap_or(t);
            if types.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                Ok(())
            } else {
                Err(TokenError::TypNotAccepted)
            }
        }
        Some(_) => Err(TokenError::TypNotAccepted),
    }
}

pub(super) fn audiences(aud: Option<Value>) -> Result<Vec<String>, TokenError> {
    match aud {
        None => Err(TokenError::ClaimMissing("aud")),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(TokenError::ClaimMalformed("aud")),
            })
            .collect(),
        Some(_) => Err(TokenError::ClaimMalformed("aud")),
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, possibly fractional; truncated.
pub(super) fn numeric_date(
    v: Option<&Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // Saturating float→int conversion.
                Ok(Some(f as i64))
            } else {
                Err(TokenError::ClaimMalformed(name))
            }
        }
        Some(_) => Err(TokenError::ClaimMalformed(name)),
    }
}
