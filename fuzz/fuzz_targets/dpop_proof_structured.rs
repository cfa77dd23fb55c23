//! The DPoP proof verifier (RFC 9449 §4.3) on structure-aware proofs: header (`typ`, `alg`,
//! `jwk` …) and payload (`jti`, `htm`, `htu`, `iat`, `ath`, `nonce` …) are arbitrary JSON
//! overlaid on a valid proof's, usually signed with the key the base header embeds, checked
//! against a fixed request and against one derived from the input. Never a panic.
#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use certbound_core::pop::{self, DpopExpectations};
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const URL: &str = "https://api.test/r";
const AT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln";
const NONCE: &str = "n-1";

struct Fixture {
    key: PrivateKey,
    header: Map<String, Value>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(KeyKind::EcP256).expect("key");
        let jwk = serde_json::to_value(key.public_jwk()).expect("jwk");
        let header = common::obj(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}));
        Fixture { key, header }
    })
}

fn payload(now: i64) -> Map<String, Value> {
    common::obj(json!({
        "jti": "0f8fad5b-d9cb-469f-a165-70867728950e", "htm": "GET", "htu": URL, "iat": now,
        "ath": pop::access_token_hash(AT), "nonce": NONCE,
    }))
}

#[derive(Debug, Arbitrary)]
struct Input {
    jws: common::Jws,
    /// A request method and URL to compare with, besides the fixed ones.
    method: String,
    url: String,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let now = certbound_core::now_unix();
    let proof = input
        .jws
        .build(&f.header, &payload(now), &f.key, JwsAlgorithm::ES256);
    for want in [
        DpopExpectations::new("GET", URL, now)
            .access_token(AT)
            .nonce(NONCE),
        DpopExpectations::new("GET", URL, now),
        DpopExpectations::new(&input.method, &input.url, now).access_token(&input.url),
    ] {
        if let Ok(p) = pop::verify_dpop_proof(&proof, &want) {
            let _ = format!("{p:?}");
        }
    }
    let _ = pop::normalize_htu(&input.url);
});
