//! Bound-call overhead: requests/s of certificate-bound calls over mutual TLS against plain
//! HTTPS Bearer calls, to the same protected API (full validation on both), over reused
//! HTTP/2 connections. Rounds are interleaved (A, B, A, B, …) so machine noise hits both
//! alike; the report gives the median, min and max of each and the ratio of medians.
//!
//! `cargo bench -p certbound-downstream --bench transport` (env `ROUNDS`, `REQUESTS`, `CONCURRENCY`).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::time::{Duration, Instant};

use certbound_authority::{AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority};
use certbound_client::{App, HeaderOptions};
use certbound_core::KeyKind;
use certbound_core::ca::{self, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound_downstream::TransportPool;
use certbound_resource::{TlsServer, Validator};
use futures::StreamExt as _;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    header: &str,
    requests: usize,
    concurrency: usize,
) -> f64 {
    let start = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..requests)
        .map(|_| async {
            match client.get(url).header("authorization", header).send().await {
                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let failures = results.iter().filter(|ok| !**ok).count();
    assert_eq!(failures, 0, "{failures} requests failed");
    requests as f64 / elapsed.as_secs_f64()
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn main() {
    certbound_core::tls::install_default_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let rounds = env("ROUNDS", 7);
        let requests = env("REQUESTS", 3000);
        let concurrency = env("CONCURRENCY", 16);
        let dir = tempfile::tempdir().expect("tempdir");
        let authority = DevAuthority::open_or_init(dir.path().join("a"), AuthorityOptions::default()).expect("authority");
        let running = authority.spawn("127.0.0.1:0".parse().expect("addr")).await.expect("spawn");
        let mut anchors = TrustAnchors::default();
        anchors.add(&running.ca_cert());
        let cert = ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256).expect("cert");
        running
            .register(
                ClientRegistration::with_certificate("bench", cert.leaf().clone(), CertAuthMethod::SelfSignedTlsClientAuth)
                    .auth_method(certbound_authority::AuthMethod::PrivateKeyJwt),
            )
            .expect("register");
        let validator = Validator::builder()
            .issuer(running.issuer())
            .audience("api://bench")
            .trust_anchors(anchors.clone())
            .build()
            .await
            .expect("validator");
        let id = authority
            .ca()
            .issue_certified_key(&IssueSpec::server("api", &["127.0.0.1"]), KeyKind::EcP256)
            .expect("server cert");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://127.0.0.1:{}/whoami", listener.local_addr().expect("addr").port());
        let tls = server_config(&id, ClientAuth::Optional).expect("tls");
        tokio::spawn(TlsServer::new(listener, tls).serve(whoami_router(validator), std::future::pending()));

        let app = App::builder()
            .client_id("bench")
            .authority(running.issuer())
            .certificate(cert.clone())
            .trust_anchors(anchors.clone())
            .build()
            .expect("app");
        let scopes = ["api://bench/.default"];
        let bound = app.authorization_header_for_app(&scopes, &HeaderOptions::mtls_pop()).await.expect("bound token");
        let bearer = app.authorization_header_for_app(&scopes, &HeaderOptions::bearer()).await.expect("bearer token");
        assert!(bound.binding().is_some() && bearer.binding().is_none());
        let pool = TransportPool::builder().trust(anchors).build().expect("pool");
        let mtls = pool.client_for(bound.binding()).expect("mtls client");
        let plain = pool.client_for(None).expect("plain client");
        // Warm both: connections established, JWKS fetched.
        drive(&mtls, &url, bound.value(), 200, concurrency).await;
        drive(&plain, &url, bearer.value(), 200, concurrency).await;

        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(drive(&mtls, &url, bound.value(), requests, concurrency).await);
            b.push(drive(&plain, &url, bearer.value(), requests, concurrency).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (am, amin, amax) = stats(&a);
        let (bm, bmin, bmax) = stats(&b);
        println!("bound-call overhead: {rounds} interleaved rounds × {requests} requests, concurrency {concurrency}, HTTP/2 reused connections");
        println!("| variant | median req/s | min | max |");
        println!("|---|---:|---:|---:|");
        println!("| mtls_pop over mTLS (bound, binding checked) | {am:.0} | {amin:.0} | {amax:.0} |");
        println!("| Bearer over plain HTTPS (baseline) | {bm:.0} | {bmin:.0} | {bmax:.0} |");
        println!("ratio bound/baseline = {:.3} (target ≥ 0.8)", am / bm);
        running.shutdown().await;
    });
}

/// The protected API the benchmark calls: `GET /whoami` behind the token layer.
fn whoami_router(validator: Validator) -> axum::Router {
    axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|token: certbound_resource::ValidatedToken| async move {
                token.claims().sub().unwrap_or_default().to_owned()
            }),
        )
        .layer(certbound_resource::CertboundLayer::new(validator))
}
