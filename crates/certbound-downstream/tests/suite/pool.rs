//! The transport pool over real mutual TLS on loopback.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use axum::{Extension, Router, routing::get};
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_downstream::TransportPool;
use certbound_resource::transport::{TlsInfo, TlsServer};

struct Server {
    url: String,
    ca: DevCa,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    let ca = DevCa::generate("pool test CA").unwrap();
    let id = ca
        .issue_certified_key(
            &IssueSpec::server("srv", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let app = Router::new().route(
        "/who",
        get(|Extension(info): Extension<TlsInfo>| async move {
            let who = info
                .peer
                .map(|p| p.thumbprint.to_string())
                .unwrap_or_else(|| "none".into());
            format!("{who} {}", info.remote_addr.port())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let srv = TlsServer::new(listener, server_config(&id, ClientAuth::Optional).unwrap());
    tokio::spawn(srv.serve(app, async {
        let _ = rx.await;
    }));
    Server {
        url: format!("https://127.0.0.1:{}/who", addr.port()),
        ca,
        _stop: tx,
    }
}

fn client_cert(cn: &str) -> CertifiedKey {
    certbound_test::pki::self_signed_client(cn, KeyKind::EcP256)
}

async fn who(
    pool: &TransportPool,
    cert: Option<&CertifiedKey>,
    url: &str,
) -> (String, String, reqwest::Version) {
    let resp = pool
        .client_for(cert)
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    let version = resp.version();
    let text = resp.text().await.unwrap();
    let mut it = text.split(' ');
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
        version,
    )
}

fn anchors(s: &Server) -> TrustAnchors {
    let mut a = TrustAnchors::default();
    a.add(s.ca.cert());
    a
}

#[tokio::test]
async fn presents_the_right_certificate_and_reuses_connections() {
    certbound_core::tls::install_default_provider();
    let s = server().await;
    let pool = TransportPool::builder().trust(anchors(&s)).build().unwrap();
    let a = client_cert("a");
    let b = client_cert("b");

    let (t1, port1, v) = who(&pool, Some(&a), &s.url).await;
    assert_eq!(t1, a.thumbprint().to_string());
    assert_eq!(v, reqwest::Version::HTTP_2, "ALPN negotiates HTTP/2");
    let (t2, port2, _) = who(&pool, Some(&a), &s.url).await;
    assert_eq!(t2, t1);
    assert_eq!(port1, port2, "the second call reuses the pooled connection");

    let (tb, portb, _) = who(&pool, Some(&b), &s.url).await;
    assert_eq!(tb, b.thumbprint().to_string());
    assert_ne!(portb, port1, "another certificate gets its own connection");

    let (tn, _, _) = who(&pool, None, &s.url).await;
    assert_eq!(tn, "none");
}

#[tokio::test]
async fn pool_is_bounded_and_evicts_least_recently_used() {
    certbound_core::tls::install_default_provider();
    let s = server().await;
    let pool = TransportPool::builder()
        .trust(anchors(&s))
        .max_clients(2)
        .build()
        .unwrap();
    let certs: Vec<_> = (0..3).map(|i| client_cert(&format!("c{i}"))).collect();
    who(&pool, Some(&certs[0]), &s.url).await;
    who(&pool, Some(&certs[1]), &s.url).await;
    // Touch c0 so c1 becomes the least recently used.
    who(&pool, Some(&certs[0]), &s.url).await;
    who(&pool, Some(&certs[2]), &s.url).await;
    assert!(
        pool.bound_clients() <= 2,
        "bounded: {}",
        pool.bound_clients()
    );
    assert!(
        pool.holds(&certs[0].thumbprint()),
        "recently used client kept"
    );
    assert!(pool.holds(&certs[2].thumbprint()), "newest client kept");
    assert!(
        !pool.holds(&certs[1].thumbprint()),
        "least recently used evicted"
    );
    // An evicted certificate still works: a fresh client is built.
    let (t, _, _) = who(&pool, Some(&certs[1]), &s.url).await;
    assert_eq!(t, certs[1].thumbprint().to_string());
}

#[tokio::test]
async fn untrusted_server_is_refused() {
    certbound_core::tls::install_default_provider();
    let s = server().await;
    let pool = TransportPool::builder()
        .trust(TrustAnchors::default())
        .build()
        .unwrap();
    let err = pool
        .client_for(None)
        .unwrap()
        .get(&s.url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err}");
}

/// (path, presented thumbprint or `none`, remote port) per request.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, u16)>>>;

/// One loopback TLS server that is both the authority (discovery + token endpoint) and the
/// downstream API; it records the TCP connection (remote port) and the presented
/// certificate of every request.
struct Combined {
    issuer: String,
    ca: DevCa,
    seen: Seen,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn combined_server() -> Combined {
    use axum::routing::post;
    let ca = DevCa::generate("shared pool test CA").unwrap();
    let id = ca
        .issue_certified_key(&IssueSpec::server("srv", &["127.0.0.1"]), KeyKind::EcP256)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("https://127.0.0.1:{port}/tenant");
    let seen: Seen = Default::default();
    let record = |seen: &Seen, path: &str, info: &TlsInfo| {
        let who = info
            .peer
            .as_ref()
            .map(|p| p.thumbprint.to_string())
            .unwrap_or_else(|| "none".into());
        seen.lock()
            .unwrap()
            .push((path.to_string(), who, info.remote_addr.port()));
    };
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let meta = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "mtls_endpoint_aliases": { "token_endpoint": format!("{issuer}/mtls/token") },
    });
    let app = Router::new()
        .route(
            "/tenant/.well-known/openid-configuration",
            get(move |Extension(info): Extension<TlsInfo>| async move {
                record(&s1, "discovery", &info);
                axum::Json(meta)
            }),
        )
        .route(
            "/tenant/mtls/token",
            post(move |Extension(info): Extension<TlsInfo>| async move {
                record(&s2, "token", &info);
                axum::Json(serde_json::json!({
                    "access_token": "opaque-bound-token",
                    "token_type": "mtls_pop",
                    "expires_in": 3600,
                }))
            }),
        )
        .route(
            "/api/who",
            get(move |Extension(info): Extension<TlsInfo>| async move {
                record(&s3, "api", &info);
                "ok"
            }),
        );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let srv = TlsServer::new(listener, server_config(&id, ClientAuth::Optional).unwrap());
    tokio::spawn(srv.serve(app, async {
        let _ = rx.await;
    }));
    Combined {
        issuer,
        ca,
        seen,
        _stop: tx,
    }
}

#[tokio::test]
async fn token_request_and_downstream_call_share_one_client_and_connection() {
    use certbound_client::config::DownstreamApiConfig;
    use certbound_client::{App, ProtocolScheme};
    use certbound_downstream::{CallOptions, Downstream};

    certbound_core::tls::install_default_provider();
    let s = combined_server().await;
    let mut trust = TrustAnchors::default();
    trust.add(s.ca.cert());
    let cert = client_cert("shared");
    let app = App::builder()
        .client_id("shared-pool-test")
        .authority(s.issuer.clone())
        .certificate(cert.clone())
        .trust_anchors(trust.clone())
        .build()
        .unwrap();
    // The downstream side takes the app's pool (same trust anchors → same profile).
    let downstream = Downstream::for_app(app.clone(), trust).unwrap();
    assert!(downstream.pool().shares_clients_with(app.transport()));

    let api = DownstreamApiConfig {
        base_url: Some(s.issuer.replace("/tenant", "/api")),
        relative_path: Some("/who".into()),
        protocol_scheme: ProtocolScheme::MtlsPop,
        request_app_token: true,
        scopes: vec!["api://shared/.default".into()],
        ..Default::default()
    };
    let resp = downstream
        .call_api("Shared", &api, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.token_requests_sent(), 1);

    // One certificate-bound client in the one pool, for both the token and the API call.
    assert_eq!(app.transport().bound_clients(), 1);
    assert!(app.transport().holds(&cert.thumbprint()));
    assert!(downstream.pool().holds(&cert.thumbprint()));

    let seen = s.seen.lock().unwrap().clone();
    let tp = cert.thumbprint().to_string();
    let bound: Vec<_> = seen.iter().filter(|(_, who, _)| *who == tp).collect();
    let paths: Vec<&str> = bound.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["token", "api"], "{seen:?}");
    let ports: std::collections::BTreeSet<u16> = bound.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(
        ports.len(),
        1,
        "the token request and the downstream call share one TLS connection: {seen:?}"
    );
}

#[tokio::test]
async fn shared_pool_is_bounded_and_evicts_least_recently_used_across_profiles() {
    certbound_core::tls::install_default_provider();
    let s = server().await;
    let pool = TransportPool::builder()
        .trust(anchors(&s))
        .max_clients(2)
        .build()
        .unwrap();
    // A second handle on the same clients, with other timeouts (another profile).
    let other = pool.with_settings(certbound_downstream::TransportSettings {
        connect_timeout: std::time::Duration::from_secs(3),
        ..Default::default()
    });
    assert!(other.shares_clients_with(&pool));
    let a = client_cert("a");
    let b = client_cert("b");
    let _ = pool.client_for(Some(&a)).unwrap();
    let _ = other.client_for(Some(&b)).unwrap();
    assert_eq!(pool.bound_clients(), 2);
    // Touch `a`, then a third entry evicts the least recently used (`b` under `other`).
    let _ = pool.client_for(Some(&a)).unwrap();
    let _ = other.client_for(Some(&a)).unwrap();
    assert_eq!(pool.bound_clients(), 2);
    assert!(pool.holds(&a.thumbprint()));
    assert!(other.holds(&a.thumbprint()));
    assert!(!other.holds(&b.thumbprint()), "least recently used evicted");
    // The same certificate under the same profile is the same client: one connection.
    let (_, p1, _) = who(&pool, Some(&a), &s.url).await;
    let (_, p2, _) = who(&pool, Some(&a), &s.url).await;
    assert_eq!(p1, p2);
}
