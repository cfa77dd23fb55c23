//! Cache-hit `authorization_header_for_app` against a baseline in the same run: a plain
//! `HashMap` lookup plus `format!` of the header value.
//!
//! `cargo bench -p certbound-client --bench header`
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use certbound_client::{
    App, CacheKey, CachedToken, HeaderOptions, MemoryTokenCache, Secret, TokenCache,
};
use certbound_core::KeyKind;
use certbound_core::ca::{self, IssueSpec};
use futures::FutureExt as _;

const SCOPES: [&str; 1] = ["api://resource/.default"];
const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJhdWQiOiJhcGk6Ly9yZXNvdXJjZSIsImNuZiI6eyJ4NXQjUzI1NiI6IkFBQUEifSwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1mb3ItdGhlLWJlbmNobWFyay1vbmx5LW5vdC1yZWFs";

fn main() {
    divan::main();
}

/// An app whose cache already holds a bound token for `SCOPES` (no network involved).
fn warm_app() -> App {
    let cert = ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256).unwrap();
    let authority = "https://127.0.0.1:9/t/v2.0";
    let cache = Arc::new(MemoryTokenCache::new(100));
    let key = CacheKey::new(
        authority,
        "t",
        "app",
        &SCOPES,
        "mtls_pop",
        Some(&cert.thumbprint()),
    );
    let token = CachedToken::new(
        "mtls_pop",
        Secret::new(TOKEN),
        certbound_core::now_unix() + 86_400,
        None,
        Some(&cert.thumbprint()),
    );
    cache.set(&key, &token).now_or_never().unwrap().unwrap();
    let app = App::builder()
        .client_id("app")
        .authority(authority)
        .certificate(cert)
        .token_cache(cache)
        .build()
        .unwrap();
    // First call: from the pluggable cache into the hot header cache.
    let h = app
        .authorization_header_for_app(&SCOPES, &HeaderOptions::mtls_pop())
        .now_or_never()
        .unwrap()
        .unwrap();
    assert!(h.value().starts_with("mtls_pop "));
    app
}

#[divan::bench]
fn cache_hit_header(bencher: divan::Bencher) {
    let app = warm_app();
    let opts = HeaderOptions::mtls_pop();
    bencher.bench_local(|| {
        let h = app
            .authorization_header_for_app(black_box(&SCOPES), &opts)
            .now_or_never()
            .unwrap()
            .unwrap();
        black_box(h)
    });
}

/// The same cache hit through a prepared [`certbound_client::HeaderHandle`] (no scope
/// hashing or lookup: one atomic load, a generation check, one reference count).
#[divan::bench]
fn cache_hit_header_handle(bencher: divan::Bencher) {
    let app = warm_app();
    let handle = app.header_handle(&SCOPES, &HeaderOptions::mtls_pop());
    handle.get().now_or_never().unwrap().unwrap();
    bencher.bench_local(|| black_box(handle.get().now_or_never().unwrap().unwrap()));
}

/// The borrowed cache hit ([`certbound_client::HeaderHandle::cached`]): no reference count.
#[divan::bench]
fn cache_hit_header_handle_borrowed(bencher: divan::Bencher) {
    let app = warm_app();
    let handle = app.header_handle(&SCOPES, &HeaderOptions::mtls_pop());
    handle.get().now_or_never().unwrap().unwrap();
    bencher.bench_local(|| {
        let h = handle.cached().unwrap();
        black_box(h.value().len())
    });
}

#[divan::bench]
fn baseline_hashmap_format(bencher: divan::Bencher) {
    let mut map: HashMap<String, (String, String)> = HashMap::new();
    for i in 0..100 {
        map.insert(format!("certbound:v1:app_token|https://127.0.0.1:9/t/v2.0|t|app|mtls_pop|x{i}|api://resource/.default"), ("mtls_pop".into(), TOKEN.into()));
    }
    let key = "certbound:v1:app_token|https://127.0.0.1:9/t/v2.0|t|app|mtls_pop|x7|api://resource/.default";
    bencher.bench_local(|| {
        let (tt, tok) = map.get(black_box(key)).unwrap();
        black_box(format!("{tt} {tok}"))
    });
}

/// An app whose cache holds a token bound to its proof key (`DPoP` or `Pop`).
fn warm_key_bound_app(scheme: certbound_client::ProtocolScheme) -> App {
    let authority = "https://127.0.0.1:9/t/v2.0";
    let key = certbound_core::pop::ProofKey::generate().unwrap();
    let jkt = certbound_core::Thumbprint::from_base64url(&key.thumbprint()).unwrap();
    let cache = Arc::new(MemoryTokenCache::new(100));
    let ck = CacheKey::new(
        authority,
        "t",
        "app",
        &SCOPES,
        scheme.token_type(),
        Some(&jkt),
    );
    let token_type = if scheme == certbound_client::ProtocolScheme::DPoP {
        "DPoP"
    } else {
        "pop"
    };
    let token = CachedToken::new(
        token_type,
        Secret::new(TOKEN),
        certbound_core::now_unix() + 86_400,
        None,
        Some(&jkt),
    );
    cache.set(&ck, &token).now_or_never().unwrap().unwrap();
    App::builder()
        .client_id("app")
        .authority(authority)
        .client_secret("bench-secret")
        .proof_key(key)
        .token_cache(cache)
        .build()
        .unwrap()
}

/// The per-request header for `DPoP` (cached token + a fresh ES256 proof): compare with
/// `cache_hit_header` (MTLS_POP) in the same run — the difference is the proof.
#[divan::bench(args = ["DPoP", "Pop"])]
fn cache_hit_header_with_proof(bencher: divan::Bencher, scheme: &str) {
    let scheme: certbound_client::ProtocolScheme = scheme.parse().unwrap();
    let app = warm_key_bound_app(scheme);
    let opts = HeaderOptions::default().scheme(scheme);
    let url = "https://api.example/orders/7?expand=lines";
    let first = app
        .authorization_header_for_request(&SCOPES, &opts, "GET", url)
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!(first.source(), certbound_client::TokenSource::Cache);
    bencher.bench_local(|| {
        let h = app
            .authorization_header_for_request(black_box(&SCOPES), &opts, "GET", url)
            .now_or_never()
            .unwrap()
            .unwrap();
        black_box(h)
    });
}
