//! End to end, in process: development authority → client → downstream mTLS call →
//! resource-server validation and binding check.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use certbound::authority::{
    AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority, RunningAuthority,
};
use certbound::cli::sample;
use certbound::client::config::DownstreamApiConfig;
use certbound::client::{App, HeaderOptions, ProtocolScheme};
use certbound::core::ca::{self, IssueSpec};
use certbound::core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound::core::{CertifiedKey, KeyKind};
use certbound::downstream::{CallOptions, Downstream, TransportPool};
use certbound::resource::{TlsServer, Validator};

const AUD: &str = "api://e2e";

struct World {
    _dir: tempfile::TempDir,
    authority: DevAuthority,
    running: RunningAuthority,
    anchors: TrustAnchors,
}

async fn world() -> World {
    world_with(AuthorityOptions::default()).await
}

async fn world_with(options: AuthorityOptions) -> World {
    certbound::core::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let authority = DevAuthority::open_or_init(dir.path().join("a"), options).unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(&running.ca_cert());
    World {
        _dir: dir,
        authority,
        running,
        anchors,
    }
}

impl World {
    fn client(&self, cn: &str) -> CertifiedKey {
        let cert = ca::self_signed_certified_key(&IssueSpec::client(cn), KeyKind::EcP256).unwrap();
        self.running
            .register(
                ClientRegistration::with_certificate(
                    "e2e-app",
                    cert.leaf().clone(),
                    CertAuthMethod::SelfSignedTlsClientAuth,
                )
                // Bearer calls authenticate with private_key_jwt.
                .auth_method(certbound::authority::AuthMethod::PrivateKeyJwt)
                .audience(AUD),
            )
            .unwrap();
        cert
    }

    fn app(&self, cert: &CertifiedKey) -> App {
        App::builder()
            .client_id("e2e-app")
            .authority(self.running.issuer())
            .certificate(cert.clone())
            .trust_anchors(self.anchors.clone())
            .build()
            .unwrap()
    }

    /// A downstream client for `app` trusting the authority's CA.
    fn downstream(&self, app: &App) -> Downstream {
        Downstream::new(
            app.clone(),
            TransportPool::builder()
                .trust(self.anchors.clone())
                .build()
                .unwrap(),
        )
    }

    /// Starts the sample API; returns its base URL.
    async fn api(&self, require_binding: bool) -> String {
        self.api_with(require_binding, false).await
    }

    /// Starts the sample API, optionally demanding DPoP nonces; returns its base URL.
    async fn api_with(&self, require_binding: bool, dpop_nonce: bool) -> String {
        let validator = Validator::builder()
            .issuer(self.running.issuer())
            .audience(AUD)
            .require_binding(require_binding)
            .require_dpop_nonce(dpop_nonce)
            .trust_anchors(self.anchors.clone())
            .build()
            .await
            .unwrap();
        let id = self
            .authority
            .ca()
            .issue_certified_key(&IssueSpec::server("api", &["127.0.0.1"]), KeyKind::EcP256)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = server_config(&id, ClientAuth::Optional).unwrap();
        tokio::spawn(
            TlsServer::new(listener, tls).serve(sample::router(validator), std::future::pending()),
        );
        format!("https://127.0.0.1:{port}")
    }
}

fn api_config(base: &str, scheme: ProtocolScheme) -> DownstreamApiConfig {
    DownstreamApiConfig {
        base_url: Some(base.into()),
        relative_path: Some("/whoami".into()),
        http_method: "GET".into(),
        protocol_scheme: scheme,
        request_app_token: true,
        scopes: vec![format!("{AUD}/.default")],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_scenario_behaves_for_every_scheme() {
    for scheme in ProtocolScheme::ALL {
        let report = certbound::cli::demo::run_scenario(scheme, false).await;
        assert!(report.ok, "{scheme}: {report:#?}");
    }
}

#[tokio::test]
async fn bearer_api_works_with_an_unbound_token() {
    let w = world().await;
    let cert = w.client("bearer-app");
    let base = w.api(false).await;
    let app = w.app(&cert);
    let ds = w.downstream(&app);
    let resp = ds
        .call_api(
            "api",
            &api_config(&base, ProtocolScheme::Bearer),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text_lossy());
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["bound"], false);
    assert!(body.get("cnf").is_none());
}

#[tokio::test]
async fn unbound_token_is_refused_where_binding_is_required() {
    let w = world().await;
    let cert = w.client("app");
    let base = w.api(true).await;
    let ds = w.downstream(&w.app(&cert));
    let resp = ds
        .call_api(
            "api",
            &api_config(&base, ProtocolScheme::Bearer),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.www_authenticate().unwrap().contains("invalid_token"));
    // The client refreshed once and retried once on invalid_token, then gave up.
    assert!(resp.was_retried());
}

#[tokio::test]
async fn certificate_rotation_gets_a_new_binding_and_a_new_transport() {
    let w = world().await;
    let base = w.api(true).await;
    let pool = TransportPool::builder()
        .trust(w.anchors.clone())
        .build()
        .unwrap();
    let api = api_config(&base, ProtocolScheme::MtlsPop);

    let old = w.client("rotating-app");
    let app_old = w.app(&old);
    let ds_old = Downstream::new(app_old.clone(), pool.clone());
    let r = ds_old
        .call_api("api", &api, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let old_token = app_old
        .authorization_header_for_app(&api.scopes, &HeaderOptions::mtls_pop())
        .await
        .unwrap();

    // Rotate: a new certificate for the same client id (the registration is replaced).
    let new = w.client("rotating-app");
    assert_ne!(new.thumbprint(), old.thumbprint());
    let app_new = w.app(&new);
    let ds_new = Downstream::new(app_new.clone(), pool.clone());
    let r = ds_new
        .call_api("api", &api, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text_lossy());
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["cnf"]["x5t#S256"], new.thumbprint().to_base64url());
    assert!(pool.holds(&old.thumbprint()) && pool.holds(&new.thumbprint()));

    // The old token presented with the new certificate is refused.
    let client = pool.client_for(Some(&new)).unwrap();
    let resp = client
        .get(format!("{base}/whoami"))
        .header("authorization", old_token.value())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn invalid_token_triggers_one_forced_refresh_and_one_retry() {
    let w = world().await;
    let cert = w.client("retry-app");
    let app = w.app(&cert);
    // A downstream API that refuses the first request with invalid_token, then accepts.
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let router = axum::Router::new().route(
        "/whoami",
        axum::routing::get(move || {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    axum::response::Response::builder()
                        .status(401)
                        .header(
                            "www-authenticate",
                            "mtls_pop error=\"invalid_token\", error_description=\"revoked\"",
                        )
                        .body(axum::body::Body::empty())
                        .unwrap()
                } else {
                    axum::response::Response::new(axum::body::Body::from("{}"))
                }
            }
        }),
    );
    let id = w
        .authority
        .ca()
        .issue_certified_key(&IssueSpec::server("api", &["127.0.0.1"]), KeyKind::EcP256)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        TlsServer::new(listener, server_config(&id, ClientAuth::Optional).unwrap())
            .serve(router, std::future::pending()),
    );
    let ds = w.downstream(&app);
    let before = app.token_requests_sent();
    let resp = ds
        .call_api(
            "api",
            &api_config(
                &format!("https://127.0.0.1:{port}"),
                ProtocolScheme::MtlsPop,
            ),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.was_retried());
    assert_eq!(hits.load(Ordering::SeqCst), 2, "exactly one retry");
    assert_eq!(
        app.token_requests_sent() - before,
        2,
        "first token, then one forced refresh"
    );
}

/// DPoP where both the authority and the API demand nonces: the downstream client answers
/// each `use_dpop_nonce` once, remembers the nonce, and later calls go straight through.
#[tokio::test]
async fn dpop_nonces_at_the_token_endpoint_and_the_api_are_answered_once() {
    let w = world_with(AuthorityOptions {
        dpop_nonce: true,
        ..AuthorityOptions::default()
    })
    .await;
    let cert = w.client("dpop-app");
    let app = w.app(&cert);
    let base = w.api_with(true, true).await;
    let ds = w.downstream(&app);
    let api = api_config(&base, ProtocolScheme::DPoP);
    let first = ds
        .call_api("api", &api, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(first.status(), 200, "{}", first.text_lossy());
    assert!(first.was_retried(), "the API's use_dpop_nonce was answered");
    assert_eq!(
        app.token_requests_sent(),
        2,
        "one use_dpop_nonce answer at the token endpoint, one retry"
    );
    let body: serde_json::Value = serde_json::from_slice(first.body()).unwrap();
    assert_eq!(body["scheme"], "DPoP");
    assert_eq!(body["cnf"]["jkt"], app.proof_key().thumbprint().as_str());
    let second = ds
        .call_api("api", &api, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert!(
        !second.was_retried(),
        "the remembered nonce went with the first proof"
    );
    assert_eq!(
        app.token_requests_sent(),
        2,
        "the token came from the cache"
    );
}

/// `Pop` and `DPoP` through the downstream client against an API that requires binding, and
/// a proof-key rotation in between: the next call acquires a token for the new key.
#[tokio::test]
async fn key_bound_schemes_through_downstream_and_proof_key_rotation() {
    let w = world().await;
    let cert = w.client("pop-app");
    let app = w.app(&cert);
    let base = w.api(true).await;
    let ds = w.downstream(&app);
    for (scheme, member) in [(ProtocolScheme::Pop, "kid"), (ProtocolScheme::DPoP, "jkt")] {
        let api = api_config(&base, scheme);
        let r = ds
            .call_api("api", &api, CallOptions::default())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}: {}", r.text_lossy());
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["cnf"][member], app.proof_key().thumbprint().as_str());
        assert!(
            body["cert_thumbprint"].is_null(),
            "{scheme}: no TLS client certificate"
        );
    }
    let before = app.token_requests_sent();
    let old = app.proof_key().thumbprint();
    app.rotate_proof_key().unwrap();
    let r = ds
        .call_api(
            "api",
            &api_config(&base, ProtocolScheme::DPoP),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_ne!(body["cnf"]["jkt"], old.as_str());
    assert_eq!(body["cnf"]["jkt"], app.proof_key().thumbprint().as_str());
    assert_eq!(app.token_requests_sent(), before + 1);
}
