//! The request a proof covers: URL normalisation (`htu`, `u`/`p`), methods, `ath` and `req_cnf`.

use serde_json::{Value, json};

use crate::b64;

use super::PopError;

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

pub(super) fn normalize_path(path: &str) -> Result<String, PopError> {
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

pub(super) fn check_method(method: &str) -> Result<(), PopError> {
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
pub(crate) fn thumbprints_equal(a: &str, b: &str) -> bool {
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
    let Ok(m) = crate::json::parse_object(&bytes) else {
        return Err(bad);
    };
    let kid = m.get("kid").and_then(Value::as_str).ok_or(bad.clone())?;
    match b64::decode(kid) {
        Ok(d) if d.len() == 32 && kid.len() == 43 => Ok(kid.to_owned()),
        _ => Err(bad),
    }
}
