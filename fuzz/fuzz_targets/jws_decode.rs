//! Compact JWS decoding (header and claims, unverified) from arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certbound_core::jose::decode_unverified(text);
        let _ = certbound_core::Thumbprint::from_base64url(text);
    }
});
