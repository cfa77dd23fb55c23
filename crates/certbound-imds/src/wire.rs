//! Distrust of what servers send: the checks every certbound HTTP client applies to a
//! response, shared by the IMDS / App Service client here, the token-endpoint and discovery
//! client (`certbound-client`) and downstream calls (`certbound-downstream`).
//!
//! - [`read_body_capped`]: reads at most N bytes of a body as a stream (chunked or not,
//!   whatever `Content-Length` claims) and stops there.
//! - [`token_is_header_safe`]: the syntax every access token must have before it is put in
//!   an `Authorization` header (visible ASCII only: no CR/LF, no spaces, no controls).
//! - [`seconds`] / [`token_expiry`]: lifetimes in seconds read saturating (an `expires_in`
//!   of `1e308` or twenty digits is "very long", never a wrapped negative time), and an
//!   expiry that never outlives the token's own JWT `exp`.
//! - [`has_userinfo`] / [`redact_userinfo`]: endpoint URLs carrying `user:password@` are
//!   refused, and never echoed with the password.
//!
//! ```
//! use certbound_imds::wire::{redact_userinfo, seconds, token_is_header_safe};
//! assert!(!token_is_header_safe("abc\r\nSet-Cookie: x"));
//! assert_eq!(seconds(&serde_json::json!(1e308)), Some(i64::MAX));
//! assert_eq!(redact_userinfo("https://u:pw@host/p"), "https://***@host/p");
//! ```

use serde_json::Value;
use url::Url;

/// The longest access token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a body could not be read within its limit.
#[derive(Debug)]
pub enum BodyError {
    /// The body is (or claims to be) larger than the limit; reading stopped there.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The transport failed while reading.
    Read(reqwest::Error),
}

/// Reads at most `limit` bytes of `resp`'s body, chunk by chunk. A `Content-Length` above
/// the limit fails before reading; a body that grows past the limit (chunked, endless, or
/// lying about its length) fails as soon as it does, and the connection is dropped.
pub async fn read_body_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| u64::try_from(limit).is_ok_and(|l| n > l))
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if buf.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Whether `token` may be sent in an `Authorization` header: non-empty, at most
/// [`MAX_TOKEN_BYTES`], visible ASCII only (no CR, LF, space or other control characters).
pub fn token_is_header_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A number of seconds (or a Unix time) from JSON: an integer, a float or a decimal string,
/// saturating at `i64::MIN`/`i64::MAX` (so `1e308`, `i64::MAX` or a twenty-digit number
/// mean "as large as can be", never a wrapped value). `None` when it is not a number.
pub fn seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| n.as_f64().and_then(float_seconds)),
        Value::String(s) => seconds_text(s.trim()),
        _ => None,
    }
}

fn seconds_text(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(if negative { i64::MIN } else { i64::MAX });
    }
    s.parse::<f64>().ok().and_then(float_seconds)
}

/// `f as i64` saturates in Rust; NaN and infinities are not numbers of seconds.
fn float_seconds(f: f64) -> Option<i64> {
    f.is_finite().then_some(f as i64)
}

/// The `exp` claim of `token` when it is a JWT (not verified: the client only uses it to
/// never keep a token longer than it says it lives).
pub fn jwt_exp(token: &str) -> Option<i64> {
    let (_, claims) = certbound_core::jose::decode_unverified(token).ok()?;
    claims.get("exp").and_then(seconds)
}

/// The expiry to keep for `token`: `expires_on` (already saturating), but never later than
/// the token's own JWT `exp`.
pub fn token_expiry(token: &str, expires_on: i64) -> i64 {
    match jwt_exp(token) {
        Some(exp) => expires_on.min(exp),
        None => expires_on,
    }
}

/// Whether `url` carries a user name or password (`https://user:pw@host/`).
pub fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// Whether the text of a URL carries a user name or password, parsed or not (`@` in its
/// authority part).
pub fn text_has_userinfo(url: &str) -> bool {
    match Url::parse(url.trim()) {
        Ok(u) => has_userinfo(&u),
        Err(_) => redact_userinfo(url) != url,
    }
}

/// `url` with any `user:password@` replaced by `***@`, for error messages and logs. Works on
/// text that does not parse as a URL too.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(end).unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((_, host)) => match scheme {
            Some(s) => format!("{s}://***@{host}{tail}"),
            None => format!("***@{host}{tail}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_saturate() {
        assert_eq!(seconds(&json!(60)), Some(60));
        assert_eq!(seconds(&json!(-5)), Some(-5));
        assert_eq!(seconds(&json!(i64::MAX)), Some(i64::MAX));
        assert_eq!(seconds(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(seconds(&json!(1e308)), Some(i64::MAX));
        assert_eq!(seconds(&json!(-1e308)), Some(i64::MIN));
        assert_eq!(seconds(&json!(3599.7)), Some(3599));
        assert_eq!(seconds(&json!("99999999999999999999")), Some(i64::MAX));
        assert_eq!(seconds(&json!(" 1700000000 ")), Some(1_700_000_000));
        assert_eq!(seconds(&json!("-99999999999999999999")), Some(i64::MIN));
        assert_eq!(seconds(&json!("1e308")), Some(i64::MAX));
        assert_eq!(seconds(&json!("soon")), None);
        assert_eq!(seconds(&json!("NaN")), None);
        assert_eq!(seconds(&json!("inf")), None);
        assert_eq!(seconds(&json!(null)), None);
        let big: Value = serde_json::from_str("123456789012345678901234567890").unwrap();
        assert_eq!(seconds(&big), Some(i64::MAX));
    }

    #[test]
    fn header_safe_tokens() {
        assert!(token_is_header_safe("eyJ.abc-_~+/="));
        for bad in ["", "a b", "a\r\nb", "a\nb", "a\tb", "tök", "a\u{7f}"] {
            assert!(!token_is_header_safe(bad), "{bad:?}");
        }
        assert!(!token_is_header_safe(&"a".repeat(MAX_TOKEN_BYTES + 1)));
    }

    #[test]
    fn userinfo_is_found_and_redacted() {
        assert_eq!(
            redact_userinfo("https://user:pw@host:1/p?q=a@b"),
            "https://***@host:1/p?q=a@b"
        );
        assert_eq!(redact_userinfo("https://host/p@x"), "https://host/p@x");
        assert_eq!(redact_userinfo("u:pw@host"), "***@host");
        assert!(text_has_userinfo("https://user:pw@host/"));
        assert!(text_has_userinfo("https://user@host/"));
        assert!(text_has_userinfo("https://:pw@host/"));
        assert!(text_has_userinfo("http://u:p@[::1/x"));
        assert!(!text_has_userinfo("https://host/a@b"));
    }
}
