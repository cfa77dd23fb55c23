//! The signed-HTTP-request (SHR, `PoP` scheme) verifier on structure-aware requests: header
//! (`typ`, `alg`, `kid`) and payload (`at`, `ts`, `nonce`, `m`, `u`, `p`, `q`, `h`, `cnf.jwk`
//! …) are arbitrary JSON overlaid on a valid SHR's, usually signed with the key its `cnf.jwk`
//! names; an SHR that verifies is then matched against a fixed request and one derived from
//! the input. Never a panic.
#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use certbound_core::pop;
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const URL: &str = "https://api.test/r?x=1";

struct Fixture {
    key: PrivateKey,
    jwk: Value,
    header: Map<String, Value>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(KeyKind::EcP256).expect("key");
        let jwk = serde_json::to_value(key.public_jwk()).expect("jwk");
        let kid = key.public_jwk().thumbprint().expect("thumbprint");
        let header = common::obj(json!({"typ": "pop", "alg": "ES256", "kid": kid}));
        Fixture { key, jwk, header }
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    jws: common::Jws,
    method: String,
    url: String,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let now = certbound_core::now_unix();
    let payload = common::obj(json!({
        "at": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln", "ts": now, "nonce": "6e2a1c0b",
        "m": "GET", "u": "api.test", "p": "/r",
        "q": [["x"], "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"],
        "cnf": {"jwk": f.jwk},
    }));
    let shr = input
        .jws
        .build(&f.header, &payload, &f.key, JwsAlgorithm::ES256);
    if let Ok(s) = pop::verify_signed_http_request(&shr) {
        let _ = format!("{s:?}");
        let _ = s.check_request("GET", URL, now, 300, 5);
        let _ = s.check_request(&input.method, &input.url, now, 300, 5);
    }
    let _ = pop::HttpTarget::parse(&input.url);
});
