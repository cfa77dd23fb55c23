//! Shared test fixtures: an emulator with recording callbacks, a real mTLS "token endpoint",
//! and small fault-injecting HTTP servers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_imds::emulator::{
    self, EmulatedIdentity, EmulatorConfig, IssuedToken, ManagedIdentityRegistration,
    RunningEmulator, TokenIssuer, UnboundTokenRequest,
};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SYSTEM_CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
pub const USER_CLIENT_ID: &str = "22222222-2222-2222-2222-222222222222";

/// Records every request and answers with a fresh random token.
#[derive(Default)]
pub struct RecordingIssuer {
    pub seen: Mutex<Vec<(UnboundTokenRequest, String)>>,
}

impl TokenIssuer for RecordingIssuer {
    fn issue_token(&self, req: &UnboundTokenRequest) -> Result<IssuedToken, String> {
        if req.resource == "https://refused.example" {
            return Err("resource not allowed".into());
        }
        let mut nonce = [0u8; 12];
        aws_lc_rs_fill(&mut nonce);
        let token = format!(
            "mi.{}.{}",
            req.client_id,
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        self.seen.lock().unwrap().push((req.clone(), token.clone()));
        Ok(IssuedToken::bearer(token, 3600))
    }
}

fn aws_lc_rs_fill(buf: &mut [u8]) {
    // A throwaway key's bytes are random enough for a test nonce without another dependency.
    let k = certbound_core::PrivateKey::generate(KeyKind::EcP256).unwrap();
    let pk = k.public_key_bytes();
    buf.copy_from_slice(&pk[1..1 + buf.len()]);
}

pub struct Harness {
    pub emu: RunningEmulator,
    pub ca: Arc<DevCa>,
    pub registrations: Arc<Mutex<Vec<ManagedIdentityRegistration>>>,
    pub issuer: Arc<RecordingIssuer>,
    pub system: EmulatedIdentity,
    pub user: EmulatedIdentity,
}

impl Harness {
    pub fn imds(&self) -> certbound_imds::ImdsClient {
        certbound_imds::ImdsClient::new(&self.emu.imds_base()).unwrap()
    }
    pub fn registrations(&self) -> Vec<ManagedIdentityRegistration> {
        self.registrations.lock().unwrap().clone()
    }
}

pub async fn harness(
    mtls_endpoint: &str,
    tweak: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
) -> Harness {
    let ca = Arc::new(DevCa::generate("certbound test CA").unwrap());
    harness_with_ca(ca, mtls_endpoint, tweak).await
}

pub async fn harness_with_ca(
    ca: Arc<DevCa>,
    mtls_endpoint: &str,
    tweak: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
) -> Harness {
    let registrations = Arc::new(Mutex::new(Vec::new()));
    let sink = registrations.clone();
    let issuer = Arc::new(RecordingIssuer::default());
    let system = EmulatedIdentity::new(SYSTEM_CLIENT_ID);
    let user = EmulatedIdentity::new(USER_CLIENT_ID);
    let config = EmulatorConfig::new(
        ca.clone(),
        TENANT,
        mtls_endpoint,
        issuer.clone(),
        Arc::new(move |r| sink.lock().unwrap().push(r)),
    )
    .with_system_assigned(system.clone())
    .with_user_assigned(user.clone());
    let emu = emulator::spawn("127.0.0.1:0".parse().unwrap(), tweak(config))
        .await
        .unwrap();
    Harness {
        emu,
        ca,
        registrations,
        issuer,
        system,
        user,
    }
}

/// Serves `router` on a loopback port (plain HTTP).
pub async fn serve(router: Router) -> SocketAddr {
    certbound_test::net::serve_plain(router).await
}

/// A request counter for fault servers.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);
impl Counter {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A real mTLS server (client certificate required) standing in for the authority's token
/// endpoint: it answers with the presented certificate's thumbprint and the form fields.
pub async fn mtls_token_endpoint(ca: &DevCa) -> (String, CertifiedKey) {
    use axum::Extension;
    use axum::routing::post;
    use certbound_core::tls::server::TlsInfo;
    let server_id = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let tls =
        certbound_core::tls::server_config(&server_id, certbound_core::tls::ClientAuth::Required)
            .unwrap();
    let app = Router::new().route(
        "/{tenant}/oauth2/v2.0/token",
        post(
            |axum::extract::Path(tenant): axum::extract::Path<String>,
             Extension(info): Extension<TlsInfo>,
             body: String| async move {
                let form: std::collections::HashMap<String, String> = serde_urlencoded_parse(&body);
                axum::Json(serde_json::json!({
                    "tenant": tenant,
                    "x5t#S256": info.peer.map(|p| p.thumbprint.to_base64url()),
                    "form": form,
                }))
            },
        ),
    );
    let addr = certbound_test::net::serve_tls(app, tls).await.detach();
    (format!("https://127.0.0.1:{}", addr.port()), server_id)
}

fn serde_urlencoded_parse(body: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A reqwest client presenting `identity` and trusting `ca`.
pub fn mtls_client(ca: &DevCa, identity: &CertifiedKey) -> reqwest::Client {
    certbound_test::net::mtls_client(&certbound_test::pki::only(ca.cert()), Some(identity))
}
