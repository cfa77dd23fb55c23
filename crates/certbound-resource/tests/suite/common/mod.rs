//! Shared fixtures: a dev PKI, a test issuer (discovery + JWKS over TLS, counting fetches),
//! the sample API over real TLS, token minting (including deliberately broken tokens).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey, b64};
use certbound_resource::Validator;
use certbound_resource::transport::TlsServer;

pub mod sample;
use serde_json::{Map, Value, json};

pub const AUD: &str = "api://orders";

pub struct Pki {
    pub ca: DevCa,
    pub server: CertifiedKey,
    pub anchors: TrustAnchors,
}

impl Pki {
    pub fn new() -> Self {
        let ca = DevCa::generate("certbound test CA").unwrap();
        let server = ca
            .issue_certified_key(
                &IssueSpec::server("localhost", &["localhost", "127.0.0.1"]),
                KeyKind::EcP256,
            )
            .unwrap();
        let anchors = TrustAnchors {
            extra: vec![ca.cert().der().clone()],
            system: false,
        };
        Self {
            ca,
            server,
            anchors,
        }
    }

    pub fn client_cert(&self, cn: &str) -> CertifiedKey {
        ca::self_signed_certified_key(&IssueSpec::client(cn), KeyKind::EcP256).unwrap()
    }

    pub fn http(&self, identity: Option<&CertifiedKey>) -> reqwest::Client {
        let cfg = tls::client_config(&self.anchors, identity).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .build()
            .unwrap()
    }
}

#[derive(Clone)]
struct IssuerState {
    issuer: Arc<Mutex<String>>,
    jwks_uri: Arc<Mutex<String>>,
    jwks: Arc<Mutex<Jwks>>,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
}

/// An OIDC-shaped issuer serving discovery and a mutable JWKS over TLS.
pub struct TestIssuer {
    pub issuer: String,
    pub addr: SocketAddr,
    state: IssuerState,
}

impl TestIssuer {
    pub async fn start(pki: &Pki, jwks: Jwks) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("https://127.0.0.1:{}/tenant-x/v2.0", addr.port());
        let state = IssuerState {
            issuer: Arc::new(Mutex::new(issuer.clone())),
            jwks_uri: Arc::new(Mutex::new(format!(
                "https://127.0.0.1:{}/tenant-x/discovery/v2.0/keys",
                addr.port()
            ))),
            jwks: Arc::new(Mutex::new(jwks)),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            discovery_fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route(
                "/tenant-x/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/tenant-x/discovery/v2.0/keys", get(keys))
            .with_state(state.clone());
        let cfg = tls::server_config(&pki.server, ClientAuth::None).unwrap();
        tokio::spawn(TlsServer::new(listener, cfg).serve(app, std::future::pending()));
        Self {
            issuer,
            addr,
            state,
        }
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }
    pub fn set_jwks(&self, jwks: Jwks) {
        *self.state.jwks.lock().unwrap() = jwks;
    }
    pub fn set_advertised_issuer(&self, iss: &str) {
        *self.state.issuer.lock().unwrap() = iss.to_owned();
    }
}

async fn discovery(State(s): State<IssuerState>) -> Json<Value> {
    s.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let issuer = s.issuer.lock().unwrap().clone();
    let jwks_uri = s.jwks_uri.lock().unwrap().clone();
    Json(
        json!({"issuer": issuer, "jwks_uri": jwks_uri, "token_endpoint": format!("{issuer}/token")}),
    )
}

async fn keys(State(s): State<IssuerState>) -> Json<Jwks> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(s.jwks.lock().unwrap().clone())
}

/// Serves the sample API with `validator` on loopback TLS (client certificate optional),
/// through `sample::serve` (what `certbound api serve` and the demo run).
pub async fn serve_api(pki: &Pki, validator: Validator) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = pki.server.clone();
    tokio::spawn(async move {
        sample::serve(listener, &identity, validator, std::future::pending()).await
    });
    addr
}

/// How to sign a hand-built token.
pub enum Signer<'a> {
    Key(&'a PrivateKey, JwsAlgorithm),
    Hmac(&'a [u8]),
    Raw(&'a str),
}

/// Builds `b64(header).b64(payload).sig` from raw JSON bytes.
pub fn compact(header: &[u8], payload: &[u8], signer: Signer<'_>) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    sign_input(&input, signer)
}

/// Signs an arbitrary signing input.
pub fn sign_input(input: &str, signer: Signer<'_>) -> String {
    let sig = match signer {
        Signer::Key(k, alg) => b64::encode(k.sign(alg, input.as_bytes()).unwrap()),
        Signer::Hmac(secret) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            b64::encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
        }
        Signer::Raw(s) => s.to_owned(),
    };
    format!("{input}.{sig}")
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Standard claims for `issuer`, bound to `x5t` when given.
pub fn claims(issuer: &str, x5t: Option<&str>) -> Map<String, Value> {
    let now = certbound_core::now_unix();
    let mut m = obj(json!({
        "iss": issuer, "aud": AUD, "sub": "app-1", "client_id": "app-1",
        "iat": now, "nbf": now, "exp": now + 600, "jti": "j-1", "scope": "orders.read",
    }));
    if let Some(t) = x5t {
        m.insert("cnf".into(), json!({"x5t#S256": t}));
    }
    m
}

pub fn header(alg: &str, kid: Option<&str>) -> Map<String, Value> {
    let mut h = obj(json!({"alg": alg, "typ": "at+jwt"}));
    if let Some(k) = kid {
        h.insert("kid".into(), json!(k));
    }
    h
}

pub fn token(h: &Map<String, Value>, c: &Map<String, Value>, signer: Signer<'_>) -> String {
    compact(
        &serde_json::to_vec(h).unwrap(),
        &serde_json::to_vec(c).unwrap(),
        signer,
    )
}
