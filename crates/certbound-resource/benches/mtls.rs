//! Requests/s of bound `mtls_pop` calls over mutual TLS against plain HTTPS `Bearer` calls
//! to the same sample API, both over reused HTTP/2 connections, in the same run. Each
//! iteration sends a batch of 32 concurrent `GET /whoami` requests.
//!
//! `cargo bench -p certbound-resource --bench mtls`
//! Ratio = bearer time / bound time (throughput of bound calls relative to Bearer).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::LazyLock;

use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{Jwks, KeyKind, PrivateKey, jose};
use certbound_resource::Validator;
use certbound_resource::transport::TlsServer;
use divan::Bencher;

fn main() {
    divan::main();
}

const BATCH: usize = 32;

struct Fixture {
    rt: tokio::runtime::Runtime,
    url: String,
    bound_client: reqwest::Client,
    plain_client: reqwest::Client,
    bound_token: String,
    unbound_token: String,
}

static F: LazyLock<Fixture> = LazyLock::new(|| {
    tls::install_default_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ca = DevCa::generate("bench CA").expect("ca");
    let server = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1"]),
            KeyKind::EcP256,
        )
        .expect("server cert");
    let client = ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256)
        .expect("client cert");
    let key = PrivateKey::generate(KeyKind::EcP256).expect("key");
    let issuer = "https://issuer.example/v2.0";
    let validator = rt
        .block_on(
            Validator::builder()
                .issuer(issuer)
                .audience("api://bench")
                .jwks(Jwks {
                    keys: vec![key.public_jwk().with_kid("k")],
                })
                .build(),
        )
        .expect("validator");
    let mint = |cnf: Option<String>| {
        let now = certbound_core::now_unix();
        let mut c = serde_json::json!({"iss": issuer, "aud": "api://bench", "sub": "bench",
            "iat": now, "exp": now + 3600});
        if let Some(t) = cnf {
            c["cnf"] = serde_json::json!({"x5t#S256": t});
        }
        let h = jose::JwsHeader::new(key.default_jws_algorithm())
            .kid("k")
            .typ("at+jwt");
        jose::sign_compact(&h, &c, &key).expect("sign")
    };
    let bound_token = mint(Some(client.thumbprint().to_base64url()));
    let unbound_token = mint(None);
    let cfg = tls::server_config(&server, ClientAuth::Optional).expect("server config");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!(
        "https://127.0.0.1:{}/whoami",
        listener.local_addr().expect("addr").port()
    );
    rt.spawn(TlsServer::new(listener, cfg).serve(whoami_router(validator), std::future::pending()));
    let anchors = TrustAnchors {
        extra: vec![ca.cert().der().clone()],
        system: false,
    };
    let mk = |id| {
        let _guard = rt.enter();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&anchors, id).expect("client config"))
            .build()
            .expect("client")
    };
    let bound_client = mk(Some(&client));
    let plain_client = mk(None);
    Fixture {
        rt,
        url,
        bound_client,
        plain_client,
        bound_token,
        unbound_token,
    }
});

fn batch(client: &reqwest::Client, authorization: &str) {
    F.rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..BATCH {
            let req = client.get(&F.url).header("authorization", authorization);
            set.spawn(async move {
                let resp = req.send().await.expect("send");
                assert_eq!(resp.status(), 200);
                resp.bytes().await.expect("body").len()
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("task");
        }
    });
}

#[divan::bench(sample_count = 50)]
fn bound_mtls_pop(b: Bencher) {
    let auth = format!("mtls_pop {}", F.bound_token);
    batch(&F.bound_client, &auth); // warm the connection
    b.bench(|| batch(&F.bound_client, &auth));
}

#[divan::bench(sample_count = 50)]
fn bearer_https(b: Bencher) {
    let auth = format!("Bearer {}", F.unbound_token);
    batch(&F.plain_client, &auth);
    b.bench(|| batch(&F.plain_client, &auth));
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
