//! The token endpoint's DPoP checks (for the authority): accepted, replay, method/URL, ath
//! not needed, nonce flow, malformed headers.

use std::time::Duration;

use certbound_core::pop::{PopError, ProofKey};
use certbound_resource::DpopError;
use certbound_resource::proof::{DpopNonces, TokenEndpointDpop, TokenEndpointDpopError};
use http::{HeaderMap, HeaderValue, Method};

const TOKEN_URL: &str = "https://login.example/tenant/oauth2/v2.0/token";

fn headers(proofs: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for p in proofs {
        h.append("dpop", HeaderValue::from_str(p).unwrap());
    }
    h
}

fn invalid(e: TokenEndpointDpopError) -> DpopError {
    match e {
        TokenEndpointDpopError::InvalidProof(d) => d,
        other => panic!("expected invalid_dpop_proof, got {other:?}"),
    }
}

#[test]
fn token_endpoint_proofs() {
    let ep =
        TokenEndpointDpop::new("HTTPS://LOGIN.example:443/tenant/oauth2/v2.0/token?x=1").unwrap();
    let key = ProofKey::generate().unwrap();
    let p = key.dpop_proof("POST", TOKEN_URL, None, None).unwrap();
    let got = ep.check(&Method::POST, &headers(&[&p])).unwrap().unwrap();
    assert_eq!(got.jkt, key.thumbprint());
    assert_eq!(
        invalid(ep.check(&Method::POST, &headers(&[&p])).unwrap_err()),
        DpopError::Replayed
    );
    assert!(
        ep.check(&Method::POST, &HeaderMap::new())
            .unwrap()
            .is_none()
    );

    let p = key.dpop_proof("GET", TOKEN_URL, None, None).unwrap();
    let e = ep.check(&Method::POST, &headers(&[&p])).unwrap_err();
    assert_eq!(e.error_code(), "invalid_dpop_proof");
    assert_eq!(invalid(e), DpopError::Proof(PopError::MethodMismatch));
    let p = key
        .dpop_proof(
            "POST",
            "https://login.example/other/oauth2/v2.0/token",
            None,
            None,
        )
        .unwrap();
    assert_eq!(
        invalid(ep.check(&Method::POST, &headers(&[&p])).unwrap_err()),
        DpopError::Proof(PopError::UrlMismatch)
    );
    let p = key
        .dpop_proof_at(
            "POST",
            TOKEN_URL,
            None,
            None,
            certbound_core::now_unix() - 120,
        )
        .unwrap();
    assert_eq!(
        invalid(ep.check(&Method::POST, &headers(&[&p])).unwrap_err()),
        DpopError::Proof(PopError::Stale)
    );
    let (a, b) = (
        key.dpop_proof("POST", TOKEN_URL, None, None).unwrap(),
        key.dpop_proof("POST", TOKEN_URL, None, None).unwrap(),
    );
    assert_eq!(
        invalid(ep.check(&Method::POST, &headers(&[&a, &b])).unwrap_err()),
        DpopError::Multiple
    );
    assert!(matches!(
        invalid(ep.check(&Method::POST, &headers(&["garbage"])).unwrap_err()),
        DpopError::Proof(PopError::Malformed(_))
    ));
    assert!(TokenEndpointDpop::new("not a url").is_err());
}

#[test]
fn token_endpoint_nonce_flow() {
    let nonces = DpopNonces::new(Duration::from_secs(300)).unwrap();
    let ep = TokenEndpointDpop::new(TOKEN_URL)
        .unwrap()
        .window(Duration::from_secs(30), Duration::from_secs(2))
        .require_nonce(nonces.clone());
    let key = ProofKey::generate().unwrap();
    let p = key.dpop_proof("POST", TOKEN_URL, None, None).unwrap();
    let e = ep.check(&Method::POST, &headers(&[&p])).unwrap_err();
    assert_eq!(e.error_code(), "use_dpop_nonce");
    let TokenEndpointDpopError::UseNonce(n) = e else {
        unreachable!()
    };
    assert_eq!(Some(n.clone()), ep.current_nonce());
    let p = key.dpop_proof("POST", TOKEN_URL, None, Some(&n)).unwrap();
    let got = ep.check(&Method::POST, &headers(&[&p])).unwrap().unwrap();
    assert_eq!(got.nonce.as_deref(), Some(n.as_str()));
    // Another instance's nonce, a tampered nonce.
    let theirs = DpopNonces::new(Duration::from_secs(300)).unwrap().current();
    let mut tampered = n.clone();
    tampered.pop();
    tampered.push(if n.ends_with('A') { 'B' } else { 'A' });
    for bad in [theirs, tampered, String::new()] {
        let p = key.dpop_proof("POST", TOKEN_URL, None, Some(&bad)).unwrap();
        assert_eq!(
            ep.check(&Method::POST, &headers(&[&p]))
                .unwrap_err()
                .error_code(),
            "use_dpop_nonce"
        );
    }
}

/// docs/resource-server.md (proof origin) for token endpoints: the proof must name the endpoint's own URL; the request's
/// `Host` is not consulted, so a proof for another host is refused whatever Host says.
#[test]
fn token_endpoint_proof_for_another_host_is_refused() {
    let ep = TokenEndpointDpop::new(TOKEN_URL).unwrap();
    let key = ProofKey::generate().unwrap();
    for (htu, host) in [
        (
            "https://attacker.example/tenant/oauth2/v2.0/token",
            "attacker.example",
        ),
        (
            "https://attacker.example/tenant/oauth2/v2.0/token",
            "login.example",
        ),
        (
            "https://login.example:8443/tenant/oauth2/v2.0/token",
            "login.example:8443",
        ),
        (
            "http://login.example/tenant/oauth2/v2.0/token",
            "login.example",
        ),
    ] {
        let p = key.dpop_proof("POST", htu, None, None).unwrap();
        let mut h = headers(&[&p]);
        h.insert("host", HeaderValue::from_static(host));
        assert_eq!(
            invalid(ep.check(&Method::POST, &h).unwrap_err()),
            DpopError::Proof(PopError::UrlMismatch),
            "{htu} with Host {host}"
        );
    }
    let p = key.dpop_proof("POST", TOKEN_URL, None, None).unwrap();
    let mut h = headers(&[&p]);
    h.insert("host", HeaderValue::from_static("attacker.example"));
    assert!(ep.check(&Method::POST, &h).unwrap().is_some());
}
