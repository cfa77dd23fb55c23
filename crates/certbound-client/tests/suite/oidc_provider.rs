//! Interop: certbound's client obtains a certificate-bound token from an independent RFC 8705
//! authorization server — the npm package `oidc-provider` (interop/oidc-provider) configured
//! with `mTLS.certificateBoundAccessTokens` and `selfSignedTlsClientAuth`.
//!
//! Skips (with a printed reason) only when `node` or `node_modules` is missing **and** `CI`
//! is not set; in CI it fails instead. `scripts/test.sh` installs the packages.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use certbound_client::{App, HeaderOptions, TokenSource};
use certbound_core::KeyKind;
use certbound_core::ca::{self, DevCa, IssueSpec};
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/oidc-provider")
}

fn unavailable() -> Option<String> {
    let dir = peer_dir();
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return Some(format!(
            "{} has no node_modules/oidc-provider (run `npm ci` there, or scripts/test.sh)",
            dir.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`node` is not installed".into()),
    }
}

/// Whether to skip: only outside CI, and only when the peer is not installed.
fn skip() -> bool {
    let Some(reason) = unavailable() else {
        return false;
    };
    if std::env::var_os("CI").is_some() {
        panic!("interop peer unavailable in CI: {reason}");
    }
    eprintln!("SKIPPED oidc-provider interop: {reason}");
    true
}

/// A certbound app for the peer's registered client, presenting `cert`.
fn app_for(peer: &Peer, cert: &certbound_core::CertifiedKey) -> App {
    App::builder()
        .client_id(&peer.client_id)
        .authority(&peer.issuer)
        .certificate(cert.clone())
        .add_trust_anchor(&peer.ca)
        .build()
        .unwrap()
}

struct Peer {
    child: tokio::process::Child,
    issuer: String,
    client_id: String,
    scope: String,
    resource: String,
    ca: certbound_core::Certificate,
}

async fn start_peer(dir: &std::path::Path, client: &certbound_core::CertifiedKey) -> Peer {
    let ca = DevCa::generate("interop CA").unwrap();
    let tls = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let (cert_p, key_p, client_p) = (
        dir.join("tls.pem"),
        dir.join("tls.key"),
        dir.join("client.pem"),
    );
    std::fs::write(&cert_p, tls.leaf().to_pem()).unwrap();
    std::fs::write(&key_p, tls.key().to_pkcs8_pem().as_str()).unwrap();
    std::fs::write(&client_p, client.leaf().to_pem()).unwrap();
    let mut child = tokio::process::Command::new("node")
        .arg(peer_dir().join("server.mjs"))
        .args(["--tls-cert".as_ref(), cert_p.as_os_str()])
        .args(["--tls-key".as_ref(), key_p.as_os_str()])
        .args(["--client-cert".as_ref(), client_p.as_os_str()])
        .args(["--client-id", "certbound-interop", "--port", "0"])
        .current_dir(peer_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // A generous bound so a broken peer fails the test instead of hanging it.
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("oidc-provider did not print its ready line")
        .unwrap()
        .expect("oidc-provider exited before it was ready");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert_eq!(ready["ready"], true);
    Peer {
        child,
        issuer: ready["issuer"].as_str().unwrap().to_owned(),
        client_id: ready["client_id"].as_str().unwrap().to_owned(),
        scope: ready["scope"].as_str().unwrap().to_owned(),
        resource: ready["resource"].as_str().unwrap().to_owned(),
        ca: ca.cert().clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_issues_a_bound_token_to_certbound() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client =
        ca::self_signed_certified_key(&IssueSpec::client("certbound interop"), KeyKind::EcP256)
            .unwrap();
    let mut peer = start_peer(dir.path(), &client).await;

    let app = app_for(&peer, &client);
    let h = app
        .authorization_header_for_app(&[&peer.scope], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    // A generic RFC 8705 server: token_type stays Bearer, the binding is in cnf.
    assert_eq!(h.scheme(), "Bearer");
    let token = h.value().strip_prefix("Bearer ").unwrap();
    let (header, claims) = certbound_core::jose::decode_unverified(token).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        client.thumbprint().to_base64url(),
        "{claims}"
    );
    assert_eq!(claims["iss"], peer.issuer.as_str());
    assert_eq!(h.binding_thumbprint(), Some(&client.thumbprint()));
    let again = app
        .acquire_token_for_app(&[&peer.scope], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(again.source, TokenSource::Cache);

    // Another certificate is not the registered one: invalid_client, no token.
    let stranger =
        ca::self_signed_certified_key(&IssueSpec::client("stranger"), KeyKind::EcP256).unwrap();
    let other = app_for(&peer, &stranger);
    let e = other
        .authorization_header_for_app(&[&peer.scope], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_client", "{e}");
    let _ = peer.child.kill().await;
}

/// The other direction: a token issued by oidc-provider is validated by certbound's resource
/// server — signature from the peer's JWKS (found through its discovery document), issuer,
/// audience, `typ`, lifetime — and its RFC 8705 binding is enforced against the connection's
/// client certificate.
#[tokio::test(flavor = "multi_thread")]
async fn certbound_resource_server_validates_oidc_provider_tokens_with_binding() {
    use certbound_core::tls::TrustAnchors;
    use certbound_resource::{Presented, ProtocolScheme as Scheme, Validator};

    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client =
        ca::self_signed_certified_key(&IssueSpec::client("certbound interop"), KeyKind::EcP256)
            .unwrap();
    let mut peer = start_peer(dir.path(), &client).await;
    let app = app_for(&peer, &client);
    let h = app
        .authorization_header_for_app(&[&peer.scope], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    let token = h.value().strip_prefix("Bearer ").unwrap().to_owned();

    let mut anchors = TrustAnchors::default();
    anchors.add(&peer.ca);
    let validator = Validator::builder()
        .issuer(&peer.issuer)
        .audience(&peer.resource)
        .trust_anchors(anchors)
        .build()
        .await
        .expect("validator from oidc-provider's discovery document");
    let right = client.thumbprint();
    let ok = validator
        .validate(&Presented::token(Scheme::Bearer, &token).peer(Some(&right)))
        .await
        .expect("oidc-provider's bound token with the bound certificate");
    assert!(ok.is_bound());
    assert_eq!(ok.claims().issuer(), peer.issuer.as_str());

    let wrong = ca::self_signed_certified_key(&IssueSpec::client("other"), KeyKind::EcP256)
        .unwrap()
        .thumbprint();
    for peer_cert in [Some(&wrong), None] {
        let e = validator
            .validate(&Presented::token(Scheme::Bearer, &token).peer(peer_cert))
            .await
            .expect_err("bound token without its certificate");
        assert!(
            format!("{e}").contains("cnf") || format!("{e}").contains("certificate"),
            "{e}"
        );
    }
    // A different audience configuration refuses the same token.
    let strict = Validator::builder()
        .issuer(&peer.issuer)
        .audience("urn:someone-else")
        .trust_anchors({
            let mut a = TrustAnchors::default();
            a.add(&peer.ca);
            a
        })
        .build()
        .await
        .unwrap();
    assert!(
        strict
            .validate(&Presented::token(Scheme::Bearer, &token).peer(Some(&right)))
            .await
            .is_err()
    );
    let _ = peer.child.kill().await;
}
