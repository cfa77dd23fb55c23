//! Property tests: the parsers never panic on arbitrary input, and valid values round-trip.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::{Certificate, CertifiedKey, PrivateKey, Thumbprint, b64, jose};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn loaders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Certificate::from_der(data.clone(), "prop");
        let _ = Certificate::all_from_pem(&data, "prop");
        let _ = PrivateKey::from_der(&data);
        let _ = PrivateKey::from_pem(&data);
        let _ = CertifiedKey::from_pkcs12(&data, "pw", "prop");
    }

    #[test]
    fn pem_framed_garbage_never_panics(body in "[A-Za-z0-9+/=\n]{0,600}", label in "(CERTIFICATE|PRIVATE KEY|RSA PRIVATE KEY|EC PRIVATE KEY)") {
        let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        let _ = Certificate::all_from_pem(pem.as_bytes(), "prop");
        let _ = PrivateKey::from_pem(pem.as_bytes());
        let _ = CertifiedKey::from_base64(&b64::encode_std(pem.as_bytes()), None, "prop");
    }

    #[test]
    fn jws_decode_never_panics(text in "[A-Za-z0-9_.=+/-]{0,400}") {
        let _ = jose::decode_unverified(&text);
    }

    #[test]
    fn thumbprint_text_roundtrips(bytes in proptest::array::uniform32(any::<u8>())) {
        let t = Thumbprint::of_der(&bytes);
        prop_assert_eq!(Thumbprint::from_base64url(&t.to_base64url()), Some(t));
    }

    #[test]
    fn base64_decoder_is_total(text in ".{0,200}") {
        let _ = b64::decode(&text);
        let _ = b64::decode_std_lenient(&text);
    }
}
