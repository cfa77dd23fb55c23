//! Against the development authority (`certbound-authority`) over real TLS: every flow and
//! credential type the authority supports, end to end.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_authority::{
    AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority, RunningAuthority,
};
use certbound_client::{App, AppBuilder, AppConfig, HeaderOptions, TokenSource};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, KeyKind};

const SCOPE: &str = "api://resource/.default";

async fn authority(dir: &std::path::Path) -> RunningAuthority {
    let a = DevAuthority::open_or_init(dir.join("authority"), AuthorityOptions::default()).unwrap();
    a.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn config(
    dir: &std::path::Path,
    running: &RunningAuthority,
    client_id: &str,
    creds: serde_json::Value,
) -> App {
    let base = running
        .issuer()
        .trim_end_matches("/v2.0")
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    let cfg = serde_json::json!({
        "AzureAd": { "Instance": format!("{base}/"), "TenantId": running.tenant(), "ClientId": client_id, "ClientCredentials": creds },
        "DownstreamApis": { "Api": { "Scopes": [SCOPE], "ProtocolScheme": "MTLS_POP", "RequestAppToken": true } }
    });
    let p = dir.join(format!("{client_id}.json"));
    std::fs::write(&p, serde_json::to_vec(&cfg).unwrap()).unwrap();
    AppBuilder::from_config(AppConfig::from_file(&p).unwrap())
        .add_ca_cert_file(running.ca_cert_path())
        .build()
        .unwrap()
}

fn pem(dir: &std::path::Path, name: &str, c: &CertifiedKey) -> String {
    let p = dir.join(format!("{name}.pem"));
    std::fs::write(
        &p,
        format!("{}{}", c.leaf().to_pem(), c.key().to_pkcs8_pem().as_str()),
    )
    .unwrap();
    p.display().to_string()
}

fn cnf(token: &str) -> Option<String> {
    let (_, c) = certbound_core::jose::decode_unverified(token).ok()?;
    c["cnf"]["x5t#S256"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_pop_self_signed_tls_client_auth() {
    let dir = tempfile::tempdir().unwrap();
    let running = authority(dir.path()).await;
    let cert = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "app-ss",
            cert.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        ))
        .unwrap();
    let app = config(
        dir.path(),
        &running,
        "app-ss",
        serde_json::json!([{"SourceType": "Path", "CertificateDiskPath": pem(dir.path(), "ss", &cert)}]),
    );
    assert!(!app.authority().is_entra());
    let h = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(h.scheme(), "mtls_pop");
    let token = h.value().strip_prefix("mtls_pop ").unwrap();
    assert_eq!(cnf(token).unwrap(), cert.thumbprint().to_base64url());
    assert_eq!(h.binding_thumbprint(), Some(&cert.thumbprint()));
    let again = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(again.source, TokenSource::Cache);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_pop_tls_client_auth_with_ca_issued_pfx() {
    let dir = tempfile::tempdir().unwrap();
    let running = authority(dir.path()).await;
    let cert = running
        .authority()
        .ca()
        .issue_certified_key(&IssueSpec::client("app-ca"), KeyKind::Rsa2048)
        .unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "app-ca",
            cert.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap();
    let pfx = dir.path().join("app.pfx");
    std::fs::write(&pfx, cert.to_pkcs12("pw").unwrap()).unwrap();
    let app = config(
        dir.path(),
        &running,
        "app-ca",
        serde_json::json!([{"SourceType": "Path", "CertificateDiskPath": pfx, "CertificatePassword": "pw"}]),
    );
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(t.token_type, "mtls_pop");
    assert_eq!(
        cnf(t.access_token.expose()).unwrap(),
        cert.thumbprint().to_base64url()
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_key_jwt_and_client_secret_bearer() {
    let dir = tempfile::tempdir().unwrap();
    let running = authority(dir.path()).await;
    let cert = ca::self_signed_certified_key(&IssueSpec::client("jwt"), KeyKind::Rsa2048).unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "app-jwt",
            cert.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    let app = config(
        dir.path(),
        &running,
        "app-jwt",
        serde_json::json!([{"SourceType": "Path", "CertificateDiskPath": pem(dir.path(), "jwt", &cert)}]),
    );
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert!(t.token_type.eq_ignore_ascii_case("bearer"));
    assert!(t.binding_thumbprint.is_none());
    assert!(cnf(t.access_token.expose()).is_none());

    running
        .register(ClientRegistration::with_secret(
            "app-secret",
            "authority-SECRET-1",
        ))
        .unwrap();
    let app = config(
        dir.path(),
        &running,
        "app-secret",
        serde_json::json!([{"SourceType": "ClientSecret", "ClientSecret": "authority-SECRET-1"}]),
    );
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert!(t.binding_thumbprint.is_none());
    let wrong = config(
        dir.path(),
        &running,
        "app-secret",
        serde_json::json!([{"SourceType": "ClientSecret", "ClientSecret": "nope"}]),
    );
    let e = wrong
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_client", "{e}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unregistered_certificate_is_invalid_client() {
    let dir = tempfile::tempdir().unwrap();
    let running = authority(dir.path()).await;
    let registered =
        ca::self_signed_certified_key(&IssueSpec::client("a"), KeyKind::EcP256).unwrap();
    let other = ca::self_signed_certified_key(&IssueSpec::client("b"), KeyKind::EcP256).unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "app-x",
            registered.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        ))
        .unwrap();
    let app = config(
        dir.path(),
        &running,
        "app-x",
        serde_json::json!([{"SourceType": "Path", "CertificateDiskPath": pem(dir.path(), "other", &other)}]),
    );
    let e = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert!(
        matches!(e, certbound_client::ClientError::TokenEndpoint { .. }),
        "{e}"
    );
    assert_eq!(e.code(), "invalid_client", "{e}");
    running.shutdown().await;
}
