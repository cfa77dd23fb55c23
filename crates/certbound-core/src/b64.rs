//! Base64url (no padding) helpers, as used by JOSE and RFC 8705.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding (padding or `+`/`/` are rejected).
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// Encodes bytes as standard base64 (with padding), e.g. for `x5c`.
pub fn encode_std(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, tolerating surrounding and embedded ASCII whitespace.
pub fn decode_std_lenient(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(&compact).or_else(|e| {
        URL_SAFE_NO_PAD
            .decode(compact.trim_end_matches('='))
            .map_err(|_| e)
    })
}
