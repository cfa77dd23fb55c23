//! The client against hostile discovery documents and token endpoints, over real TLS on
//! loopback: absurd lifetimes, endpoints carrying credentials.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use certbound_client::{App, ClientError, HeaderOptions, RetryPolicy};
use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::tls::{ClientAuth, server_config};
use certbound_core::{Certificate, JwsAlgorithm, KeyKind, PrivateKey, now_unix};
use certbound_resource::transport::TlsServer;
use serde_json::{Value, json};

const SCOPE: &str = "api://resource/.default";
const PASSWORD: &str = "hunter2pw";

/// What the hostile server answers.
#[derive(Clone)]
struct Script {
    /// Builds the discovery document from the server's base URL.
    discovery: Arc<dyn Fn(&str) -> Value + Send + Sync>,
    /// The token endpoint's JSON answer.
    token: Arc<dyn Fn() -> Value + Send + Sync>,
}

struct Hostile {
    base: String,
    ca: Certificate,
    token_requests: Arc<AtomicUsize>,
    basic_auth_seen: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Hostile {
    fn authority(&self) -> String {
        format!("{}/t/v2.0", self.base)
    }
    fn app(&self) -> App {
        App::builder()
            .client_id("app-1")
            .authority(self.authority())
            .client_secret("client-secret-value")
            .add_trust_anchor(&self.ca)
            .retry_policy(RetryPolicy {
                request_timeout: std::time::Duration::from_secs(5),
                retry_delay: std::time::Duration::from_millis(10),
                max_inline_wait: std::time::Duration::from_secs(1),
            })
            .build()
            .unwrap()
    }
}

fn normal_discovery(base: &str) -> Value {
    json!({
        "issuer": format!("{base}/t/v2.0"),
        "token_endpoint": format!("{base}/t/token"),
        "jwks_uri": format!("{base}/t/keys"),
    })
}

async fn start(script: Script) -> Hostile {
    let ca = DevCa::generate("hostile CA").unwrap();
    let tls = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let token_requests = Arc::new(AtomicUsize::new(0));
    let basic_auth_seen = Arc::new(AtomicUsize::new(0));
    let (d, b) = (script.discovery.clone(), base.clone());
    let (t, n, basic) = (
        script.token.clone(),
        token_requests.clone(),
        basic_auth_seen.clone(),
    );
    let basic2 = basic_auth_seen.clone();
    let app = Router::new()
        .route(
            "/t/v2.0/.well-known/openid-configuration",
            get(move |h: HeaderMap| {
                let doc = d(&b);
                if h.contains_key("authorization") {
                    basic2.fetch_add(1, Ordering::SeqCst);
                }
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/t/token",
            post(move |h: HeaderMap| {
                n.fetch_add(1, Ordering::SeqCst);
                if h.contains_key("authorization") {
                    basic.fetch_add(1, Ordering::SeqCst);
                }
                let body = t();
                async move { axum::Json(body) }
            }),
        );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = TlsServer::new(listener, server_config(&tls, ClientAuth::Optional).unwrap());
    tokio::spawn(async move {
        let _ = server
            .serve(app, async move {
                let _ = rx.await;
            })
            .await;
    });
    Hostile {
        base,
        ca: ca.cert().clone(),
        token_requests,
        basic_auth_seen,
        _stop: tx,
    }
}

fn jwt_expiring_at(exp: i64) -> String {
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    sign_compact(
        &JwsHeader::new(JwsAlgorithm::ES256).typ("at+jwt"),
        &json!({"aud": SCOPE, "exp": exp, "sub": "app-1"}),
        &key,
    )
    .unwrap()
}

async fn token_answering(body: Value) -> Result<certbound_client::AppToken, ClientError> {
    let token = Arc::new(body);
    let s = start(Script {
        discovery: Arc::new(normal_discovery),
        token: Arc::new(move || (*token).clone()),
    })
    .await;
    s.app()
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::default())
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_expires_in_never_wraps_and_never_outlives_the_jwt_exp() {
    let exp = now_unix() + 3600;
    let jwt = jwt_expiring_at(exp);
    let hundred_years = 100_i64 * 365 * 24 * 3600;
    let big: Value = serde_json::from_str("99999999999999999999").unwrap();
    for expires_in in [
        json!(i64::MAX),
        json!(1e308),
        big.clone(),
        json!("99999999999999999999"),
        json!(hundred_years),
    ] {
        let t = token_answering(json!({
            "token_type": "Bearer", "access_token": jwt, "expires_in": expires_in,
            "refresh_in": expires_in,
        }))
        .await
        .unwrap();
        assert_eq!(t.expires_on, exp, "expires_in {expires_in}");
    }
    // An opaque token has no `exp` to bound it: saturated, still in the future.
    for expires_in in [json!(i64::MAX), json!(1e308), big] {
        let t = token_answering(json!({
            "token_type": "Bearer", "access_token": "opaque-token", "expires_in": expires_in,
        }))
        .await
        .unwrap();
        assert!(t.expires_on > now_unix(), "{expires_in}: {}", t.expires_on);
    }
}

/// A discovery document that is normal but for one member replaced by `bad(base)`.
fn discovery_with(member: &'static str, bad: fn(&str) -> Value) -> Script {
    Script {
        discovery: Arc::new(move |base| {
            let mut d = normal_discovery(base);
            if let Some((outer, inner)) = member.split_once('.') {
                let mut m = serde_json::Map::new();
                m.insert(inner.to_string(), bad(base));
                d[outer] = Value::Object(m);
            } else {
                d[member] = bad(base);
            }
            d
        }),
        token: Arc::new(
            || json!({"token_type": "Bearer", "access_token": "opaque-token", "expires_in": 3600}),
        ),
    }
}

fn with_userinfo(base: &str, path: &str) -> Value {
    let rest = base.strip_prefix("https://").unwrap();
    json!(format!("https://user:{PASSWORD}@{rest}{path}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn discovered_endpoints_with_credentials_are_refused_without_showing_the_password() {
    type Case = (&'static str, fn(&str) -> Value, HeaderOptions);
    let cases: [Case; 3] = [
        (
            "token_endpoint",
            |b| with_userinfo(b, "/t/token"),
            HeaderOptions::default(),
        ),
        (
            "mtls_endpoint_aliases.token_endpoint",
            |b| with_userinfo(b, "/t/token"),
            HeaderOptions::mtls_pop(),
        ),
        (
            "issuer",
            |b| with_userinfo(b, "/t/v2.0"),
            HeaderOptions::default(),
        ),
    ];
    for (member, bad, options) in cases {
        let s = start(discovery_with(member, bad)).await;
        let cert =
            ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
        let app = App::builder()
            .client_id("app-1")
            .authority(s.authority())
            .certificate(cert)
            .add_trust_anchor(&s.ca)
            .build()
            .unwrap();
        let err = app
            .authorization_header_for_app(&[SCOPE], &options)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ClientError::Discovery { .. }),
            "{member}: {text}"
        );
        assert!(
            text.contains(member.rsplit('.').next().unwrap()),
            "{member}: {text}"
        );
        assert!(text.contains("user name or password"), "{member}: {text}");
        assert!(!text.contains(PASSWORD), "{member}: {text}");
        assert_eq!(s.token_requests.load(Ordering::SeqCst), 0, "{member}");
        assert_eq!(s.basic_auth_seen.load(Ordering::SeqCst), 0, "{member}");
    }
}

#[test]
fn configured_authority_or_instance_with_credentials_is_refused() {
    let e = App::builder()
        .client_id("c")
        .authority(format!("https://u:{PASSWORD}@idp.example/t/v2.0"))
        .client_secret("s")
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("AzureAd.Authority"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let e = App::builder()
        .client_id("c")
        .instance(format!("https://u:{PASSWORD}@login.microsoftonline.com/"))
        .tenant_id("t")
        .client_secret("s")
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("AzureAd.Instance"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let e = certbound_client::Authority::parse(&format!("https://:{PASSWORD}@idp.example/t"), None)
        .unwrap_err();
    assert!(!e.to_string().contains(PASSWORD), "{e}");
}

#[test]
fn an_unusable_trust_anchor_keeps_its_typed_cause_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\n%%% not base64 %%%\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = App::builder()
        .client_id("c")
        .authority("https://idp.example/t/v2.0")
        .client_secret("s")
        .add_ca_cert_file(&path)
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("TLS setup: trust anchor "), "{text}");
    assert!(text.contains("ca.pem"), "{text}");
    // The cause is the typed certificate error, not a copy of its text.
    let source = std::error::Error::source(&e).expect("a source");
    let cert = source
        .downcast_ref::<certbound_core::CertError>()
        .expect("the source is a CertError");
    assert!(text.contains(&cert.to_string()), "{text} / {cert}");
    // Clone keeps the cause (every single-flight waiter gets the same error).
    let again = e.clone();
    assert!(std::error::Error::source(&again).is_some());
}
