//! `Authorization` header parsing: the `Bearer` (RFC 6750), `mtls_pop`, `DPoP` (RFC 9449)
//! and `PoP` (signed HTTP request) schemes, and the `DPoP` proof header.

use http::{HeaderMap, HeaderValue, header};

use crate::reject::Rejection;

use certbound_core::ProtocolScheme;

/// Parses one `Authorization` value into scheme and token (scheme case-insensitive).
///
/// A scheme other than `Bearer`/`mtls_pop`/`DPoP`/`PoP` is treated as "no token for this server"
/// ([`Rejection::MissingToken`], RFC 6750 §3.1); a known scheme without a token, or a value
/// with characters outside visible ASCII, is `invalid_request`. The token itself is checked
/// later by the validator (so its refusal names the rule).
pub(crate) fn parse_authorization(
    value: &HeaderValue,
) -> Result<(ProtocolScheme, &str), Rejection> {
    let text = value
        .to_str()
        .map_err(|_| Rejection::InvalidRequest("Authorization header is not visible ASCII"))?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = match text.find([' ', '\t']) {
        Some(i) => text.split_at_checked(i).unwrap_or((text, "")),
        None => (text, ""),
    };
    let scheme = ProtocolScheme::from_header_scheme(scheme).ok_or(Rejection::MissingToken)?;
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(Rejection::InvalidRequest(
            "Authorization header has a scheme but no token",
        ));
    }
    if token.contains([' ', '\t']) {
        return Err(Rejection::InvalidRequest(
            "Authorization header has more than one token",
        ));
    }
    Ok((scheme, token))
}

/// Finds the request's token: exactly one `Authorization` header is allowed.
pub(crate) fn from_headers(headers: &HeaderMap) -> Result<(ProtocolScheme, &str), Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next().ok_or(Rejection::MissingToken)?;
    if values.next().is_some() {
        return Err(Rejection::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    parse_authorization(first)
}

/// The request's single `DPoP` proof header (RFC 9449 §4.3: exactly one).
pub(crate) fn dpop_proof(headers: &HeaderMap) -> Result<&str, crate::reject::DpopError> {
    certbound_core::pop::dpop_header(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(ProtocolScheme, String), Rejection> {
        parse_authorization(&HeaderValue::from_str(s).unwrap()).map(|(s, t)| (s, t.to_owned()))
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(p("bearer x").unwrap(), (ProtocolScheme::Bearer, "x".into()));
        assert_eq!(
            p("BEARER   x ").unwrap(),
            (ProtocolScheme::Bearer, "x".into())
        );
        assert_eq!(
            p("Mtls_Pop x").unwrap(),
            (ProtocolScheme::MtlsPop, "x".into())
        );
        assert_eq!(p("dpop x").unwrap(), (ProtocolScheme::DPoP, "x".into()));
        assert_eq!(p("DPOP x").unwrap(), (ProtocolScheme::DPoP, "x".into()));
        assert_eq!(p("pop x").unwrap(), (ProtocolScheme::Pop, "x".into()));
        assert_eq!(p("PoP x").unwrap(), (ProtocolScheme::Pop, "x".into()));
    }

    #[test]
    fn upper_case_mtls_pop() {
        let v = http::HeaderValue::from_static("MTLS_POP abc.def.ghi");
        assert_eq!(
            parse_authorization(&v).unwrap(),
            (ProtocolScheme::MtlsPop, "abc.def.ghi")
        );
    }

    #[test]
    fn malformed_values() {
        assert_eq!(p("Basic abc"), Err(Rejection::MissingToken));
        assert_eq!(p("Bearerx abc"), Err(Rejection::MissingToken));
        assert!(matches!(p("Bearer"), Err(Rejection::InvalidRequest(_))));
        assert!(matches!(p("Bearer   "), Err(Rejection::InvalidRequest(_))));
        assert!(matches!(p("Bearer a b"), Err(Rejection::InvalidRequest(_))));
        let v = HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        assert!(matches!(
            parse_authorization(&v),
            Err(Rejection::InvalidRequest(_))
        ));
    }

    #[test]
    fn one_header_only() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), Err(Rejection::MissingToken));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert!(from_headers(&h).is_ok());
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(matches!(
            from_headers(&h),
            Err(Rejection::InvalidRequest(_))
        ));
    }
}
