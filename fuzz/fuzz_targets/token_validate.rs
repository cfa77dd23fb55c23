//! The resource server's token validator (parse, header rules, signature, claims, binding) on
//! arbitrary tokens, with a fixed key set: every input is refused or accepted, never a panic.
#![no_main]

use std::sync::OnceLock;

use certbound_core::{KeyKind, PrivateKey, Thumbprint, jose};
use certbound_resource::{Presented, ProtocolScheme as Scheme, Validator};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    validator: Validator,
    valid: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(KeyKind::EcP256).expect("key");
        let jwks = certbound_core::Jwks { keys: vec![key.public_jwk().with_kid("k1").with_alg(certbound_core::JwsAlgorithm::ES256)] };
        let validator = futures::executor::block_on(
            Validator::builder().issuer("https://issuer.test").audience("api://fuzz").jwks(jwks).build(),
        )
        .expect("validator");
        let now = certbound_core::now_unix();
        let claims = serde_json::json!({"iss":"https://issuer.test","aud":"api://fuzz","iat":now,"nbf":now,"exp":now+3600,
            "cnf":{"x5t#S256": Thumbprint::of_der(b"peer").to_base64url()}});
        let header = jose::JwsHeader::new(certbound_core::JwsAlgorithm::ES256).kid("k1").typ("at+jwt");
        let valid = jose::sign_compact(&header, &claims, &key).expect("sign");
        Fixture { validator, valid }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let peer = Thumbprint::of_der(b"peer");
    if let Ok(text) = std::str::from_utf8(data) {
        for scheme in [Scheme::Bearer, Scheme::MtlsPop] {
            let _ = futures::executor::block_on(f.validator.validate(&Presented::token(scheme, text).peer(Some(&peer))));
        }
        // Splice the input into each part of a valid token.
        let parts: Vec<&str> = f.valid.split('.').collect();
        for i in 0..3 {
            let mut p = parts.clone();
            p[i] = text;
            let t = p.join(".");
            let _ = futures::executor::block_on(f.validator.validate(&Presented::token(Scheme::MtlsPop, &t).peer(Some(&peer))));
        }
    }
});
