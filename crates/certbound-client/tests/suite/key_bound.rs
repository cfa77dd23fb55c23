//! The schemes that bind the token to the app's proof key (`Pop`, `DPoP`) and the plain `MTLS`
//! scheme, over real TLS against the test token server in `common`: what goes on the wire,
//! what the client accepts back, the per-request proofs, nonces, rotation and the cache.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_client::{ClientError, HeaderOptions, ProtocolScheme, TokenSource};
use certbound_core::KeyKind;
use certbound_core::jose::decode_unverified;
use certbound_core::pop::{
    DpopExpectations, access_token_hash, parse_req_cnf, verify_dpop_proof,
    verify_signed_http_request,
};
use common::*;
use serde_json::Value;

const SCOPE: &str = "api://resource/.default";
const API: &str = "https://api.example:8443/orders/7?expand=lines";

fn claims(jwt: &str) -> Value {
    decode_unverified(jwt).unwrap().1
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_token_is_bound_to_the_app_key_and_each_request_gets_a_fresh_proof() {
    let s = start(Mode::Generic).await;
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let jkt = app.proof_key().thumbprint();
    let h = app
        .authorization_header_for_request(&[SCOPE], &HeaderOptions::dpop(), "GET", API)
        .await
        .unwrap();
    assert_eq!(h.scheme(), "DPoP");
    assert_eq!(h.source(), TokenSource::IdentityProvider);
    assert!(h.binding().is_none(), "DPoP presents no TLS certificate");
    let token = h.value().strip_prefix("DPoP ").unwrap();
    assert_eq!(claims(token)["cnf"]["jkt"], jkt.as_str());
    // The token request: a DPoP proof for POST <token endpoint>, the usual client auth.
    let (ph, pc) = s.state.last_dpop.lock().unwrap().clone().unwrap();
    assert_eq!(ph["typ"], "dpop+jwt");
    assert_eq!(pc["htm"], "POST");
    assert_eq!(pc["htu"], format!("{}/{TENANT}/token", s.base));
    assert!(pc.get("ath").is_none());
    assert_eq!(
        s.form().get("client_secret").map(String::as_str),
        Some(SECRET)
    );
    assert_eq!(*s.state.last_path.lock().unwrap(), "plain");
    // The resource proof verifies for this request only, with ath of this token.
    let proof = h.dpop_proof().unwrap();
    let now = certbound_core::now_unix();
    let p = verify_dpop_proof(
        proof,
        &DpopExpectations::new("GET", API, now).access_token(token),
    )
    .unwrap();
    assert_eq!(p.jkt, jkt);
    assert_eq!(claims(proof)["ath"], access_token_hash(token).as_str());
    assert!(verify_dpop_proof(proof, &DpopExpectations::new("POST", API, now)).is_err());
    // Headers go out marked sensitive.
    let mut headers = http::HeaderMap::new();
    h.apply(&mut headers).unwrap();
    assert!(headers["authorization"].is_sensitive() && headers["dpop"].is_sensitive());
    // Second request: the cached token, a new proof (new jti).
    let h2 = app
        .authorization_header_for_request(&[SCOPE], &HeaderOptions::dpop(), "GET", API)
        .await
        .unwrap();
    assert_eq!(h2.source(), TokenSource::Cache);
    assert_eq!(h2.value(), h.value());
    assert_ne!(
        claims(h2.dpop_proof().unwrap())["jti"],
        claims(proof)["jti"]
    );
    assert_eq!(s.requests(), 1);
    // The proof and token never show in Debug.
    let dbg = format!("{h2:?}");
    assert!(
        !dbg.contains(token) && !dbg.contains(h2.dpop_proof().unwrap()),
        "{dbg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_nonce_challenge_at_the_token_endpoint_is_answered_once_and_remembered() {
    let s = start(Mode::Generic).await;
    *s.state.dpop_nonce.lock().unwrap() = Some("nonce-A".into());
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::dpop())
        .await
        .unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(
        s.requests(),
        2,
        "one use_dpop_nonce answer, one retry with the nonce"
    );
    assert_eq!(
        s.state.last_dpop.lock().unwrap().as_ref().unwrap().1["nonce"],
        "nonce-A"
    );
    // The nonce is remembered: a forced refresh sends it at once.
    app.acquire_token_for_app(&[SCOPE], &HeaderOptions::dpop().force_refresh(true))
        .await
        .unwrap();
    assert_eq!(s.requests(), 3);
    // A server that keeps refusing is not retried forever.
    *s.state.dpop_nonce.lock().unwrap() = Some("nonce-B".into());
    s.push(Fault::Status(400, None)); // consumed before the nonce check: a plain 400 error
    let e = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::dpop().force_refresh(true))
        .await
        .unwrap_err();
    assert_eq!(
        s.requests(),
        4,
        "a 400 that is not use_dpop_nonce is not retried"
    );
    assert!(e.to_string().contains("400"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pop_token_request_sends_req_cnf_and_headers_are_signed_http_requests() {
    let s = start(Mode::Entra).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert).build().unwrap();
    let kid = app.proof_key().thumbprint();
    let h = app
        .authorization_header_for_request(&[SCOPE], &HeaderOptions::pop(), "PATCH", API)
        .await
        .unwrap();
    let form = s.form();
    assert_eq!(form.get("token_type").map(String::as_str), Some("pop"));
    assert_eq!(parse_req_cnf(&form["req_cnf"]).unwrap(), kid);
    assert!(
        form.contains_key("client_assertion"),
        "private_key_jwt authenticates"
    );
    assert!(s.state.last_dpop.lock().unwrap().is_none());
    assert_eq!(h.scheme(), "PoP");
    assert!(h.dpop_proof().is_none() && h.binding().is_none());
    let shr = verify_signed_http_request(h.value().strip_prefix("PoP ").unwrap()).unwrap();
    assert_eq!(shr.thumbprint, kid);
    assert_eq!(claims(&shr.access_token)["cnf"]["kid"], kid.as_str());
    shr.check_request("PATCH", API, certbound_core::now_unix(), 60, 5)
        .unwrap();
    assert!(
        shr.check_request("GET", API, certbound_core::now_unix(), 60, 5)
            .is_err()
    );
    let t = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::pop())
        .await
        .unwrap();
    assert_eq!(t.token_type, "pop");
    assert_eq!(t.source, TokenSource::Cache);
    assert_eq!(t.binding_thumbprint.unwrap().to_base64url(), kid);
    assert_eq!(s.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_bound_answers_that_are_unbound_or_bound_elsewhere_are_refused() {
    let s = start(Mode::Generic).await;
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let get = |o: HeaderOptions| {
        let app = app.clone();
        async move {
            app.authorization_header_for_request(&[SCOPE], &o.force_refresh(true), "GET", API)
                .await
        }
    };
    s.push(Fault::TokenType("Bearer"));
    let e = get(HeaderOptions::dpop()).await.unwrap_err();
    assert_eq!(e.code(), "token_type_mismatch", "{e}");
    s.push(Fault::KeyCnf("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let e = get(HeaderOptions::dpop()).await.unwrap_err();
    assert_eq!(e.code(), "binding_mismatch", "{e}");
    assert!(e.to_string().contains("cnf.jkt"), "{e}");
    s.push(Fault::NoCnf);
    let e = get(HeaderOptions::pop()).await.unwrap_err();
    assert_eq!(e.code(), "binding_missing", "{e}");
    assert!(e.to_string().contains("cnf.kid"), "{e}");
    s.push(Fault::TokenType("mtls_pop"));
    let e = get(HeaderOptions::pop()).await.unwrap_err();
    assert!(matches!(e, ClientError::TokenTypeMismatch { .. }), "{e}");
    // Nothing was cached from those answers.
    get(HeaderOptions::dpop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_proof_key_acquires_a_token_for_the_new_key() {
    let s = start(Mode::Generic).await;
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let h1 = app
        .authorization_header_for_request(&[SCOPE], &HeaderOptions::dpop(), "GET", API)
        .await
        .unwrap();
    let old = app.proof_key().thumbprint();
    app.rotate_proof_key().unwrap();
    let new = app.proof_key().thumbprint();
    assert_ne!(old, new);
    let h2 = app
        .authorization_header_for_request(&[SCOPE], &HeaderOptions::dpop(), "GET", API)
        .await
        .unwrap();
    assert_eq!(h2.source(), TokenSource::IdentityProvider);
    assert_ne!(h1.value(), h2.value());
    assert_eq!(
        claims(h2.value().strip_prefix("DPoP ").unwrap())["cnf"]["jkt"],
        new.as_str()
    );
    assert_eq!(s.requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn schemes_keep_separate_cache_entries_and_per_request_schemes_need_the_request() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    for scheme in [
        ProtocolScheme::Bearer,
        ProtocolScheme::MtlsPop,
        ProtocolScheme::Pop,
        ProtocolScheme::DPoP,
    ] {
        let o = HeaderOptions::default().scheme(scheme);
        app.authorization_header_for_request(&[SCOPE], &o, "GET", API)
            .await
            .unwrap();
        app.authorization_header_for_request(&[SCOPE], &o, "GET", API)
            .await
            .unwrap();
    }
    assert_eq!(s.requests(), 4, "one token per scheme, then the cache");
    let e = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::dpop())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "scheme_not_satisfiable");
    assert!(
        e.to_string().contains("authorization_header_for_request"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_scheme_presents_the_certificate_and_sends_no_token() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    let h = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls())
        .await
        .unwrap();
    assert!(!h.has_token() && h.value().is_empty() && h.scheme().is_empty());
    assert_eq!(h.binding().unwrap().thumbprint(), cert.thumbprint());
    let mut headers = http::HeaderMap::new();
    h.apply(&mut headers).unwrap();
    assert!(headers.is_empty());
    assert_eq!(s.requests(), 0, "no token request");
    let e = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "scheme_not_satisfiable");
    // A secret cannot do MTLS, and the unbound fallback does not apply (there is no token).
    let secret_app = s
        .builder()
        .client_secret(SECRET)
        .allow_unbound_fallback(true)
        .build()
        .unwrap();
    let e = secret_app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("MTLS needs a certificate"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_bound_schemes_need_an_app_token_unless_fallback_is_allowed() {
    let s = start(Mode::Generic).await;
    let app = s.builder().client_secret(SECRET).build().unwrap();
    let e = app
        .authorization_header_for_request(
            &[SCOPE],
            &HeaderOptions::dpop().request_app_token(false),
            "GET",
            API,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DPoP needs RequestAppToken"), "{e}");
    let h = app
        .authorization_header_for_request(
            &[SCOPE],
            &HeaderOptions::pop()
                .request_app_token(false)
                .allow_unbound_fallback(true),
            "GET",
            API,
        )
        .await
        .unwrap();
    assert_eq!(h.scheme(), "Bearer");
}
