//! Faults of the identity provider: retries, throttling, timeouts, bad answers.

use super::*;

pub(super) async fn bound_app(s: &FakeServer) -> (App, certbound_core::CertifiedKey) {
    let cert = client_cert(KeyKind::EcP256);
    (s.builder().certificate(cert.clone()).build().unwrap(), cert)
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn fault_5xx_is_retried_once() {
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
pub(super) async fn fault_429_retry_after_is_honoured_and_long_waits_throttle() {
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
pub(super) async fn fault_slow_response_times_out_then_retry_succeeds() {
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
pub(super) async fn fault_bad_responses_are_typed_errors_never_unbound_tokens() {
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
