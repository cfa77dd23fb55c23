//! Token flows, credential sources, bound/unbound rules and faults, over real TLS against
//! the fault-injecting test token server in `common`.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use certbound_client::{App, ClientError, HeaderOptions, ProtocolScheme, TokenSource};
use certbound_core::KeyKind;
use common::*;

const SCOPE: &str = "api://resource/.default";

fn bound() -> HeaderOptions {
    HeaderOptions::mtls_pop()
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_pop_generic_server_gives_bound_bearer_over_mtls_alias() {
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
async fn mtls_pop_entra_style_token_type_and_rsa_cert() {
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
async fn bearer_with_certificate_uses_private_key_jwt_with_x5c_when_asked() {
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

fn config_file(
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

fn app_from(p: &std::path::Path, s: &FakeServer) -> App {
    let cfg = certbound_client::AppConfig::from_file(p).unwrap();
    certbound_client::AppBuilder::from_config(cfg)
        .add_ca_cert_file(&s.ca_path)
        .retry_policy(fast_policy())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_sources_from_config_path_pem_pfx_base64_and_order() {
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
async fn signed_assertion_file_is_reread_when_it_changes() {
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
async fn mtls_pop_rules_and_unbound_fallback_opt_in() {
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

async fn bound_app(s: &FakeServer) -> (App, certbound_core::CertifiedKey) {
    let cert = client_cert(KeyKind::EcP256);
    (s.builder().certificate(cert.clone()).build().unwrap(), cert)
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_5xx_is_retried_once() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.push(Fault::Status(503, None));
    app.authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 2);
    s.push(Fault::Status(500, None));
    s.push(Fault::Status(502, None));
    let e = app
        .authorization_header_for_app(&["other"], &bound())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::TokenEndpoint { status: 502, .. }),
        "{e}"
    );
    assert_eq!(s.requests(), 4, "exactly one retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_429_retry_after_is_honoured_and_long_waits_throttle() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.push(Fault::Status(429, Some("1".into())));
    app.authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 2);
    // A wait longer than the inline limit: a Throttled error (capped at 1 h), and no more
    // requests for that key until then.
    s.push(Fault::Status(429, Some("86400".into())));
    let e = app
        .authorization_header_for_app(&["k2"], &bound())
        .await
        .unwrap_err();
    match e {
        ClientError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(3600))
        }
        other => panic!("{other}"),
    }
    let e = app
        .authorization_header_for_app(&["k2"], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "throttled");
    assert_eq!(s.requests(), 3, "throttled key fails fast");
    // Other 4xx: never retried.
    s.push(Fault::Status(400, None));
    let e = app
        .authorization_header_for_app(&["k3"], &bound())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TokenEndpoint { status: 400, .. }));
    assert_eq!(s.requests(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_slow_response_times_out_then_retry_succeeds() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.push(Fault::Slow(Duration::from_secs(10)));
    app.authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 2);
    s.push(Fault::Slow(Duration::from_secs(10)));
    s.push(Fault::Slow(Duration::from_secs(10)));
    let e = app
        .authorization_header_for_app(&["slow"], &bound())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_bad_responses_are_typed_errors_never_unbound_tokens() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Garbage, "invalid_response"),
        (Fault::TokenType("pop"), "token_type_mismatch"),
        (Fault::NoTokenType, "token_type_missing"),
        (
            Fault::CnfOf(certbound_core::Thumbprint::of_der(b"another certificate")),
            "binding_mismatch",
        ),
        (Fault::NoCnf, "binding_missing"),
    ];
    for (i, (f, code)) in cases.into_iter().enumerate() {
        s.push(f.clone());
        let e = app
            .authorization_header_for_app(&[format!("scope-{i}")], &bound())
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{f:?}: {e}");
    }
    // Nothing was cached: the next request goes to the server and succeeds.
    let before = s.requests();
    app.authorization_header_for_app(&["scope-0"], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), before + 1);
    // Entra: `Bearer` for an mtls_pop request is a mismatch too.
    *s.state.mode.lock().unwrap() = Mode::Entra;
    s.push(Fault::TokenType("Bearer"));
    let ok = app
        .authorization_header_for_app(&["generic-ok"], &bound())
        .await;
    assert!(ok.is_ok(), "generic authority: Bearer+cnf is bound");
    // A bearer request answered with mtls_pop is a mismatch.
    let capp = s.builder().client_secret(SECRET).build().unwrap();
    s.push(Fault::TokenType("mtls_pop"));
    let e = capp
        .authorization_header_for_app(&["b"], &HeaderOptions::bearer())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "token_type_mismatch");
}

#[tokio::test(flavor = "multi_thread")]
async fn opaque_bound_token_is_accepted_with_its_binding() {
    let s = start(Mode::Entra).await;
    let (app, cert) = bound_app(&s).await;
    s.push(Fault::Opaque);
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert!(h.value().starts_with("mtls_pop opaque-"));
    assert_eq!(h.binding_thumbprint(), Some(&cert.thumbprint()));
}

#[tokio::test(flavor = "multi_thread")]
async fn thousand_concurrent_cold_requests_make_one_token_request() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    // The server holds the response briefly so the requests really overlap.
    s.state
        .delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            app.authorization_header_for_app(
                &["api://x/.default", "second"],
                &HeaderOptions::mtls_pop(),
            )
            .await
            .map(|h| h.value().to_owned())
        }));
    }
    let mut values = std::collections::HashSet::new();
    for t in tasks {
        values.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(values.len(), 1);
    assert_eq!(s.requests(), 1, "exactly one token request at the server");
    assert_eq!(app.token_requests_sent(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_failures_are_shared_too() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    s.push(Fault::Status(400, None));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.authorization_header_for_app(&["x"], &HeaderOptions::mtls_pop())
                .await
                .is_err()
        }));
    }
    let mut errs = 0;
    for t in tasks {
        errs += t.await.unwrap() as usize;
    }
    assert!(errs >= 1);
    assert!(
        s.requests() < 50,
        "failures are shared by concurrent waiters: {} requests",
        s.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proactive_refresh_serves_cached_token_while_refreshing() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .refresh_in
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let first = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.state
        .refresh_in
        .store(0, std::sync::atomic::Ordering::SeqCst);
    // Past refresh_in: the cached token is served and one background refresh starts.
    let served = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(served.value(), first.value());
    assert_eq!(served.source(), TokenSource::Cache);
    assert!(eventually(|| s.requests() == 2).await);
    let mut newer = None;
    for _ in 0..200 {
        let h = app
            .authorization_header_for_app(&[SCOPE], &bound())
            .await
            .unwrap();
        if h.value() != first.value() {
            newer = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(newer.is_some(), "the refreshed token replaces the old one");
    assert_eq!(s.requests(), 2, "one refresh only");
}

#[tokio::test(flavor = "multi_thread")]
async fn long_lived_tokens_refresh_at_half_life_and_expiry_margin_applies() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .lifetime
        .store(7200, std::sync::atomic::Ordering::SeqCst);
    let t = app
        .acquire_token_for_app(&["long"], &bound())
        .await
        .unwrap();
    assert!(t.expires_on > certbound_core::now_unix() + 7000);
    // A token inside the 5-minute margin is not served from the cache.
    s.state
        .lifetime
        .store(299, std::sync::atomic::Ordering::SeqCst);
    app.acquire_token_for_app(&["short"], &bound())
        .await
        .unwrap();
    let t2 = app
        .acquire_token_for_app(&["short"], &bound())
        .await
        .unwrap();
    assert_eq!(t2.source, TokenSource::IdentityProvider);
    assert_eq!(s.requests(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn force_refresh_and_scope_order_and_tenant() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    let a = app
        .authorization_header_for_app(&["b", "a"], &bound())
        .await
        .unwrap();
    let b = app
        .authorization_header_for_app(&["a", "b", "a"], &bound())
        .await
        .unwrap();
    assert_eq!(
        a.value(),
        b.value(),
        "scope order and duplicates do not matter"
    );
    assert_eq!(s.requests(), 1);
    let c = app
        .authorization_header_for_app(&["a", "b"], &bound().force_refresh(true))
        .await
        .unwrap();
    assert_ne!(c.value(), a.value());
    assert_eq!(c.source(), TokenSource::IdentityProvider);
    assert_eq!(s.requests(), 2);
    // The fresh token replaced the cached one.
    let d = app
        .authorization_header_for_app(&["a", "b"], &bound())
        .await
        .unwrap();
    assert_eq!(d.value(), c.value());
    // A subset of scopes is a different token.
    app.authorization_header_for_app(&["a"], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 3);
    let e = app
        .authorization_header_for_app(&[" "], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "no_scopes");
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_server_certificate_is_a_clear_error() {
    let s = start(Mode::Generic).await;
    let app = App::builder()
        .client_id(CLIENT_ID)
        .authority(s.authority())
        .certificate(client_cert(KeyKind::EcP256))
        .trust_anchors(certbound_core::tls::TrustAnchors::default())
        .retry_policy(fast_policy())
        .build()
        .unwrap();
    let e = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "discovery_failed", "{e}");
}

#[derive(Debug)]
struct BrokenCache;

impl certbound_client::TokenCache for BrokenCache {
    fn get<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
    ) -> certbound_client::cache::BoxFuture<
        'a,
        Result<Option<certbound_client::CachedToken>, certbound_client::cache::CacheError>,
    > {
        Box::pin(async { Err(certbound_client::cache::CacheError("backend down".into())) })
    }
    fn set<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
        _t: &'a certbound_client::CachedToken,
    ) -> certbound_client::cache::BoxFuture<'a, Result<(), certbound_client::cache::CacheError>>
    {
        Box::pin(async { Err(certbound_client::cache::CacheError("backend down".into())) })
    }
    fn remove<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
    ) -> certbound_client::cache::BoxFuture<'a, Result<(), certbound_client::cache::CacheError>>
    {
        Box::pin(async { Err(certbound_client::cache::CacheError("backend down".into())) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pluggable_cache_is_shared_between_apps_and_its_failures_are_not_fatal() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let shared = Arc::new(certbound_client::MemoryTokenCache::new(100));
    let app1 = s
        .builder()
        .certificate(cert.clone())
        .token_cache(shared.clone())
        .build()
        .unwrap();
    let app2 = s
        .builder()
        .certificate(cert.clone())
        .token_cache(shared.clone())
        .build()
        .unwrap();
    let t1 = app1
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    let t2 = app2
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(
        t2.source,
        TokenSource::Cache,
        "a second process-like app finds the token in the shared cache"
    );
    assert_eq!(t1.access_token, t2.access_token);
    assert_eq!(s.requests(), 1);
    // Another certificate never gets that token.
    let app3 = s
        .builder()
        .certificate(client_cert(KeyKind::EcP256))
        .token_cache(shared)
        .build()
        .unwrap();
    let t3 = app3
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(t3.source, TokenSource::IdentityProvider);
    assert_ne!(t3.access_token, t1.access_token);

    // A failing cache backend: tokens still flow (and the hot path still serves hits).
    let broken = s
        .builder()
        .certificate(cert)
        .token_cache(Arc::new(BrokenCache))
        .build()
        .unwrap();
    let a = broken
        .acquire_token_for_app(&["b1"], &bound())
        .await
        .unwrap();
    assert_eq!(a.source, TokenSource::IdentityProvider);
    let b = broken
        .acquire_token_for_app(&["b1"], &bound())
        .await
        .unwrap();
    assert_eq!(b.source, TokenSource::Cache);
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_is_fetched_once_for_concurrent_cold_requests_on_many_keys() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .delay_ms
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.authorization_header_for_app(&[format!("scope-{i}")], &HeaderOptions::mtls_pop())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.requests(), 20, "one token request per key");
    assert_eq!(
        s.state
            .discovery_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "discovery is single-flight and cached"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_override_uses_that_tenants_discovery_and_its_own_cache_entry() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = App::builder()
        .client_id(CLIENT_ID)
        .instance(format!("{}/", s.base))
        .tenant_id(TENANT)
        .certificate(cert)
        .add_trust_anchor(&s.ca)
        .retry_policy(fast_policy())
        .build()
        .unwrap();
    let home = app.acquire_token_for_app(&[SCOPE], &bound()).await.unwrap();
    let other = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("tenant-2"))
        .await
        .unwrap();
    assert_ne!(home.access_token, other.access_token);
    assert_eq!(other.source, TokenSource::IdentityProvider);
    let (_, claims) = certbound_core::jose::decode_unverified(other.access_token.expose()).unwrap();
    assert_eq!(claims["iss"], format!("{}/tenant-2/v2.0", s.base));
    let again = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("tenant-2"))
        .await
        .unwrap();
    assert_eq!(again.source, TokenSource::Cache);
    assert_eq!(again.access_token, other.access_token);
    assert_eq!(
        s.state
            .discovery_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let e = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("bad/tenant"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_authority");
}
