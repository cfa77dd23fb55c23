//! Fault injection for the client: a token endpoint that misbehaves on command. Every case
//! ends in bounded time with a clear error (or a correct retry), a still-valid cached token
//! keeps being served, nothing panics, and no task outlives its request.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::{Json, Router, routing::get};
use certbound::client::{App, ClientError, HeaderOptions, RetryPolicy, TokenSource};
use certbound::core::ca::{DevCa, IssueSpec};
use certbound::core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound::core::{CertifiedKey, KeyKind, now_unix};
use certbound::resource::TlsServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Mode {
    Good = 0,
    Reset,
    Truncated,
    Oversized,
    Hang,
    InvalidJson,
    ServerError,
}

const MODES: [Mode; 7] = [
    Mode::Good,
    Mode::Reset,
    Mode::Truncated,
    Mode::Oversized,
    Mode::Hang,
    Mode::InvalidJson,
    Mode::ServerError,
];

struct Endpoint {
    url: String,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
}

fn good_body() -> String {
    let now = now_unix();
    let claims = serde_json::json!({"iss":"x","aud":"api://f","iat":now,"exp":now+7200});
    let key = certbound::core::PrivateKey::generate(KeyKind::EcP256).unwrap();
    let token = certbound::core::jose::sign_compact(
        &certbound::core::jose::JwsHeader::new(certbound::core::JwsAlgorithm::ES256),
        &claims,
        &key,
    )
    .unwrap();
    serde_json::json!({"token_type":"Bearer","expires_in":7200,"refresh_in":1,"access_token":token})
        .to_string()
}

/// A raw HTTP/1.1-over-TLS token endpoint whose behaviour follows `mode`.
async fn endpoint(identity: &CertifiedKey) -> Endpoint {
    let mut tls = server_config(identity, ClientAuth::Optional).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/token",
        listener.local_addr().unwrap().port()
    );
    let mode = Arc::new(AtomicU8::new(Mode::Good as u8));
    let hits = Arc::new(AtomicUsize::new(0));
    let (m, h) = (mode.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, m, h) = (acceptor.clone(), m.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                // Read the request head and body (the form is small).
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let mode = MODES[m.load(Ordering::SeqCst) as usize];
                let respond = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                match mode {
                    Mode::Good => {
                        let _ = s
                            .write_all(respond("200 OK", &good_body()).as_bytes())
                            .await;
                    }
                    Mode::Reset => return,
                    Mode::Truncated => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{\"access_tok")
                            .await;
                    }
                    Mode::Oversized => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n").await;
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..(20_000_000 / chunk.len()) {
                            if s.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                    }
                    Mode::Hang => {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
                    }
                    Mode::InvalidJson => {
                        let _ = s
                            .write_all(respond("200 OK", "{\"token_type\": [1,2").as_bytes())
                            .await;
                    }
                    Mode::ServerError => {
                        let _ = s
                            .write_all(respond("503 Service Unavailable", "{}").as_bytes())
                            .await;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Endpoint { url, mode, hits }
}

/// Discovery for `issuer`, pointing its token endpoint at `token_endpoint`.
async fn discovery(identity: &CertifiedKey, token_endpoint: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!(
        "https://127.0.0.1:{}/tenant",
        listener.local_addr().unwrap().port()
    );
    let doc = serde_json::json!({
        "issuer": issuer, "token_endpoint": token_endpoint, "jwks_uri": format!("{issuer}/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    });
    let app = Router::new().route(
        "/tenant/.well-known/openid-configuration",
        get(move || async move { Json(doc) }),
    );
    tokio::spawn(
        TlsServer::new(listener, server_config(identity, ClientAuth::None).unwrap())
            .serve(app, std::future::pending()),
    );
    issuer
}

fn app(issuer: &str, anchors: &TrustAnchors) -> App {
    App::builder()
        .client_id("fault-app")
        .authority(issuer)
        .client_secret("s3cr3t-value-for-faults")
        .trust_anchors(anchors.clone())
        .retry_policy(RetryPolicy {
            request_timeout: Duration::from_millis(800),
            retry_delay: Duration::from_millis(10),
            max_inline_wait: Duration::from_secs(1),
        })
        .build()
        .unwrap()
}

async fn acquire(app: &App, force: bool) -> Result<TokenSource, ClientError> {
    let opts = HeaderOptions::bearer().force_refresh(force);
    // A generous outer bound: a hang is a failure, not a slow pass.
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        app.acquire_token_for_app(&["api://f/.default"], &opts),
    )
    .await
    .expect("the call did not end in bounded time");
    r.map(|t| t.source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_ends_cleanly_and_the_cache_keeps_serving() {
    certbound::core::tls::install_default_provider();
    let ca = DevCa::generate("faults CA").unwrap();
    let id = ca
        .issue_certified_key(&IssueSpec::server("s", &["127.0.0.1"]), KeyKind::EcP256)
        .unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(ca.cert());
    let ep = endpoint(&id).await;
    let issuer = discovery(&id, ep.url.clone()).await;
    let metrics = tokio::runtime::Handle::current().metrics();

    let app = app(&issuer, &anchors);
    assert_eq!(
        acquire(&app, false).await.unwrap(),
        TokenSource::IdentityProvider
    );
    let baseline_tasks = metrics.num_alive_tasks();

    for mode in [
        Mode::Reset,
        Mode::Truncated,
        Mode::Oversized,
        Mode::Hang,
        Mode::InvalidJson,
        Mode::ServerError,
    ] {
        ep.mode.store(mode as u8, Ordering::SeqCst);
        let before = ep.hits.load(Ordering::SeqCst);
        let err = acquire(&app, true)
            .await
            .expect_err("a forced refresh against a broken endpoint must fail");
        let text = err.to_string();
        assert!(
            !text.is_empty() && !text.contains("s3cr3t"),
            "{mode:?}: {text}"
        );
        let tries = ep.hits.load(Ordering::SeqCst) - before;
        match mode {
            // Timeouts and 5xx are retried exactly once (docs/wire-formats.md (retries)); a reset after the request
            // was sent is not (the server may have acted on it).
            Mode::Hang | Mode::ServerError => {
                assert_eq!(tries, 2, "{mode:?}: {text}")
            }
            _ => assert!((1..=2).contains(&tries), "{mode:?}: {tries} tries"),
        }
        if mode == Mode::Oversized {
            assert!(text.contains("larger than"), "{text}");
        }
        // The still-valid cached token keeps being served (the background refresh fails quietly).
        assert_eq!(
            acquire(&app, false).await.unwrap(),
            TokenSource::Cache,
            "{mode:?}"
        );
    }

    // No task outlives its request: wait (bounded) for the count to settle back.
    let mut settled = false;
    for _ in 0..200 {
        if metrics.num_alive_tasks() <= baseline_tasks {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled,
        "tasks leaked: {} alive, baseline {baseline_tasks}",
        metrics.num_alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_and_expired_server_certificates_are_refused() {
    certbound::core::tls::install_default_provider();
    let ca = DevCa::generate("faults CA").unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(ca.cert());
    let now = now_unix();
    let expired = {
        let key = certbound::core::PrivateKey::generate(KeyKind::EcP256).unwrap();
        let spec =
            IssueSpec::server("s", &["127.0.0.1"]).valid_between(now - 10 * 86400, now - 86400);
        let leaf = ca.issue(&spec, &key).unwrap();
        // CertifiedKey::new refuses expired certificates, rightly; build the server's
        // rustls config from the parts directly.
        (leaf, key)
    };
    let foreign = DevCa::generate("someone else")
        .unwrap()
        .issue_certified_key(&IssueSpec::server("s", &["127.0.0.1"]), KeyKind::EcP256)
        .unwrap();

    for (what, chain, key) in [
        (
            "expired",
            vec![expired.0.der().clone()],
            expired.1.to_rustls(),
        ),
        (
            "untrusted",
            foreign.rustls_chain(),
            foreign.key().to_rustls(),
        ),
    ] {
        let cfg = rustls::ServerConfig::builder_with_provider(certbound::core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!(
            "https://127.0.0.1:{}/tenant",
            listener.local_addr().unwrap().port()
        );
        let app_router = Router::new().route(
            "/tenant/.well-known/openid-configuration",
            get(|| async { "{}" }),
        );
        tokio::spawn(TlsServer::new(listener, cfg).serve(app_router, std::future::pending()));
        let app = app(&issuer, &anchors);
        let err = acquire(&app, false).await.expect_err(what);
        let text = err.to_string().to_lowercase();
        assert!(
            text.contains("certificate") || text.contains("tls") || text.contains("discovery"),
            "{what}: {text}"
        );
    }
}
