//! PEM text (RFC 7468) out of DER: the one encoder certificates and keys share. Parsing is
//! `rustls-pki-types`'.

use crate::b64;

/// PEM-encodes DER bytes with the given label, 64 characters a line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64::encode_std(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}
