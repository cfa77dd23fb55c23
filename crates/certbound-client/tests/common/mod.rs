//! A small RFC 8705 token server for tests (axum over real TLS), with fault injection,
//! and helpers for credentials and configuration files.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use certbound_client::{App, RetryPolicy};
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::jose::{JwsHeader, decode_unverified, sign_compact};
use certbound_core::tls::{ClientAuth, server_config};
use certbound_core::{Certificate, CertifiedKey, JwsAlgorithm, KeyKind, PrivateKey, Thumbprint};
use certbound_resource::transport::TlsInfo;
use serde_json::{Value, json};

pub const TENANT: &str = "tenant-1";
pub const CLIENT_ID: &str = "app-1";
pub const SECRET: &str = "s3cr3t-CLIENT-value-77";

/// An injected fault for the next token request.
#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16, Option<String>),
    Slow(Duration),
    Garbage,
    TokenType(&'static str),
    NoTokenType,
    CnfOf(Thumbprint),
    NoCnf,
    Opaque,
    /// A key-bound token whose `cnf.jkt` / `cnf.kid` names another key.
    KeyCnf(&'static str),
    /// An OAuth error answer: status, `error`, `error_description`.
    OAuth(u16, &'static str, &'static str),
}

/// How the server names bound tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Entra style: `token_type=mtls_pop` in, `mtls_pop` out.
    Entra,
    /// Generic RFC 8705: bound tokens are `Bearer` with `cnf`.
    Generic,
}

pub struct State {
    pub base: String,
    pub requests: AtomicUsize,
    pub discovery_requests: AtomicUsize,
    pub faults: Mutex<VecDeque<Fault>>,
    pub mode: Mutex<Mode>,
    pub last_form: Mutex<HashMap<String, String>>,
    pub last_path: Mutex<String>,
    pub last_assertion_header: Mutex<Option<Value>>,
    pub last_peer: Mutex<Option<Thumbprint>>,
    pub lifetime: AtomicI64,
    pub refresh_in: AtomicI64,
    pub serial: AtomicUsize,
    pub key: PrivateKey,
    /// Delay every token response by this many milliseconds (for concurrency tests).
    pub delay_ms: AtomicI64,
    /// When set, DPoP proofs must carry this nonce (`use_dpop_nonce` otherwise).
    pub dpop_nonce: Mutex<Option<String>>,
    /// The header and claims of the last DPoP proof received.
    pub last_dpop: Mutex<Option<(Value, Value)>>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub base: String,
    pub ca: Certificate,
    pub ca_path: PathBuf,
    pub state: Arc<State>,
    _dir: tempfile::TempDir,
    _server: certbound_test::net::TlsHandle,
}

impl FakeServer {
    pub fn authority(&self) -> String {
        format!("{}/{TENANT}/v2.0", self.base)
    }
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
    pub fn push(&self, f: Fault) {
        self.state.faults.lock().unwrap().push_back(f);
    }
    pub fn form(&self) -> HashMap<String, String> {
        self.state.last_form.lock().unwrap().clone()
    }
    pub fn builder(&self) -> certbound_client::AppBuilder {
        App::builder()
            .client_id(CLIENT_ID)
            .authority(self.authority())
            .add_trust_anchor(&self.ca)
            .retry_policy(fast_policy())
    }
}

pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        request_timeout: Duration::from_millis(1500),
        retry_delay: Duration::from_millis(10),
        max_inline_wait: Duration::from_secs(5),
    }
}

pub async fn start(mode: Mode) -> FakeServer {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("fake authority CA").unwrap();
    let tls = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert().to_pem()).unwrap();
    let (listener, addr) = certbound_test::net::loopback_listener().await;
    let base = format!("https://127.0.0.1:{}", addr.port());
    let state = Arc::new(State {
        base: base.clone(),
        requests: AtomicUsize::new(0),
        discovery_requests: AtomicUsize::new(0),
        faults: Mutex::new(VecDeque::new()),
        mode: Mutex::new(mode),
        last_form: Mutex::default(),
        last_path: Mutex::default(),
        last_assertion_header: Mutex::default(),
        last_peer: Mutex::default(),
        lifetime: AtomicI64::new(3600),
        refresh_in: AtomicI64::new(0),
        serial: AtomicUsize::new(0),
        key: PrivateKey::generate(KeyKind::EcP256).unwrap(),
        delay_ms: AtomicI64::new(0),
        dpop_nonce: Mutex::default(),
        last_dpop: Mutex::default(),
    });
    let app = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{tenant}/token", post(token_plain))
        .route("/{tenant}/mtls/token", post(token_mtls))
        .with_state(state.clone());
    let server = certbound_test::net::serve_tls_on(
        listener,
        app,
        server_config(&tls, ClientAuth::Optional).unwrap(),
    );
    FakeServer {
        addr,
        base,
        ca: ca.cert().clone(),
        ca_path,
        state,
        _dir: dir,
        _server: server,
    }
}

async fn discovery(
    AxState(s): AxState<Arc<State>>,
    UrlPath(tenant): UrlPath<String>,
) -> Json<Value> {
    s.discovery_requests.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "issuer": format!("{}/{tenant}/v2.0", s.base),
        "token_endpoint": format!("{}/{tenant}/token", s.base),
        "mtls_endpoint_aliases": { "token_endpoint": format!("{}/{tenant}/mtls/token", s.base) },
        "jwks_uri": format!("{}/{tenant}/keys", s.base),
    }))
}

async fn token_plain(
    st: AxState<Arc<State>>,
    p: UrlPath<String>,
    info: Extension<TlsInfo>,
    h: HeaderMap,
    f: Form<HashMap<String, String>>,
) -> Response {
    token(st, p, info, h, f, false).await
}
async fn token_mtls(
    st: AxState<Arc<State>>,
    p: UrlPath<String>,
    info: Extension<TlsInfo>,
    h: HeaderMap,
    f: Form<HashMap<String, String>>,
) -> Response {
    token(st, p, info, h, f, true).await
}

fn oauth_err(status: StatusCode, code: &str, desc: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": desc})),
    )
        .into_response()
}

async fn token(
    AxState(s): AxState<Arc<State>>,
    UrlPath(tenant): UrlPath<String>,
    Extension(info): Extension<TlsInfo>,
    h: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
    mtls_path: bool,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    *s.last_form.lock().unwrap() = form.clone();
    *s.last_path.lock().unwrap() = if mtls_path {
        "mtls".into()
    } else {
        "plain".into()
    };
    let peer = info.peer.as_ref().map(|p| p.thumbprint);
    *s.last_peer.lock().unwrap() = peer;
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let fault = s.faults.lock().unwrap().pop_front();
    match &fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut r = oauth_err(
                StatusCode::from_u16(*code).unwrap(),
                "temporarily_unavailable",
                "injected",
            );
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            return r;
        }
        Some(Fault::OAuth(code, error, description)) => {
            return oauth_err(StatusCode::from_u16(*code).unwrap(), error, description);
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Garbage) => return (StatusCode::OK, "<html>not json</html>").into_response(),
        _ => {}
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "client_credentials only",
        );
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth_err(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    let bound_request = form.get("token_type").map(String::as_str) == Some("mtls_pop");
    let mut bind = None;
    if bound_request {
        if !mtls_path {
            return oauth_err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "mTLS requests must use the mtls_endpoint_aliases endpoint",
            );
        }
        if form.contains_key("client_assertion") || form.contains_key("client_secret") {
            return oauth_err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "mTLS PoP requests carry no other client credential",
            );
        }
        let Some(p) = peer else {
            return oauth_err(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client certificate",
            );
        };
        bind = Some(p);
    } else if let Some(sec) = form.get("client_secret") {
        if sec != SECRET {
            return oauth_err(StatusCode::UNAUTHORIZED, "invalid_client", "bad secret");
        }
    } else if let Some(a) = form.get("client_assertion") {
        let Ok((h, c)) = decode_unverified(a) else {
            return oauth_err(StatusCode::UNAUTHORIZED, "invalid_client", "bad assertion");
        };
        let expected_aud = format!("{}/{tenant}/token", s.base);
        if c["aud"] != json!(expected_aud)
            || c["iss"] != json!(CLIENT_ID)
            || c["sub"] != json!(CLIENT_ID)
        {
            return oauth_err(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "assertion claims",
            );
        }
        *s.last_assertion_header.lock().unwrap() = Some(h);
    } else {
        return oauth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client authentication",
        );
    }
    // Key-bound requests: `token_type=pop` + `req_cnf`, or a `DPoP` proof header.
    let mut key_cnf: Option<(&str, String)> = None;
    if form.get("token_type").map(String::as_str) == Some("pop") {
        let Some(kid) = form
            .get("req_cnf")
            .and_then(|r| certbound_core::pop::parse_req_cnf(r).ok())
        else {
            return oauth_err(StatusCode::BAD_REQUEST, "invalid_request", "req_cnf");
        };
        key_cnf = Some(("kid", kid));
    }
    if let Some(proof) = h.get("dpop").and_then(|v| v.to_str().ok()) {
        let want = s.dpop_nonce.lock().unwrap().clone();
        let url = format!(
            "{}/{tenant}/{}token",
            s.base,
            if mtls_path { "mtls/" } else { "" }
        );
        let mut exp = certbound_core::pop::DpopExpectations::new("POST", &url, now_unix());
        if let Some(n) = &want {
            exp = exp.nonce(n);
        }
        match certbound_core::pop::verify_dpop_proof(proof, &exp) {
            Ok(p) => {
                *s.last_dpop.lock().unwrap() = decode_unverified(proof).ok();
                key_cnf = Some(("jkt", p.jkt.clone()));
            }
            Err(e) => {
                let nonce_problem = want.is_some()
                    && decode_unverified(proof)
                        .map(|(_, c)| c.get("nonce") != want.as_ref().map(|n| json!(n)).as_ref())
                        .unwrap_or(false);
                let mut r = oauth_err(
                    StatusCode::BAD_REQUEST,
                    if nonce_problem {
                        "use_dpop_nonce"
                    } else {
                        "invalid_dpop_proof"
                    },
                    &e.to_string(),
                );
                if let Some(n) = want {
                    r.headers_mut().insert("dpop-nonce", n.parse().unwrap());
                }
                return r;
            }
        }
    }
    let mode = *s.mode.lock().unwrap();
    let mut token_type = match (bind.is_some(), mode, &key_cnf) {
        (_, _, Some(("kid", _))) => "pop",
        (_, _, Some(_)) => "DPoP",
        (true, Mode::Entra, _) => "mtls_pop",
        _ => "Bearer",
    }
    .to_string();
    let now = now_unix();
    let lifetime = s.lifetime.load(Ordering::SeqCst);
    let serial = s.serial.fetch_add(1, Ordering::SeqCst);
    let mut claims = json!({"iss": format!("{}/{tenant}/v2.0", s.base), "aud": form.get("scope"), "sub": CLIENT_ID,
        "iat": now, "exp": now + lifetime, "jti": format!("tok-{serial}")});
    match (&fault, bind) {
        (Some(Fault::CnfOf(t)), _) => claims["cnf"] = json!({"x5t#S256": t.to_base64url()}),
        (Some(Fault::NoCnf), _) => {}
        (_, Some(t)) => claims["cnf"] = json!({"x5t#S256": t.to_base64url()}),
        _ => {}
    }
    if let Some((member, tp)) = &key_cnf {
        match &fault {
            Some(Fault::NoCnf) => {}
            Some(Fault::KeyCnf(other)) => claims["cnf"] = json!({ *member: other }),
            _ => claims["cnf"] = json!({ *member: tp }),
        }
    }
    let mut access_token = sign_compact(
        &JwsHeader::new(JwsAlgorithm::ES256).typ("at+jwt"),
        &claims,
        &s.key,
    )
    .unwrap();
    if let Some(Fault::Opaque) = fault {
        access_token = format!("opaque-{serial}");
    }
    if let Some(Fault::TokenType(t)) = fault {
        token_type = t.to_string();
    }
    let mut body =
        json!({"token_type": token_type, "expires_in": lifetime, "access_token": access_token});
    if let Some(Fault::NoTokenType) = fault {
        body.as_object_mut().unwrap().remove("token_type");
    }
    let r = s.refresh_in.load(Ordering::SeqCst);
    if r > 0 {
        body["refresh_in"] = json!(r);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn now_unix() -> i64 {
    certbound_core::now_unix()
}

/// A self-signed client certificate (the usual RFC 8705 client cert).
pub fn client_cert(kind: KeyKind) -> CertifiedKey {
    certbound_test::pki::self_signed_client("test app", kind)
}

/// Writes cert+key PEM to `dir/name.pem`.
pub fn write_pem(dir: &Path, name: &str, c: &CertifiedKey) -> PathBuf {
    certbound_test::pki::write_pem(dir, name, c)
}

/// The thumbprint inside a JWT's `cnf`.
pub fn cnf_of(token: &str) -> Option<String> {
    let (_, c) = decode_unverified(token).ok()?;
    c["cnf"]["x5t#S256"].as_str().map(str::to_owned)
}

/// Polls `f` until it holds (bounded; no timing assertion — fails only if it never holds).
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}
