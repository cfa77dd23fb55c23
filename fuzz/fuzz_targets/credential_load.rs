//! Certificate and key loading from arbitrary bytes: PEM, DER, PKCS#12 and base64 must
//! return errors, never panic.
#![no_main]

use certbound_core::{Certificate, CertifiedKey, PrivateKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Certificate::from_der(data.to_vec(), "fuzz");
    let _ = Certificate::all_from_pem(data, "fuzz");
    let _ = PrivateKey::from_der(data);
    let _ = PrivateKey::from_pem(data);
    let _ = CertifiedKey::from_pkcs12(data, "password", "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CertifiedKey::from_base64(text, Some("password"), "fuzz");
    }
});
