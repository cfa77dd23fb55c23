//! Unit tests of the token-response checks.

use super::*;

#[test]
fn entra_bound_request_rejects_bearer_and_checks_cnf() {
    let cert = certbound_core::ca::self_signed_certified_key(
        &certbound_core::ca::IssueSpec::client("a"),
        certbound_core::KeyKind::EcP256,
    )
    .unwrap();
    let cred = ResolvedCredential::Certificate(cert.clone());
    let scopes = vec!["s".to_string()];
    let req = |bearer_ok| TokenRequest {
        endpoint: "https://mtlsauth.microsoft.com/t/oauth2/v2.0/token",
        client_id: "c",
        scopes: &scopes,
        bound: Some(&cert),
        bearer_ok_for_bound: bearer_ok,
        credential: &cred,
        send_x5c: false,
        key_bound: None,
    };
    let key = certbound_core::PrivateKey::generate(certbound_core::KeyKind::EcP256).unwrap();
    let jwt = |x5t: &str| {
        sign_compact(
            &JwsHeader::new(certbound_core::JwsAlgorithm::ES256),
            &serde_json::json!({"cnf": {"x5t#S256": x5t}}),
            &key,
        )
        .unwrap()
    };
    let good = jwt(&cert.thumbprint().to_base64url());
    let body = |tt: &str, tok: &str| {
        serde_json::to_vec(
            &serde_json::json!({"token_type": tt, "access_token": tok, "expires_in": 3599}),
        )
        .unwrap()
    };
    let e = parse_success("u", &body("Bearer", &good), &req(false)).unwrap_err();
    assert_eq!(e.code(), "token_type_mismatch");
    assert!(parse_success("u", &body("Bearer", &good), &req(true)).is_ok());
    let t = parse_success("u", &body("MTLS_POP", &good), &req(false)).unwrap();
    assert_eq!(t.binding_thumbprint, Some(cert.thumbprint().to_base64url()));
    assert_eq!(t.refresh_on, None, "under 2 h: no half-life refresh");
    let e = parse_success(
        "u",
        &body("mtls_pop", &jwt("not-a-thumbprint")),
        &req(false),
    )
    .unwrap_err();
    assert_eq!(e.code(), "binding_mismatch");
    let e = parse_success("u", b"{\"token_type\":\"mtls_pop\"}", &req(false)).unwrap_err();
    assert_eq!(e.code(), "invalid_response");
    let e = parse_success("u", b"[]", &req(false)).unwrap_err();
    assert_eq!(e.code(), "invalid_response");
}

#[test]
fn bound_token_with_more_than_one_cnf_key_is_refused() {
    let cert = certbound_core::ca::self_signed_certified_key(
        &certbound_core::ca::IssueSpec::client("a"),
        certbound_core::KeyKind::EcP256,
    )
    .unwrap();
    let cred = ResolvedCredential::Certificate(cert.clone());
    let scopes = vec!["s".to_string()];
    let proof_key = certbound_core::pop::ProofKey::generate().unwrap();
    let signer = certbound_core::PrivateKey::generate(certbound_core::KeyKind::EcP256).unwrap();
    let body = |tt: &str, cnf: serde_json::Value| {
        let jwt = sign_compact(
            &JwsHeader::new(certbound_core::JwsAlgorithm::ES256),
            &serde_json::json!({ "cnf": cnf }),
            &signer,
        )
        .unwrap();
        serde_json::to_vec(
            &serde_json::json!({"token_type": tt, "access_token": jwt, "expires_in": 3599}),
        )
        .unwrap()
    };
    let x5t = cert.thumbprint().to_base64url();
    let kid = proof_key.thumbprint();
    let jwk = serde_json::to_value(proof_key.public_jwk()).unwrap();
    let mtls = TokenRequest {
        endpoint: "https://login.example/token",
        client_id: "c",
        scopes: &scopes,
        bound: Some(&cert),
        bearer_ok_for_bound: false,
        credential: &cred,
        send_x5c: false,
        key_bound: None,
    };
    let pop = TokenRequest {
        bound: None,
        key_bound: Some(KeyBound::Pop(&proof_key)),
        ..mtls
    };
    // Controls: one key member, plus members that name no key.
    assert!(
        parse_success(
            "u",
            &body("mtls_pop", serde_json::json!({"x5t#S256": x5t})),
            &mtls
        )
        .is_ok()
    );
    assert!(
        parse_success(
            "u",
            &body("pop", serde_json::json!({"kid": kid, "xms_ksl": "sw"})),
            &pop
        )
        .is_ok()
    );
    for (req, tt, cnf, members) in [
        (
            &mtls,
            "mtls_pop",
            serde_json::json!({"x5t#S256": x5t, "jwk": jwk}),
            "x5t#S256, jwk",
        ),
        (
            &mtls,
            "mtls_pop",
            serde_json::json!({"x5t#S256": x5t, "jkt": kid}),
            "x5t#S256, jkt",
        ),
        (
            &pop,
            "pop",
            serde_json::json!({"kid": kid, "jwk": jwk, "xms_ksl": "sw"}),
            "kid, jwk",
        ),
        (
            &pop,
            "pop",
            serde_json::json!({"kid": kid, "jku": "https://k.example/"}),
            "kid, jku",
        ),
    ] {
        let e = parse_success("u", &body(tt, cnf.clone()), req).unwrap_err();
        assert_eq!(e.code(), "binding_ambiguous", "{cnf}");
        let text = e.to_string();
        assert!(text.contains("cnf") && text.contains(members), "{text}");
        assert!(!text.contains(&x5t) && !text.contains(&kid), "{text}");
    }
}

#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
}
