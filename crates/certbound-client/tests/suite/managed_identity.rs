//! `SourceType: ManagedCertificate` end to end against the development authority and its
//! IMDS emulator (real TLS for the authority, plain HTTP for IMDS as on Azure): bound
//! tokens with a certificate minted through IMDS v2, a new binding after a re-mint, the
//! IMDS v1-only host, and unbound managed-identity tokens through IMDS v1 and App Service.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;

use certbound_authority::imds::{self, RunningEmulator};
use certbound_authority::{AuthorityOptions, DevAuthority, RunningAuthority};
use certbound_client::config::AppConfig;
use certbound_client::managed::{ImdsClient, ManagedIdentity, ManagedIdentityCredential};
use certbound_client::{App, ClientCredential, HeaderOptions, ProtocolScheme, TokenSource};
use certbound_core::tls::TrustAnchors;
use serde_json::Value;

const SCOPE: &str = "api://orders/.default";

struct Env {
    _dir: tempfile::TempDir,
    running: RunningAuthority,
    emulator: RunningEmulator,
}

async fn start_with(adjust: impl FnOnce(imds::EmulatorConfig) -> imds::EmulatorConfig) -> Env {
    certbound_core::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let authority =
        DevAuthority::open_or_init(dir.path().join("authority"), AuthorityOptions::default())
            .unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = adjust(imds::emulator_config(&running));
    let emulator = imds::spawn_emulator_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    Env {
        _dir: dir,
        running,
        emulator,
    }
}

async fn start() -> Env {
    start_with(|c| c).await
}

impl Env {
    fn credential(&self, identity: ManagedIdentity) -> Arc<ManagedIdentityCredential> {
        let imds = ImdsClient::new(&self.emulator.imds_base()).unwrap();
        Arc::new(ManagedIdentityCredential::new(imds, identity))
    }
    fn app(&self, credential: Arc<ManagedIdentityCredential>) -> App {
        let mut anchors = TrustAnchors::default();
        anchors.add(&self.running.ca_cert());
        App::builder()
            // Not the identity's client id: the token request must use the one from IMDS.
            .client_id("configured-app-id")
            .authority(self.running.issuer())
            .credential(credential)
            .trust_anchors(anchors)
            .build()
            .unwrap()
    }
    fn system(&self) -> imds::EmulatedIdentity {
        imds::system_assigned_identity(self.running.authority())
    }
}

fn claims(token: &str) -> Value {
    certbound_core::jose::decode_unverified(token).unwrap().1
}

#[tokio::test]
async fn bound_token_through_a_certificate_minted_by_imds_v2() {
    let env = start().await;
    let mi = env.credential(ManagedIdentity::SystemAssigned);
    let app = env.app(mi.clone());
    let pop = HeaderOptions::mtls_pop();

    let t = app.acquire_token_for_app(&[SCOPE], &pop).await.unwrap();
    let minted = mi.minted().await.unwrap();
    let thumb = minted.certified_key().thumbprint();
    assert_eq!(t.token_type, "mtls_pop");
    assert_eq!(t.source, TokenSource::IdentityProvider);
    assert_eq!(t.binding_thumbprint, Some(thumb));
    let c = claims(t.access_token.expose());
    assert_eq!(c["cnf"]["x5t#S256"], thumb.to_base64url().as_str());
    // The identity's client id from IMDS, not AzureAd.ClientId.
    assert_eq!(c["client_id"], env.system().client_id.as_str());
    // …and its object id, as Entra puts it in managed-identity tokens.
    assert_eq!(c["oid"], env.system().object_id.as_str());
    assert_eq!(c["iss"], env.running.issuer());
    assert_eq!(c["aud"], "api://orders");
    assert_eq!(mi.certificates().mints(), 1);

    // The header presents the minted certificate; the second request is a cache hit.
    let h = app
        .authorization_header_for_app(&[SCOPE], &pop)
        .await
        .unwrap();
    assert_eq!(h.source(), TokenSource::Cache);
    assert_eq!(h.binding().map(|c| c.thumbprint()), Some(thumb));
    assert!(h.value().starts_with("mtls_pop "));
    assert_eq!(app.token_requests_sent(), 1);
    assert_eq!(mi.certificates().mints(), 1);
}

#[tokio::test]
async fn a_re_minted_certificate_gets_a_new_token_with_its_binding() {
    let env = start().await;
    let mi = env.credential(ManagedIdentity::SystemAssigned);
    let app = env.app(mi.clone());
    let pop = HeaderOptions::mtls_pop();

    let first = app.acquire_token_for_app(&[SCOPE], &pop).await.unwrap();
    mi.invalidate().await;
    // Not forced: the cache key follows the certificate, so the new certificate misses.
    let second = app.acquire_token_for_app(&[SCOPE], &pop).await.unwrap();
    assert_eq!(second.source, TokenSource::IdentityProvider);
    assert_eq!(mi.certificates().mints(), 2);
    let new_thumb = mi.minted().await.unwrap().certified_key().thumbprint();
    assert_ne!(first.binding_thumbprint, second.binding_thumbprint);
    assert_eq!(second.binding_thumbprint, Some(new_thumb));
    assert_eq!(
        claims(second.access_token.expose())["cnf"]["x5t#S256"],
        new_thumb.to_base64url().as_str()
    );
    // And that token is then the cached one.
    let third = app.acquire_token_for_app(&[SCOPE], &pop).await.unwrap();
    assert_eq!(third.source, TokenSource::Cache);
    assert_eq!(third.binding_thumbprint, Some(new_thumb));
    assert_eq!(app.token_requests_sent(), 2);
}

#[tokio::test]
async fn user_assigned_identity_gets_its_own_certificate_and_client_id() {
    let env = start().await;
    let user = imds::user_assigned_identity(env.running.authority());
    let mi = env.credential(ManagedIdentity::from_config(Some(&user.client_id)));
    let app = env.app(mi.clone());
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    let c = claims(t.access_token.expose());
    assert_eq!(c["client_id"], user.client_id.as_str());
    assert_eq!(mi.minted().await.unwrap().identity_type(), "UserAssigned");
    assert!(mi.describe().contains("user-assigned"), "{}", mi.describe());
}

#[tokio::test]
async fn a_rejected_certificate_is_re_minted_on_the_next_request() {
    // An emulator that mints but does not tell the authority: the token endpoint refuses.
    let env = start_with(|mut c| {
        c.on_register = Arc::new(|_| {});
        c
    })
    .await;
    let mi = env.credential(ManagedIdentity::SystemAssigned);
    let app = env.app(mi.clone());
    let err = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client", "{err}");
    assert_eq!(mi.certificates().mints(), 1);
    let _ = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(
        mi.certificates().mints(),
        2,
        "the rejected certificate was forgotten"
    );
}

#[tokio::test]
async fn an_imds_v1_only_host_refuses_binding_clearly_and_serves_bearer() {
    let env = start_with(|c| c.v1_only(true)).await;
    let mi = env.credential(ManagedIdentity::SystemAssigned);
    let app = env.app(mi.clone());

    let err = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mtls_pop_unavailable", "{err}");
    let text = err.to_string();
    assert!(text.contains("IMDS v1-only host"), "{text}");
    assert!(text.contains("mTLS PoP unavailable"), "{text}");

    // Bearer: an unbound token from IMDS v1, for the system identity.
    let bearer = HeaderOptions::default().scheme(ProtocolScheme::Bearer);
    let t = app.acquire_token_for_app(&[SCOPE], &bearer).await.unwrap();
    assert!(t.token_type.eq_ignore_ascii_case("bearer"));
    assert_eq!(t.binding_thumbprint, None);
    let c = claims(t.access_token.expose());
    assert!(c.get("cnf").is_none());
    assert_eq!(c["client_id"], env.system().client_id.as_str());
    assert_eq!(c["oid"], env.system().object_id.as_str());
    assert_eq!(c["aud"], "api://orders");
    let again = app.acquire_token_for_app(&[SCOPE], &bearer).await.unwrap();
    assert_eq!(again.source, TokenSource::Cache);
    assert_eq!(
        mi.certificates().mints(),
        0,
        "no certificate for a bearer token"
    );

    // One resource per managed-identity token.
    let err = app
        .acquire_token_for_app(&["api://a/.default", "api://b/.default"], &bearer)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "managed_identity_unavailable", "{err}");
}

#[tokio::test]
async fn bearer_uses_app_service_when_it_is_configured() {
    let env = start().await;
    // IMDS at an address where nothing listens any more: only App Service can answer.
    let gone = start().await;
    let dead_imds = gone.emulator.imds_base();
    gone.emulator.shutdown().await;
    let mi = ManagedIdentityCredential::new(
        ImdsClient::new(&dead_imds).unwrap(),
        ManagedIdentity::SystemAssigned,
    )
    .with_app_service(
        &env.emulator.identity_endpoint,
        &env.emulator.identity_header,
    )
    .unwrap();
    assert_eq!(mi.unbound_endpoint(), env.emulator.identity_endpoint);
    assert!(!format!("{mi:?}").contains(env.emulator.identity_header.as_str()));
    let app = env.app(Arc::new(mi));
    let t = app
        .acquire_token_for_app(
            &[SCOPE],
            &HeaderOptions::default().scheme(ProtocolScheme::Bearer),
        )
        .await
        .unwrap();
    let c = claims(t.access_token.expose());
    assert_eq!(c["client_id"], env.system().client_id.as_str());
    assert!(c.get("cnf").is_none());

    // A wrong App Service secret is a managed-identity error naming the endpoint.
    let wrong = ManagedIdentityCredential::new(
        ImdsClient::new(&dead_imds).unwrap(),
        ManagedIdentity::SystemAssigned,
    )
    .with_app_service(
        &env.emulator.identity_endpoint,
        "not-the-right-secret-value",
    )
    .unwrap();
    let err = env
        .app(Arc::new(wrong))
        .acquire_token_for_app(
            &[SCOPE],
            &HeaderOptions::default().scheme(ProtocolScheme::Bearer),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "managed_identity_unavailable");
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!err.to_string().contains("not-the-right-secret-value"));
}

#[tokio::test]
async fn managed_certificate_in_the_configuration_loads_without_a_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appsettings.json");
    std::fs::write(
        &path,
        r#"{"AzureAd": {
            "Authority": "https://127.0.0.1:1/t/v2.0",
            "ClientCredentials": [
                {"SourceType": "ManagedCertificate", "ManagedIdentityClientId": "uami-1"},
                {"SourceType": "ClientSecret", "ClientSecret": "never-used-secret"}
            ]}}"#,
    )
    .unwrap();
    let app = App::from_config(AppConfig::from_file(&path).unwrap()).unwrap();
    let mi = app
        .credential()
        .managed_identity()
        .expect("ManagedCertificate loads a managed identity");
    assert_eq!(mi.identity(), &ManagedIdentity::ClientId("uami-1".into()));
    assert!(app.credential().provides_certificate());
    assert_eq!(app.client_id(), "uami-1");
}
