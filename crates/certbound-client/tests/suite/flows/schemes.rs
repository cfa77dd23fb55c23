//! Bound tokens per scheme and credential source, and the MTLS_POP rules.

use super::*;

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn mtls_pop_generic_server_gives_bound_bearer_over_mtls_alias() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(h.scheme(), "Bearer");
    assert_eq!(h.source(), TokenSource::IdentityProvider);
    assert_eq!(h.binding().unwrap().thumbprint(), cert.thumbprint());
    let token = h.value().strip_prefix("Bearer ").unwrap();
    assert_eq!(cnf_of(token).unwrap(), cert.thumbprint().to_base64url());
    let form = s.form();
    assert_eq!(form.get("token_type").map(String::as_str), Some("mtls_pop"));
    assert!(!form.contains_key("client_assertion") && !form.contains_key("client_secret"));
    assert_eq!(
        *s.state.last_path.lock().unwrap(),
        "mtls",
        "used mtls_endpoint_aliases.token_endpoint"
    );
    assert_eq!(*s.state.last_peer.lock().unwrap(), Some(cert.thumbprint()));
    // Second call: the cache.
    let h2 = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(h2.source(), TokenSource::Cache);
    assert_eq!(h2.value(), h.value());
    assert_eq!(s.requests(), 1);
    assert_eq!(
        s.state
            .discovery_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn mtls_pop_entra_style_token_type_and_rsa_cert() {
    let s = start(Mode::Entra).await;
    let cert = client_cert(KeyKind::Rsa2048);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    let t = app.acquire_token_for_app(&[SCOPE], &bound()).await.unwrap();
    assert_eq!(t.token_type, "mtls_pop");
    assert_eq!(t.binding_thumbprint, Some(cert.thumbprint()));
    assert_eq!(t.source, TokenSource::IdentityProvider);
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert!(h.value().starts_with("mtls_pop ey"));
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn bearer_with_certificate_uses_private_key_jwt_with_x5c_when_asked() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::Rsa2048);
    let app = s
        .builder()
        .certificate(cert.clone())
        .send_x5c(true)
        .build()
        .unwrap();
    let h = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert!(h.binding().is_none());
    assert!(cnf_of(h.value().strip_prefix("Bearer ").unwrap()).is_none());
    let form = s.form();
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!form.contains_key("token_type"));
    let hdr = s
        .state
        .last_assertion_header
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(hdr["alg"], "PS256");
    assert_eq!(hdr["x5t#S256"], cert.thumbprint().to_base64url());
    assert_eq!(hdr["x5t"], cert.leaf().x5t_sha1());
    assert_eq!(hdr["x5c"][0].as_str().unwrap(), cert.x5c()[0]);
    assert_eq!(*s.state.last_path.lock().unwrap(), "plain");

    let ec = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(ec).build().unwrap();
    app.authorization_header_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    let hdr = s
        .state
        .last_assertion_header
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(hdr["alg"], "ES256");
    assert!(hdr.get("x5c").is_none(), "no x5c without SendX5C");
}

pub(super) fn config_file(
    dir: &std::path::Path,
    s: &FakeServer,
    creds: serde_json::Value,
) -> std::path::PathBuf {
    let cfg = serde_json::json!({
        "AzureAd": { "Authority": s.authority(), "ClientId": CLIENT_ID, "ClientCredentials": creds },
        "DownstreamApis": { "Api": { "BaseUrl": "https://api.example/", "Scopes": [SCOPE], "ProtocolScheme": "mtls_pop", "RequestAppToken": true } }
    });
    let p = dir.join("appsettings.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    p
}

pub(super) fn app_from(p: &std::path::Path, s: &FakeServer) -> App {
    let cfg = certbound_client::AppConfig::from_file(p).unwrap();
    certbound_client::AppBuilder::from_config(cfg)
        .add_ca_cert_file(&s.ca_path)
        .retry_policy(fast_policy())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn credential_sources_from_config_path_pem_pfx_base64_and_order() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = client_cert(KeyKind::EcP256);
    write_pem(dir.path(), "app", &cert);
    // Relative path, resolved against the config file's directory; a broken first entry and a skipped one.
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([
            {"SourceType": "Path", "CertificateDiskPath": "missing.pem"},
            {"SourceType": "ClientSecret", "ClientSecret": SECRET, "Skip": true},
            {"SourceType": "Path", "CertificateDiskPath": "app.pem"},
        ]),
    );
    let app = app_from(&p, &s);
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(h.binding_thumbprint(), Some(&cert.thumbprint()));

    // PFX with a password.
    let pfx_cert = client_cert(KeyKind::Rsa2048);
    std::fs::write(
        dir.path().join("app.pfx"),
        pfx_cert.to_pkcs12("pfx-PASS-word").unwrap(),
    )
    .unwrap();
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([
            {"SourceType": "Path", "CertificateDiskPath": "app.pfx", "CertificatePassword": "wrong"},
            {"SourceType": "Path", "CertificateDiskPath": "app.pfx", "CertificatePassword": "pfx-PASS-word"},
        ]),
    );
    let app = app_from(&p, &s);
    let t = app.acquire_token_for_app(&[SCOPE], &bound()).await.unwrap();
    assert_eq!(t.binding_thumbprint, Some(pfx_cert.thumbprint()));

    // Base64Encoded PFX.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pfx_cert.to_pkcs12("pw").unwrap());
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([
            {"SourceType": "Base64Encoded", "Base64EncodedValue": b64, "CertificatePassword": "pw"},
        ]),
    );
    let t = app_from(&p, &s)
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(t.binding_thumbprint, Some(pfx_cert.thumbprint()));

    // ClientSecret (bearer).
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([{"SourceType": "ClientSecret", "ClientSecret": SECRET}]),
    );
    let t = app_from(&p, &s)
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(s.form()["client_secret"], SECRET);

    // Nothing loads: the error lists why, per entry, without secrets.
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([
            {"SourceType": "Path", "CertificateDiskPath": "app.pfx", "CertificatePassword": "wrong-PASSWORD-x"},
            {"SourceType": "SignedAssertionFromManagedIdentity"},
        ]),
    );
    let cfg = certbound_client::AppConfig::from_file(&p).unwrap();
    let e = App::from_config(cfg).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("AzureAd.ClientCredentials[0]")
            && msg.contains("AzureAd.ClientCredentials[1]"),
        "{msg}"
    );
    assert!(msg.contains("not supported yet"), "{msg}");
    assert!(!msg.contains("wrong-PASSWORD-x"));
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn signed_assertion_file_is_reread_when_it_changes() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = client_cert(KeyKind::EcP256);
    let audience = format!("{}/{TENANT}/token", s.base);
    let write = |jti: &str| {
        let a = certbound_core::jose::sign_compact(
            &certbound_core::jose::JwsHeader::new(certbound_core::JwsAlgorithm::ES256),
            &serde_json::json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": audience, "jti": jti}),
            cert.key(),
        )
        .unwrap();
        std::fs::write(dir.path().join("token"), format!("{a}\n")).unwrap();
        a
    };
    let first = write("first-assertion-jti-and-more-bytes");
    let p = config_file(
        dir.path(),
        &s,
        serde_json::json!([{"SourceType": "SignedAssertionFilePath", "SignedAssertionFileDiskPath": "token"}]),
    );
    let app = app_from(&p, &s);
    app.acquire_token_for_app(&["scope-a"], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert_eq!(s.form()["client_assertion"], first);
    let second = write("second");
    app.acquire_token_for_app(&["scope-b"], &HeaderOptions::bearer())
        .await
        .unwrap();
    assert_eq!(s.form()["client_assertion"], second);
    // MTLS_POP cannot be served by an assertion.
    let e = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "scheme_not_satisfiable");
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn mtls_pop_rules_and_unbound_fallback_opt_in() {
    let s = start(Mode::Generic).await;
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let e = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::SchemeNotSatisfiable(_)), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert_eq!(s.requests(), 0, "no request is sent");
    // Explicit opt-in: an unbound bearer token.
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound().allow_unbound_fallback(true))
        .await
        .unwrap();
    assert_eq!(h.scheme(), "Bearer");
    assert!(h.binding().is_none());
    // App-wide opt-in.
    let app2 = s
        .builder()
        .client_secret(SECRET)
        .allow_unbound_fallback(true)
        .build()
        .unwrap();
    assert!(
        app2.authorization_header_for_app(&[SCOPE], &bound())
            .await
            .unwrap()
            .binding()
            .is_none()
    );

    // RequestAppToken false.
    let capp = s
        .builder()
        .certificate(client_cert(KeyKind::EcP256))
        .build()
        .unwrap();
    let e = capp
        .authorization_header_for_app(&[SCOPE], &bound().request_app_token(false))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("RequestAppToken"), "{e}");
    // Bearer and bound tokens never mix in the cache.
    let hb = capp
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::bearer())
        .await
        .unwrap();
    let hp = capp
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_ne!(hb.value(), hp.value());
    assert!(hb.binding().is_none() && hp.binding().is_some());
    assert_eq!(ProtocolScheme::MtlsPop.token_type(), "mtls_pop");
}
