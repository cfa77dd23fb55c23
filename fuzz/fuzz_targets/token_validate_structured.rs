//! The resource server's token validator on structure-aware tokens: header and payload are
//! arbitrary JSON (any shape, any Unicode, real member names) overlaid on a valid token's,
//! usually signed with the issuer's real key so the claim and `cnf` rules run. Every input
//! is refused or accepted, never a panic; an accepted token's accessors are read.
#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, Thumbprint};
use certbound_resource::{Presented, ProtocolScheme as Scheme, Validator};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

struct Fixture {
    key: PrivateKey,
    validator: Validator,
    peer: Thumbprint,
    header: Map<String, Value>,
    payload: Map<String, Value>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(KeyKind::EcP256).expect("key");
        let jwks = certbound_core::Jwks {
            keys: vec![
                key.public_jwk()
                    .with_kid("k1")
                    .with_alg(JwsAlgorithm::ES256),
            ],
        };
        let validator = futures::executor::block_on(
            Validator::builder()
                .issuer("https://issuer.test")
                .audience("api://fuzz")
                .token_rules(
                    certbound_resource::TokenRules::default()
                        .token_types(["at+jwt", "JWT"])
                        .understood_crit(["ext"]),
                )
                .jwks(jwks)
                .build(),
        )
        .expect("validator");
        let peer = Thumbprint::of_der(b"peer");
        let now = certbound_core::now_unix();
        let header = common::obj(json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}));
        let payload = common::obj(json!({
            "iss": "https://issuer.test", "aud": "api://fuzz", "sub": "app", "iat": now,
            "nbf": now, "exp": now + 10 * 365 * 86400, "scp": "a b", "roles": ["r"],
            "cnf": {"x5t#S256": peer.to_base64url()},
        }));
        let f = Fixture {
            key,
            validator,
            peer,
            header,
            payload,
        };
        // The base token is valid: the fuzzer starts past the signature.
        let base = common::Jws {
            header: common::Part::Json(common::Overlay::none()),
            payload: common::Part::Json(common::Overlay::none()),
            signature: common::Signature::Real,
            force_real: true,
        };
        let token = base.build(&f.header, &f.payload, &f.key, JwsAlgorithm::ES256);
        assert!(
            f.validator
                .validate_cached(&Presented::token(Scheme::MtlsPop, &token).peer(Some(&f.peer)))
                .is_some_and(|r| r.is_ok())
        );
        f
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    jws: common::Jws,
    /// Which peer certificate the connection presents.
    peer: u8,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let token = input
        .jws
        .build(&f.header, &f.payload, &f.key, JwsAlgorithm::ES256);
    let other = Thumbprint::of_der(b"other");
    let peer = match input.peer % 3 {
        0 => Some(&f.peer),
        1 => Some(&other),
        _ => None,
    };
    for scheme in [Scheme::MtlsPop, Scheme::Bearer] {
        match f.validator.validate_cached(&Presented::token(scheme, &token).peer(peer)).expect("a fixed key set always answers") {
            Ok(v) => {
                let c = v.claims();
                let _ = (
                    c.sub(),
                    c.client_id(),
                    c.scopes(),
                    c.roles(),
                    c.kid(),
                    c.alg(),
                );
                let _ = (c.issuer(), c.audiences(), c.header().len(), c.all().len());
                let _ = (c.confirmation(), v.is_bound(), format!("{v:?}"));
            }
            Err(r) => {
                let _ = (r.to_string(), r.challenges(), r.status());
            }
        }
    }
});
