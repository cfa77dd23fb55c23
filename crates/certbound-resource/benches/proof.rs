//! Per-request cost of application-layer proof of possession, against a Bearer header, in
//! the same run:
//!
//! - client side: `bearer_header` (format `Bearer <token>` into a `HeaderValue`) vs
//!   `dpop_proof_sign` (a fresh DPoP proof with `ath`, plus both header values) vs
//!   `shr_sign` (a signed HTTP request wrapping the token);
//! - server side, through `Validator::validate_cached` (what the layer runs,
//!   minus the async wrapper): `bearer_validate` (unbound token, Bearer) vs `dpop_validate`
//!   (token + proof: signature with the embedded jwk, htm/htu, iat, ath, jkt, replay-cache
//!   insert) vs `pop_validate` (SHR signature, m/u/p/ts, inner token, kid, nonce replay);
//!   `dpop_verify_proof_only` is `certbound_core::pop::verify_dpop_proof` alone.
//!
//! Each DPoP/SHR iteration gets a fresh proof (made outside the timed section), because a
//! replayed proof is refused.
//!
//! `cargo bench -p certbound-resource --bench proof`
//!
//! Measured 2026-11-28 on the shared 2-core dev machine (`-- --sample-count 300`, medians;
//! access tokens signed ES256 by the issuer):
//!
//! | per request                | Bearer   | DPoP P-256 | DPoP RSA (PS256) | PoP P-256 | PoP RSA |
//! |----------------------------|----------|------------|------------------|-----------|---------|
//! | client: header (+ proof)   | 0.15 µs  | 25.1 µs    | 238 µs           | 20.2 µs   | 237 µs  |
//! | server: validate           | 66.5 µs  | 112.5 µs   | 78.5 µs          | 113.8 µs  | 81.0 µs |
//! | server ratio to Bearer     | 1        | 1.69×      | 1.18×            | 1.71×     | 1.22×   |
//!
//! The server-side extra is one signature verification with a key parsed from the proof
//! (`dpop_verify_proof_only`: 54.7 µs P-256, 23.3 µs RSA-2048) plus a replay-cache insert.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::pop::{self, DpopExpectations, ProofKey};
use certbound_core::{Jwks, KeyKind, PrivateKey, jose};
use certbound_resource::Presented;
use certbound_resource::Validator;
use divan::{Bencher, black_box};
use http::{HeaderMap, HeaderValue, Method, Uri};

fn main() {
    divan::main();
}

const URL: &str = "https://api.example/orders/42";

struct Fixture {
    validator: Validator,
    key: ProofKey,
    bearer: String,
    dpop: String,
    pop: String,
    uri: Uri,
}

fn fixture(kind: KeyKind) -> Fixture {
    let issuer = PrivateKey::generate(KeyKind::EcP256).expect("key");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let validator = rt
        .block_on(
            Validator::builder()
                .issuer("https://issuer.example/tenant/v2.0")
                .audience("api://bench")
                .jwks(Jwks {
                    keys: vec![issuer.public_jwk().with_kid("bench")],
                })
                .external_base_url("https://api.example")
                .build(),
        )
        .expect("validator");
    let key = ProofKey::generate_kind(kind).expect("proof key");
    let now = certbound_core::now_unix();
    let mint = |cnf: Option<serde_json::Value>| {
        let mut claims = serde_json::json!({
            "iss": "https://issuer.example/tenant/v2.0",
            "aud": "api://bench",
            "sub": "00000000-0000-0000-0000-000000000001",
            "client_id": "00000000-0000-0000-0000-000000000001",
            "roles": ["Orders.Read"],
            "iat": now, "nbf": now, "exp": now + 3600,
            "jti": "b6f0b3c6-3f55-4b8e-9f3c-2a0c2c7d9e11",
        });
        if let Some(c) = cnf {
            claims["cnf"] = c;
        }
        let h = jose::JwsHeader::new(issuer.default_jws_algorithm())
            .kid("bench")
            .typ("at+jwt");
        jose::sign_compact(&h, &claims, &issuer).expect("sign")
    };
    Fixture {
        bearer: mint(None),
        dpop: mint(Some(serde_json::json!({"jkt": key.thumbprint()}))),
        pop: mint(Some(serde_json::json!({"kid": key.thumbprint()}))),
        validator,
        key,
        uri: "/orders/42".parse().expect("uri"),
    }
}

fn headers(authorization: String, dpop: Option<String>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&authorization).expect("header"),
    );
    if let Some(p) = dpop {
        h.insert("dpop", HeaderValue::from_str(&p).expect("header"));
    }
    h
}

const KINDS: [KeyKind; 2] = [KeyKind::EcP256, KeyKind::Rsa2048];

#[divan::bench]
fn bearer_header(bencher: Bencher) {
    let f = fixture(KeyKind::EcP256);
    bencher.bench_local(|| {
        HeaderValue::from_str(&format!("Bearer {}", black_box(&f.bearer))).expect("header")
    });
}

#[divan::bench(args = KINDS)]
fn dpop_proof_sign(bencher: Bencher, kind: KeyKind) {
    let f = fixture(kind);
    bencher.bench_local(|| {
        let proof = f
            .key
            .dpop_proof("GET", black_box(URL), Some(&f.dpop), None)
            .expect("proof");
        (
            HeaderValue::from_str(&format!("DPoP {}", f.dpop)).expect("header"),
            HeaderValue::from_str(&proof).expect("header"),
        )
    });
}

#[divan::bench(args = KINDS)]
fn shr_sign(bencher: Bencher, kind: KeyKind) {
    let f = fixture(kind);
    bencher.bench_local(|| {
        let shr = f
            .key
            .signed_http_request(&f.pop, "GET", black_box(URL))
            .expect("shr");
        HeaderValue::from_str(&format!("PoP {shr}")).expect("header")
    });
}

#[divan::bench]
fn bearer_validate(bencher: Bencher) {
    let f = fixture(KeyKind::EcP256);
    let h = headers(format!("Bearer {}", f.bearer), None);
    bencher.bench_local(|| {
        f.validator
            .validate_cached(&Presented::http(&Method::GET, &f.uri, black_box(&h)))
            .expect("answered from the loaded keys")
            .expect("valid")
    });
}

#[divan::bench(args = KINDS)]
fn dpop_validate(bencher: Bencher, kind: KeyKind) {
    let f = fixture(kind);
    bencher
        .with_inputs(|| {
            let p = f
                .key
                .dpop_proof("GET", URL, Some(&f.dpop), None)
                .expect("proof");
            headers(format!("DPoP {}", f.dpop), Some(p))
        })
        .bench_local_refs(|h| {
            f.validator
                .validate_cached(&Presented::http(&Method::GET, &f.uri, h))
                .expect("answered from the loaded keys")
                .expect("valid")
        });
}

#[divan::bench(args = KINDS)]
fn dpop_verify_proof_only(bencher: Bencher, kind: KeyKind) {
    let f = fixture(kind);
    let proof = f
        .key
        .dpop_proof("GET", URL, Some(&f.dpop), None)
        .expect("proof");
    let now = certbound_core::now_unix();
    bencher.bench_local(|| {
        pop::verify_dpop_proof(
            black_box(&proof),
            &DpopExpectations::new("GET", URL, now).access_token(&f.dpop),
        )
        .expect("valid")
    });
}

#[divan::bench(args = KINDS)]
fn pop_validate(bencher: Bencher, kind: KeyKind) {
    let f = fixture(kind);
    bencher
        .with_inputs(|| {
            let shr = f.key.signed_http_request(&f.pop, "GET", URL).expect("shr");
            headers(format!("PoP {shr}"), None)
        })
        .bench_local_refs(|h| {
            f.validator
                .validate_cached(&Presented::http(&Method::GET, &f.uri, h))
                .expect("answered from the loaded keys")
                .expect("valid")
        });
}
