//! Where signing keys may come from: https only (discovery, `jwks_uri`, and the end of any
//! redirect), never from a URL carrying a user name or password — against real servers on
//! loopback (TLS for the legitimate ones, plain HTTP for the downgrade targets).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use certbound_core::tls::{self, ClientAuth};
use certbound_core::{Jwks, KeyKind, PrivateKey};
use certbound_resource::Validator;
use certbound_resource::transport::TlsServer;
use common::*;
use serde_json::json;

const PASSWORD: &str = "hunter2pw";

/// One key-serving origin: counts requests (and those with an `Authorization` header).
#[derive(Clone, Default)]
struct Hits {
    all: Arc<AtomicUsize>,
    with_auth: Arc<AtomicUsize>,
}

impl Hits {
    fn count(&self, h: &HeaderMap) {
        self.all.fetch_add(1, Ordering::SeqCst);
        if h.contains_key(header::AUTHORIZATION) {
            self.with_auth.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn all(&self) -> usize {
        self.all.load(Ordering::SeqCst)
    }
}

/// Serves discovery for `{origin}/t` advertising `jwks_uri(origin)`, `/keys`, and
/// `/to/{target}` redirecting to `{target}/keys` … on an https (TLS) or plain listener.
fn router(
    hits: Hits,
    jwks: Jwks,
    origin: String,
    jwks_uri: Arc<dyn Fn(&str) -> String + Send + Sync>,
    redirect_to: String,
) -> Router {
    let (h1, h2, h3) = (hits.clone(), hits.clone(), hits);
    let o = origin.clone();
    Router::new()
        .route(
            "/t/.well-known/openid-configuration",
            get(move |h: HeaderMap| {
                h1.count(&h);
                let doc = json!({"issuer": format!("{o}/t"), "jwks_uri": jwks_uri(&o)});
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/keys",
            get(move |h: HeaderMap| {
                h2.count(&h);
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        )
        .route(
            "/redirect",
            get(move |h: HeaderMap| {
                h3.count(&h);
                let to = format!("{redirect_to}/keys");
                async move {
                    (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response() as Response
                }
            }),
        )
}

struct World {
    pki: Pki,
    https: String,
    https_hits: Hits,
    plain: String,
    plain_hits: Hits,
}

/// An https origin and a plain-HTTP origin serving the same key set; `jwks_uri` decides
/// what the https origin's discovery document advertises.
async fn world(jwks_uri: fn(&World0) -> String) -> World {
    let pki = Pki::new();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwks = Jwks {
        keys: vec![key.public_jwk().with_kid("k1")],
    };
    let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w0 = World0 {
        https: format!(
            "https://127.0.0.1:{}",
            tls_listener.local_addr().unwrap().port()
        ),
        plain: format!(
            "http://127.0.0.1:{}",
            plain_listener.local_addr().unwrap().port()
        ),
    };
    let advertised = jwks_uri(&w0);
    let (https_hits, plain_hits) = (Hits::default(), Hits::default());
    let tls_router = router(
        https_hits.clone(),
        jwks.clone(),
        w0.https.clone(),
        Arc::new(move |_| advertised.clone()),
        w0.plain.clone(),
    );
    let plain_router = router(
        plain_hits.clone(),
        jwks,
        w0.plain.clone(),
        Arc::new(|o| format!("{o}/keys")),
        w0.plain.clone(),
    );
    let cfg = tls::server_config(&pki.server, ClientAuth::None).unwrap();
    tokio::spawn(TlsServer::new(tls_listener, cfg).serve(tls_router, std::future::pending()));
    tokio::spawn(async move {
        let _ = axum::serve(plain_listener, plain_router).await;
    });
    World {
        pki,
        https: w0.https,
        https_hits,
        plain: w0.plain,
        plain_hits,
    }
}

struct World0 {
    https: String,
    plain: String,
}

fn https_keys(w: &World0) -> String {
    format!("{}/keys", w.https)
}

async fn build(
    w: &World,
    issuer: &str,
    jwks_uri: Option<String>,
) -> Result<Validator, certbound_resource::BuildError> {
    let mut b = Validator::builder()
        .issuer(issuer.to_owned())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone());
    if let Some(u) = jwks_uri {
        b = b.jwks_uri(u);
    }
    b.build().await
}

#[tokio::test]
async fn a_plain_http_issuer_is_never_contacted() {
    let w = world(https_keys).await;
    let err = build(&w, &format!("{}/t", w.plain), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https only"), "{err}");
    assert_eq!(w.plain_hits.all(), 0, "no request over plain HTTP");
}

#[tokio::test]
async fn a_plain_http_jwks_uri_is_refused_whether_configured_or_discovered() {
    let w = world(|w| format!("{}/keys", w.plain)).await;
    let err = build(&w, &format!("{}/t", w.https), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("jwks_uri"), "{err}");
    assert!(err.to_string().contains("https only"), "{err}");
    let err = build(
        &w,
        &format!("{}/t", w.https),
        Some(format!("{}/keys", w.plain)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("https only"), "{err}");
    assert_eq!(w.plain_hits.all(), 0, "no request over plain HTTP");
}

#[tokio::test]
async fn a_jwks_redirect_to_plain_http_is_refused() {
    let w = world(|w| format!("{}/redirect", w.https)).await;
    let err = build(&w, &format!("{}/t", w.https), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("redirected to"), "{text}");
    assert!(text.contains("https only"), "{text}");
}

#[tokio::test]
async fn key_source_urls_with_credentials_are_refused_without_showing_the_password() {
    let w = world(|w| {
        format!(
            "https://user:{PASSWORD}@{}/keys",
            w.https.strip_prefix("https://").unwrap()
        )
    })
    .await;
    let issuer = format!("{}/t", w.https);
    let err = build(&w, &issuer, None).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("jwks_uri"), "{text}");
    assert!(text.contains("user name or password"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let with_creds = format!(
        "https://user:{PASSWORD}@{}/keys",
        w.https.strip_prefix("https://").unwrap()
    );
    let err = build(&w, &issuer, Some(with_creds)).await.unwrap_err();
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(err.to_string().contains("user name or password"), "{err}");
    assert_eq!(
        w.https_hits.with_auth.load(Ordering::SeqCst),
        0,
        "no credentials were sent"
    );
    assert_eq!(
        w.https_hits.all(),
        1,
        "only the discovery document was read"
    );
}
