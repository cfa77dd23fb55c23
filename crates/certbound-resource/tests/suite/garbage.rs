//! Property tests: random bytes, random three-part strings and mutated valid tokens never
//! panic the validator and are never accepted.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::{Jwks, KeyKind, PrivateKey, Thumbprint, jose};
use certbound_resource::Presented;
use certbound_resource::{ProtocolScheme, Validator};
use proptest::prelude::*;
use std::sync::LazyLock;

struct F {
    v: Validator,
    token: String,
    peer: Thumbprint,
}

static FIX: LazyLock<F> = LazyLock::new(|| {
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt
        .block_on(
            Validator::builder()
                .issuer("https://issuer.example")
                .audience("api://a")
                .jwks(Jwks {
                    keys: vec![key.public_jwk().with_kid("k")],
                })
                .build(),
        )
        .unwrap();
    let peer = Thumbprint::of_der(b"cert");
    let now = certbound_core::now_unix();
    let claims = serde_json::json!({"iss": "https://issuer.example", "aud": "api://a", "exp": now + 3600,
        "cnf": {"x5t#S256": peer.to_base64url()}});
    let token = jose::sign_compact(
        &jose::JwsHeader::new(key.default_jws_algorithm())
            .kid("k")
            .typ("at+jwt"),
        &claims,
        &key,
    )
    .unwrap();
    assert!(
        v.validate_cached(&Presented::token(ProtocolScheme::MtlsPop, &token).peer(Some(&peer)))
            .is_some_and(|r| r.is_ok())
    );
    F { v, token, peer }
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_strings_are_refused(s in ".{0,400}") {
        prop_assert!(FIX.v.validate_cached(&Presented::token(ProtocolScheme::Bearer, &s).peer(Some(&FIX.peer))).is_some_and(|r| r.is_err()));
    }

    #[test]
    fn random_bytes_are_refused(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let s = String::from_utf8_lossy(&b);
        prop_assert!(FIX.v.validate_cached(&Presented::token(ProtocolScheme::MtlsPop, &s)).is_some_and(|r| r.is_err()));
    }

    #[test]
    fn random_three_part_tokens_are_refused(h in "[A-Za-z0-9_=+/-]{0,80}", p in "[A-Za-z0-9_=+/-]{0,200}", s in "[A-Za-z0-9_-]{0,120}") {
        let t = format!("{h}.{p}.{s}");
        prop_assert!(FIX.v.validate_cached(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&FIX.peer))).is_some_and(|r| r.is_err()));
    }

    #[test]
    fn mutated_valid_tokens_are_refused(pos in any::<proptest::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = FIX.token.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let t = String::from_utf8_lossy(&bytes);
        prop_assert!(FIX.v.validate_cached(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&FIX.peer))).is_some_and(|r| r.is_err()));
    }

    #[test]
    fn truncated_valid_tokens_are_refused(len in 0usize..400) {
        let t = &FIX.token[..len.min(FIX.token.len() - 1)];
        prop_assert!(FIX.v.validate_cached(&Presented::token(ProtocolScheme::MtlsPop, t).peer(Some(&FIX.peer))).is_some_and(|r| r.is_err()));
    }
}
