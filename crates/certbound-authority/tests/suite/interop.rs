//! Standard clients against the authority: curl with `--cert/--key` (mTLS PoP,
//! tls_client_auth) and an unmodified MSAL for Python `ConfidentialClientApplication`
//! with a certificate credential (private_key_jwt via `oidc_authority`; MSAL signs
//! PS256, so RSA certificates) and with a client secret.
//!
//! Each test skips with a printed note when its external client is missing
//! (`curl`; `python3 -c "import msal"` — install with `pip install msal`).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::Path;
use std::process::Command;

use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::{CertifiedKey, KeyKind};
use common::*;
use serde_json::Value;

fn write_pem(dir: &Path, name: &str, cred: &CertifiedKey) -> (String, String) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let pem: String = cred.chain().iter().map(|c| c.to_pem()).collect();
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&key, cred.key().to_pkcs8_pem().as_bytes()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn curl_obtains_bound_tokens() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let env = start().await;
    let dir = env.dir.path();
    let ss = self_signed("curl-app", KeyKind::EcP256);
    let issued = env
        .running
        .authority()
        .ca()
        .issue_certified_key(
            &certbound_core::ca::IssueSpec::client("curl-ca-app"),
            KeyKind::Rsa2048,
        )
        .unwrap();
    env.running
        .register(ClientRegistration::with_certificate(
            "curl-app",
            ss.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        ))
        .unwrap();
    env.running
        .register(ClientRegistration::with_certificate(
            "curl-ca-app",
            issued.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap();
    let ca = env.running.ca_cert_path().display().to_string();
    for (id, cred, extra, expect_type) in [
        ("curl-app", &ss, "&token_type=mtls_pop", "mtls_pop"),
        ("curl-ca-app", &issued, "", "Bearer"),
    ] {
        let (cert, key) = write_pem(dir, id, cred);
        let data = format!(
            "grant_type=client_credentials&client_id={id}&scope=api%3A%2F%2Forders%2F.default{extra}"
        );
        let out = tokio::task::spawn_blocking({
            let (te, ca) = (env.running.token_endpoint().to_owned(), ca.clone());
            move || {
                Command::new("curl")
                    .args([
                        "-sS", "--cacert", &ca, "--cert", &cert, "--key", &key, "-d", &data, &te,
                    ])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["token_type"], expect_type, "{body}");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!(c["cnf"]["x5t#S256"], cred.thumbprint().to_base64url());
        assert_eq!(c["client_id"], id);
    }
}

#[tokio::test]
async fn msal_python_confidential_client_with_certificate() {
    if !have("python3", &["-c", "import msal"]) {
        eprintln!("SKIPPED: MSAL for Python is not installed (pip install msal)");
        return;
    }
    let env = start().await;
    let dir = env.dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/msal_client.py");
    let rsa = self_signed("msal-rsa", KeyKind::Rsa2048);
    env.running
        .register(ClientRegistration::with_certificate(
            "msal-rsa",
            rsa.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    env.running
        .register(ClientRegistration::with_secret(
            "msal-secret",
            "msal-secret-value",
        ))
        .unwrap();
    let ca = env.running.ca_cert_path().display().to_string();
    let (rsa_cert, rsa_key) = write_pem(dir, "msal-rsa", &rsa);
    let cases = [
        ("msal-rsa", rsa_cert.clone(), rsa_key.clone(), "sha1"),
        ("msal-rsa", rsa_cert, rsa_key, "x5c"),
        (
            "msal-secret",
            String::new(),
            "msal-secret-value".to_owned(),
            "secret",
        ),
    ];
    for (id, cert, key, mode) in cases {
        let args: Vec<String> = vec![
            script.display().to_string(),
            env.running.issuer().to_owned(),
            id.into(),
            cert,
            key,
            ca.clone(),
            "api://orders/.default".into(),
            mode.into(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                // requests lets REQUESTS_CA_BUNDLE override MSAL's `verify`.
                .env("REQUESTS_CA_BUNDLE", &args[5])
                .env_remove("CURL_CA_BUNDLE")
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{id}/{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{id}/{mode}: {stdout}"));
        assert!(body.get("access_token").is_some(), "{id}/{mode}: {body}");
        assert_eq!(body["token_type"], "Bearer", "{id}/{mode}: {body}");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!(c["client_id"], id);
        assert_eq!(c["aud"], "api://orders");
        assert_eq!(c["iss"], env.running.issuer());
    }
}
