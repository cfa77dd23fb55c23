//! Full validation (split, strict base64url, duplicate-aware JSON, `alg`/`typ`/`crit`, key
//! lookup, signature, `iss`/`aud`/`exp`/`nbf`/`iat`, `cnf` binding) against the raw signature
//! verification of the same token with the same library (aws-lc-rs `ParsedPublicKey`), in
//! the same run; plus `jsonwebtoken::decode` of the same token for reference.
//!
//! - `raw_signature`: `ParsedPublicKey::verify_sig` on the signing input with the signature
//!   already decoded (the strictest baseline);
//! - `raw_signature_from_token`: the same plus finding and base64url-decoding the signature
//!   (what `jsonwebtoken::crypto::verify` does);
//! - `full_validation`: `Validator::validate_cached` with binding;
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode` (signature, `iss`, `aud`, `exp`; no
//!   `typ`, `crit`, duplicate or binding checks) for reference.
//!
//! `cargo bench -p certbound-resource --bench validate`
//! Ratio = raw time / full time (throughput of full relative to raw).
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::{Jwks, JwsAlgorithm, KeyKind, PrivateKey, Thumbprint, b64, jose};
use certbound_resource::Presented;
use certbound_resource::jwks::VerifyingKey;
use certbound_resource::{ProtocolScheme, Validator};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

struct Fixture {
    validator: Validator,
    token: String,
    thumbprint: Thumbprint,
    key: VerifyingKey,
    alg: JwsAlgorithm,
    jwt_key: jsonwebtoken::DecodingKey,
    jwt_validation: jsonwebtoken::Validation,
}

fn fixture(kind: KeyKind, alg: JwsAlgorithm) -> Fixture {
    let key = PrivateKey::generate(kind).expect("key");
    let jwk = key.public_jwk().with_kid("bench");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let validator = rt
        .block_on(
            Validator::builder()
                .issuer("https://issuer.example/tenant/v2.0")
                .audience("api://bench")
                .jwks(Jwks {
                    keys: vec![jwk.clone()],
                })
                .build(),
        )
        .expect("validator");
    let thumbprint = Thumbprint::of_der(b"bench client certificate");
    let now = certbound_core::now_unix();
    let claims = serde_json::json!({
        "iss": "https://issuer.example/tenant/v2.0",
        "aud": "api://bench",
        "sub": "00000000-0000-0000-0000-000000000001",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "azp": "00000000-0000-0000-0000-000000000001",
        "tid": "tenant",
        "roles": ["Orders.Read", "Orders.Write"],
        "iat": now, "nbf": now, "exp": now + 3600,
        "jti": "b6f0b3c6-3f55-4b8e-9f3c-2a0c2c7d9e11",
        "cnf": {"x5t#S256": thumbprint.to_base64url()},
    });
    let header = jose::JwsHeader::new(alg).kid("bench").typ("at+jwt");
    let token = jose::sign_compact(&header, &claims, &key).expect("sign");
    let jwt_key = match (&jwk.x, &jwk.y, &jwk.n, &jwk.e) {
        (Some(x), Some(y), _, _) => jsonwebtoken::DecodingKey::from_ec_components(x, y),
        (_, _, Some(n), Some(e)) => jsonwebtoken::DecodingKey::from_rsa_components(n, e),
        _ => panic!("unexpected JWK"),
    }
    .expect("decoding key");
    let jalg = match alg {
        JwsAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        JwsAlgorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        JwsAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        JwsAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        other => panic!("no jsonwebtoken peer for {other}"),
    };
    let mut jwt_validation = jsonwebtoken::Validation::new(jalg);
    jwt_validation.set_audience(&["api://bench"]);
    jwt_validation.set_issuer(&["https://issuer.example/tenant/v2.0"]);
    Fixture {
        validator,
        token,
        thumbprint,
        key: VerifyingKey::from_jwk(&jwk, &[alg]).expect("verifying key"),
        alg,
        jwt_key,
        jwt_validation,
    }
}

fn raw(b: Bencher, f: &Fixture) {
    let dot = f.token.rfind('.').expect("dot");
    let message = &f.token.as_bytes()[..dot];
    let sig = b64::decode(&f.token[dot + 1..]).expect("sig");
    let parsed = f.key.for_alg(f.alg).expect("key for alg");
    // Sanity: both paths accept the token.
    assert!(parsed.verify_sig(message, &sig).is_ok());
    b.bench(|| black_box(parsed.verify_sig(black_box(message), black_box(&sig))).is_ok());
}

/// The signature check as `jsonwebtoken::crypto::verify` defines it: find the signature in
/// the token, decode it, verify it over the signing input (pre-parsed key).
fn raw_from_token(b: Bencher, f: &Fixture) {
    let parsed = f.key.for_alg(f.alg).expect("key for alg");
    b.bench(|| {
        let token = black_box(f.token.as_str());
        let dot = token.rfind('.').expect("dot");
        let sig = b64::decode(&token[dot + 1..]).expect("sig");
        parsed.verify_sig(&token.as_bytes()[..dot], &sig).is_ok()
    });
}

fn full(b: Bencher, f: &Fixture) {
    assert!(
        f.validator
            .validate_cached(
                &Presented::token(ProtocolScheme::MtlsPop, &f.token).peer(Some(&f.thumbprint))
            )
            .is_some_and(|r| r.is_ok())
    );
    b.bench(|| {
        black_box(
            f.validator.validate_cached(
                &Presented::token(ProtocolScheme::MtlsPop, black_box(&f.token))
                    .peer(Some(black_box(&f.thumbprint))),
            ),
        )
        .is_some_and(|r| r.is_ok())
    });
}

fn jwt(b: Bencher, f: &Fixture) {
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(&f.token, &f.jwt_key, &f.jwt_validation).is_ok()
    );
    b.bench(|| {
        black_box(jsonwebtoken::decode::<serde_json::Value>(
            black_box(&f.token),
            &f.jwt_key,
            &f.jwt_validation,
        ))
        .is_ok()
    });
}

mod es256 {
    use super::*;
    use std::sync::LazyLock;
    static F: LazyLock<Fixture> = LazyLock::new(|| fixture(KeyKind::EcP256, JwsAlgorithm::ES256));

    #[divan::bench]
    fn raw_signature(b: Bencher) {
        raw(b, &F)
    }
    #[divan::bench]
    fn raw_signature_from_token(b: Bencher) {
        raw_from_token(b, &F)
    }
    #[divan::bench]
    fn full_validation(b: Bencher) {
        full(b, &F)
    }
    #[divan::bench]
    fn jsonwebtoken_decode(b: Bencher) {
        jwt(b, &F)
    }
}

mod rs256 {
    use super::*;
    use std::sync::LazyLock;
    static F: LazyLock<Fixture> = LazyLock::new(|| fixture(KeyKind::Rsa2048, JwsAlgorithm::RS256));

    #[divan::bench]
    fn raw_signature(b: Bencher) {
        raw(b, &F)
    }
    #[divan::bench]
    fn raw_signature_from_token(b: Bencher) {
        raw_from_token(b, &F)
    }
    #[divan::bench]
    fn full_validation(b: Bencher) {
        full(b, &F)
    }
    #[divan::bench]
    fn jsonwebtoken_decode(b: Bencher) {
        jwt(b, &F)
    }
}
