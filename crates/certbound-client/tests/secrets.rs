//! No token, client secret, private key, password or assertion appears in logs (captured at
//! TRACE for every crate), in `Debug`/`Display` of the public types, or in errors.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use certbound_client::{App, AppConfig, HeaderOptions};
use certbound_core::KeyKind;
use common::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_logs_debug_display_or_errors() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = start(Mode::Entra).await;
    let dir = tempfile::tempdir().unwrap();
    let mut secrets: Vec<String> = vec![SECRET.into()];
    let mut shown: Vec<String> = Vec::new();

    // Certificate credentials: PEM (key material) and PFX (password).
    let cert = client_cert(KeyKind::EcP256);
    let key_pem = cert.key().to_pkcs8_pem().as_str().to_owned();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    secrets.push(key_body[..40].to_owned());
    secrets.push(key_body[key_body.len() - 40..].to_owned());
    write_pem(dir.path(), "app", &cert);
    let pfx_cert = client_cert(KeyKind::Rsa2048);
    std::fs::write(
        dir.path().join("app.pfx"),
        pfx_cert.to_pkcs12("PFX-pass-9876").unwrap(),
    )
    .unwrap();
    secrets.push("PFX-pass-9876".into());
    secrets.push("WRONG-pass-5432".into());
    let assertion = certbound_core::jose::sign_compact(
        &certbound_core::jose::JwsHeader::new(certbound_core::JwsAlgorithm::ES256),
        &serde_json::json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": format!("{}/{TENANT}/token", s.base)}),
        cert.key(),
    )
    .unwrap();
    std::fs::write(dir.path().join("assertion"), &assertion).unwrap();
    secrets.push(assertion.clone());

    let cfg_text = serde_json::json!({
        "AzureAd": { "Authority": s.authority(), "ClientId": CLIENT_ID, "ClientCredentials": [
            {"SourceType": "Path", "CertificateDiskPath": "app.pfx", "CertificatePassword": "WRONG-pass-5432"},
            {"SourceType": "Path", "CertificateDiskPath": "app.pfx", "CertificatePassword": "PFX-pass-9876"}
        ]},
        "DownstreamApis": {"Api": {"Scopes": ["s"], "ProtocolScheme": "MTLS_POP", "RequestAppToken": true}}
    });
    let p = dir.path().join("appsettings.json");
    std::fs::write(&p, serde_json::to_vec(&cfg_text).unwrap()).unwrap();
    let cfg = AppConfig::from_file(&p).unwrap();
    shown.push(format!("{cfg:?}"));
    for c in &cfg.azure_ad.client_credentials {
        shown.push(format!("{c:?}"));
    }
    let builder = certbound_client::AppBuilder::from_config(cfg)
        .add_ca_cert_file(&s.ca_path)
        .retry_policy(fast_policy());
    shown.push(format!("{builder:?}"));
    let pfx_app = builder.build().unwrap();

    let pem_app = s.builder().certificate(cert.clone()).build().unwrap();
    let secret_app = s.builder().client_secret(SECRET).build().unwrap();
    let assertion_app = s
        .builder()
        .credential(Arc::new(
            certbound_client::AssertionFileCredential::open(dir.path().join("assertion")).unwrap(),
        ))
        .build()
        .unwrap();

    let mut tokens = Vec::new();
    for app in [&pfx_app, &pem_app] {
        let h = app
            .authorization_header_for_app(&["s"], &HeaderOptions::mtls_pop())
            .await
            .unwrap();
        tokens.push(h.value().split_once(' ').unwrap().1.to_owned());
        shown.push(format!("{h:?}"));
        let t = app
            .acquire_token_for_app(&["s"], &HeaderOptions::mtls_pop())
            .await
            .unwrap();
        shown.push(format!("{t:?}"));
        shown.push(format!("{app:?}"));
        let r = app.credential().resolve().await.unwrap();
        shown.push(format!("{r:?}"));
        shown.push(format!("{:?}", app.credential()));
    }
    for app in [&secret_app, &assertion_app, &pem_app] {
        let t = app
            .acquire_token_for_app(&["bearer-scope"], &HeaderOptions::bearer())
            .await
            .unwrap();
        tokens.push(t.access_token.expose().to_owned());
        shown.push(format!("{t:?} {}", t.access_token));
        shown.push(format!("{:?}", app.credential().resolve().await.unwrap()));
        shown.push(format!("{app:?}"));
    }
    // Errors of every kind that can carry request material.
    s.push(Fault::Status(401, None));
    let e = secret_app
        .acquire_token_for_app(&["x1"], &HeaderOptions::bearer())
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    s.push(Fault::CnfOf(certbound_core::Thumbprint::of_der(b"x")));
    let e = pem_app
        .acquire_token_for_app(&["x2"], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    s.push(Fault::TokenType("weird"));
    let e = pem_app
        .acquire_token_for_app(&["x3"], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = App::from_config(
        AppConfig::from_json_str(&serde_json::json!({"AzureAd": {"Authority": s.authority(), "ClientId": "c", "ClientCredentials": [
            {"SourceType": "Path", "CertificateDiskPath": dir.path().join("app.pfx"), "CertificatePassword": "WRONG-pass-5432"},
            {"SourceType": "Base64Encoded", "Base64EncodedValue": "bm90IGEgcGZ4", "CertificatePassword": "WRONG-pass-5432"}]}}).to_string())
        .unwrap(),
    )
    .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let cached = certbound_client::CachedToken::new(
        "Bearer",
        certbound_client::Secret::new(tokens[0].clone()),
        0,
        None,
        None,
    );
    shown.push(format!("{cached:?}"));
    shown.push(format!("{:?}", certbound_client::Secret::new(SECRET)));
    shown.push(format!("{:?}", HeaderOptions::mtls_pop()));

    secrets.extend(tokens.iter().cloned());
    // The signature part alone must not leak either.
    secrets.extend(
        tokens
            .iter()
            .filter_map(|t| t.rsplit_once('.').map(|(_, sig)| sig.to_owned())),
    );

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(logs.contains("token acquired"), "the capture works");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "captured below INFO too"
    );
    let shown = shown.join("\n");
    assert!(shown.contains("redacted"));
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret.as_str()),
            "secret #{i} of the list above appears in the logs"
        );
        assert!(
            !shown.contains(secret.as_str()),
            "secret #{i} of the list above appears in Debug/Display/errors"
        );
    }
}
