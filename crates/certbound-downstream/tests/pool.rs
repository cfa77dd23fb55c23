//! The transport pool over real mutual TLS on loopback.

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
    certbound_core::ca::self_signed_certified_key(&IssueSpec::client(cn), KeyKind::EcP256).unwrap()
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
