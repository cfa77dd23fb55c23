//! Downstream calls against hostile APIs over real TLS on loopback: redirects (to another
//! host, to `http://`, in a loop) and a `BaseUrl` carrying credentials.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, routing::get};
use certbound_authority::{
    AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority, RunningAuthority,
};
use certbound_client::config::DownstreamApiConfig;
use certbound_client::{App, ProtocolScheme};
use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_downstream::{CallOptions, Downstream, DownstreamError, TransportPool};
use certbound_resource::transport::{TlsInfo, TlsServer};

const AUDIENCE: &str = "api://hostile";

/// What a server saw on one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    dpop: bool,
    client_certificate: bool,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    _running: RunningAuthority,
    anchors: TrustAnchors,
    app: App,
    /// The API the app calls.
    api: String,
    api_log: Log,
    /// Another origin the API redirects to.
    other: String,
    other_log: Log,
    /// A plain-HTTP origin the API redirects to.
    plain: String,
    plain_log: Log,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn record(log: &Log, path: &str, h: &HeaderMap, info: Option<&TlsInfo>) {
    log.0.lock().unwrap().push(Seen {
        path: path.into(),
        authorization: h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        dpop: h.contains_key("dpop"),
        client_certificate: info.is_some_and(|i| i.peer.is_some()),
    });
}

/// Serves `router` over TLS with a certificate of `ca`; returns the origin.
async fn serve_tls(
    ca: &DevCa,
    router: Router,
    stops: &mut Vec<tokio::sync::oneshot::Sender<()>>,
) -> String {
    let id = ca
        .issue_certified_key(
            &IssueSpec::server("api", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let srv = TlsServer::new(listener, server_config(&id, ClientAuth::Optional).unwrap());
    tokio::spawn(srv.serve(router, async {
        let _ = rx.await;
    }));
    stops.push(tx);
    origin
}

fn redirect(status: StatusCode, to: &str) -> Response {
    (status, [(header::LOCATION, to.to_string())], "moved").into_response()
}

#[derive(Clone)]
struct ApiState {
    log: Log,
    other: String,
    plain: String,
}

async fn api_handler(
    State(s): State<ApiState>,
    Extension(info): Extension<TlsInfo>,
    uri: axum::http::Uri,
    h: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    record(&s.log, &path, &h, Some(&info));
    match path.as_str() {
        "/to-other" => redirect(StatusCode::FOUND, &format!("{}/landing?k=v", s.other)),
        "/to-http" => redirect(StatusCode::FOUND, &format!("{}/landing", s.plain)),
        "/to-same" => redirect(StatusCode::FOUND, "/landing"),
        "/to-same-307" => redirect(StatusCode::TEMPORARY_REDIRECT, "/landing"),
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        _ => (StatusCode::OK, "api landing").into_response(),
    }
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let authority =
        DevAuthority::open_or_init(dir.path().join("a"), AuthorityOptions::default()).unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(&running.ca_cert());
    let cert: CertifiedKey =
        ca::self_signed_certified_key(&IssueSpec::client("hostile-test"), KeyKind::EcP256).unwrap();
    running
        .register(
            ClientRegistration::with_certificate(
                "hostile-test",
                cert.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            // Bearer, DPoP and Pop tokens come by a client assertion the certificate signs.
            .auth_method(certbound_authority::AuthMethod::PrivateKeyJwt)
            .auth_method(certbound_authority::AuthMethod::SelfSignedTlsClientAuth)
            .audience(AUDIENCE),
        )
        .unwrap();
    let app = App::builder()
        .client_id("hostile-test")
        .authority(running.issuer())
        .certificate(cert)
        .trust_anchors(anchors.clone())
        .build()
        .unwrap();
    let mut stops = Vec::new();
    let other_log = Log::default();
    let ol = other_log.clone();
    let other = serve_tls(
        authority.ca(),
        Router::new().route(
            "/landing",
            get(
                move |Extension(info): Extension<TlsInfo>, h: HeaderMap| async move {
                    record(&ol, "/landing", &h, Some(&info));
                    "hostile answer"
                },
            ),
        ),
        &mut stops,
    )
    .await;
    let plain_log = Log::default();
    let pl = plain_log.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let plain_router = Router::new().route(
        "/landing",
        get(move |h: HeaderMap| async move {
            record(&pl, "/landing", &h, None);
            "plain answer"
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, plain_router).await;
    });
    let api_log = Log::default();
    let state = ApiState {
        log: api_log.clone(),
        other: other.clone(),
        plain: plain.clone(),
    };
    let api = serve_tls(
        authority.ca(),
        Router::new()
            .route("/{*path}", any(api_handler))
            .with_state(state),
        &mut stops,
    )
    .await;
    Env {
        _dir: dir,
        _running: running,
        anchors,
        app,
        api,
        api_log,
        other,
        other_log,
        plain,
        plain_log,
        _stops: stops,
    }
}

impl Env {
    fn downstream(&self) -> Downstream {
        Downstream::new(
            self.app.clone(),
            TransportPool::builder()
                .trust(self.anchors.clone())
                .build()
                .unwrap(),
        )
    }
    async fn call(
        &self,
        scheme: ProtocolScheme,
        path: &str,
    ) -> Result<certbound_downstream::DownstreamResponse, DownstreamError> {
        let api = DownstreamApiConfig {
            base_url: Some(self.api.clone()),
            relative_path: Some(path.into()),
            protocol_scheme: scheme,
            request_app_token: scheme.uses_token(),
            scopes: vec![format!("{AUDIENCE}/.default")],
            ..Default::default()
        };
        self.downstream()
            .call_api("Hostile", &api, CallOptions::default())
            .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bound_and_proof_carrying_calls_never_follow_a_redirect() {
    let env = start().await;
    for scheme in [
        ProtocolScheme::MtlsPop,
        ProtocolScheme::DPoP,
        ProtocolScheme::Pop,
        ProtocolScheme::Mtls,
    ] {
        for (path, target) in [
            ("/to-other", format!("{}/landing", env.other)),
            ("/to-same", format!("{}/landing", env.api)),
            ("/to-http", format!("{}/landing", env.plain)),
        ] {
            let err = env.call(scheme, path).await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, DownstreamError::Redirect { status: 302, location, .. } if *location == target),
                "{scheme:?} {path}: {text}"
            );
            assert!(text.contains(&target), "{scheme:?} {path}: {text}");
            assert!(!text.contains("k=v"), "no query in errors: {text}");
        }
    }
    assert!(env.other_log.all().is_empty(), "{:?}", env.other_log.all());
    assert!(env.plain_log.all().is_empty(), "{:?}", env.plain_log.all());
    assert!(
        env.api_log.all().iter().all(|s| s.path != "/landing"),
        "{:?}",
        env.api_log.all()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_calls_follow_only_same_origin_https_redirects_with_the_token_reattached() {
    let env = start().await;
    for path in ["/to-same", "/to-same-307"] {
        let resp = env.call(ProtocolScheme::Bearer, path).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.text_lossy(), "api landing");
    }
    let landings: Vec<Seen> = env
        .api_log
        .all()
        .into_iter()
        .filter(|s| s.path == "/landing")
        .collect();
    assert_eq!(landings.len(), 2, "{landings:?}");
    for s in &landings {
        let auth = s.authorization.as_deref().unwrap_or_default();
        assert!(auth.starts_with("Bearer ey"), "token re-attached: {s:?}");
        assert!(!s.dpop && !s.client_certificate, "{s:?}");
    }

    let err = env
        .call(ProtocolScheme::Bearer, "/to-other")
        .await
        .unwrap_err();
    assert!(matches!(err, DownstreamError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("same origin"), "{err}");
    assert!(err.to_string().contains(&env.other), "{err}");
    let err = env
        .call(ProtocolScheme::Bearer, "/to-http")
        .await
        .unwrap_err();
    assert!(matches!(err, DownstreamError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
    assert!(env.other_log.all().is_empty(), "{:?}", env.other_log.all());
    assert!(env.plain_log.all().is_empty(), "{:?}", env.plain_log.all());

    let before = env.api_log.all().len();
    let err = env.call(ProtocolScheme::Bearer, "/loop").await.unwrap_err();
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    assert_eq!(
        env.api_log.all().len() - before,
        4,
        "the first request and 3 hops"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_url_with_credentials_is_refused_without_showing_the_password() {
    let env = start().await;
    let api = DownstreamApiConfig {
        base_url: Some(format!(
            "https://user:hunter2pw@{}",
            env.api.strip_prefix("https://").unwrap()
        )),
        relative_path: Some("/x".into()),
        ..Default::default()
    };
    let err = env
        .downstream()
        .call_api("Hostile", &api, CallOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DownstreamError::Config { .. }), "{text}");
    assert!(
        text.contains("DownstreamApis.Hostile") && text.contains("BaseUrl"),
        "{text}"
    );
    assert!(!text.contains("hunter2pw"), "{text}");
    assert!(env.api_log.all().is_empty(), "nothing was sent");
}
