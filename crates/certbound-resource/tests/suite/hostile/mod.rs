//! The hostile-token suite: every case refused with the right description, both directly
//! against the validator and over real TLS against the layer; no panic.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_resource::Presented;
use std::net::SocketAddr;
use std::sync::Arc;

use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey, b64};
use certbound_resource::transport::{PeerCertificate, TlsInfo};
use certbound_resource::{DpopError, ProtocolScheme, Rejection, TokenError, Validator};
use common::*;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

mod binding;
mod claims;
mod token;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cert {
    Right,
    Other,
    Absent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// ES256 and PS256 allowed, binding not required.
    Default,
    /// `require_binding(true)`.
    RequireBinding,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Ok,
    Token(TokenError),
    Missing,
    InvalidRequest,
    DpopMissing,
}

struct Case {
    name: &'static str,
    authorization: String,
    cert: Cert,
    variant: Variant,
    expect: Expect,
}

struct World {
    pki: Pki,
    issuer: TestIssuer,
    ec1: PrivateKey,
    rsa1: PrivateKey,
    attacker: PrivateKey,
    right: CertifiedKey,
    other: CertifiedKey,
    default: Validator,
    require_binding: Validator,
}

async fn world() -> World {
    certbound_core::tls::install_default_provider();
    let pki = Pki::new();
    let ec1 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let ec2 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let rsa1 = PrivateKey::generate(KeyKind::Rsa2048).unwrap();
    let attacker = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwks = Jwks {
        keys: vec![
            ec1.public_jwk().with_kid("ec1"),
            ec2.public_jwk().with_kid("ec2"),
            rsa1.public_jwk().with_kid("rsa1"),
        ],
    };
    let issuer = TestIssuer::start(&pki, jwks).await;
    let build = |require: bool| {
        Validator::builder()
            .issuer(issuer.issuer.clone())
            .audience(AUD)
            .token_rules(
                certbound_resource::TokenRules::default()
                    .algorithms(&[JwsAlgorithm::ES256, JwsAlgorithm::PS256]),
            )
            .trust_anchors(pki.anchors.clone())
            .keys(
                certbound_resource::KeyFetching::default()
                    .min_refetch_interval(std::time::Duration::from_secs(3600)),
            )
            .require_binding(require)
            .build()
    };
    let default = build(false).await.unwrap();
    let require_binding = build(true).await.unwrap();
    let right = pki.client_cert("right");
    let other = pki.client_cert("other");
    World {
        pki,
        issuer,
        ec1,
        rsa1,
        attacker,
        right,
        other,
        default,
        require_binding,
    }
}

fn cases(w: &World) -> Vec<Case> {
    let mut v = token::cases(w);
    v.extend(claims::cases(w));
    v.extend(binding::cases(w));
    v
}

fn tls_info(w: &World, cert: Cert) -> TlsInfo {
    let id = match cert {
        Cert::Right => Some(&w.right),
        Cert::Other => Some(&w.other),
        Cert::Absent => None,
    };
    TlsInfo {
        peer: id.map(|c| PeerCertificate {
            chain: Arc::from(c.rustls_chain()),
            thumbprint: c.thumbprint(),
        }),
        remote_addr: "127.0.0.1:1".parse().unwrap(),
        listen_addr: None,
    }
}

fn check_direct(case: &Case, got: Result<certbound_resource::ValidatedToken, Rejection>) {
    match (&case.expect, got) {
        (Expect::Ok, Ok(_)) => {}
        (Expect::Token(e), Err(Rejection::InvalidToken { error, .. })) if &error == e => {}
        (Expect::Missing, Err(Rejection::MissingToken)) => {}
        (Expect::InvalidRequest, Err(Rejection::InvalidRequest(_))) => {}
        (Expect::DpopMissing, Err(Rejection::InvalidDpopProof(DpopError::Missing))) => {}
        (want, got) => panic!("case `{}`: expected {want:?}, got {got:?}", case.name),
    }
}

#[tokio::test]
async fn hostile_tokens_against_the_validator() {
    let w = world().await;
    let cases = cases(&w);
    let refusals = cases.iter().filter(|c| c.expect != Expect::Ok).count();
    assert!(refusals >= 40, "only {refusals} hostile cases");
    for case in &cases {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&case.authorization).unwrap(),
        );
        let v = match case.variant {
            Variant::Default => &w.default,
            Variant::RequireBinding => &w.require_binding,
        };
        let got = v
            .validate(&Presented::headers(&headers).tls(Some(&tls_info(&w, case.cert))))
            .await;
        if let Err(r) = &got {
            // Never echo the token in what goes back to the client.
            if case.authorization.len() > 40 {
                let tail = &case.authorization[case.authorization.len() - 20..];
                for c in r.challenges() {
                    assert!(!c.contains(tail), "case `{}` echoes the token", case.name);
                }
                assert!(
                    !r.to_string().contains(tail),
                    "case `{}` echoes the token",
                    case.name
                );
            }
        }
        check_direct(case, got);
    }
}

async fn call(w: &World, addr: SocketAddr, case: &Case) -> reqwest::Response {
    let id = match case.cert {
        Cert::Right => Some(&w.right),
        Cert::Other => Some(&w.other),
        Cert::Absent => None,
    };
    w.pki
        .http(id)
        .get(format!("https://127.0.0.1:{}/whoami", addr.port()))
        .header(header::AUTHORIZATION, &case.authorization)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn hostile_tokens_over_tls_against_the_layer() {
    let w = world().await;
    let api = serve_api(&w.pki, w.default.clone()).await;
    let api_rb = serve_api(&w.pki, w.require_binding.clone()).await;
    for case in cases(&w) {
        let addr = match case.variant {
            Variant::Default => api,
            Variant::RequireBinding => api_rb,
        };
        let resp = call(&w, addr, &case).await;
        let status = resp.status().as_u16();
        let challenges: Vec<String> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = resp.text().await.unwrap();
        let tail = &case.authorization[case.authorization.len().saturating_sub(20)..];
        assert!(
            case.authorization.len() <= 40 || !body.contains(tail) || case.expect == Expect::Ok,
            "case `{}` echoes the token",
            case.name
        );
        match &case.expect {
            Expect::Ok => {
                assert_eq!(status, 200, "case `{}`: {body}", case.name);
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["sub"], "app-1");
            }
            Expect::Token(e) => {
                assert_eq!(status, 401, "case `{}`: {body}", case.name);
                let scheme = if case.authorization[..6].eq_ignore_ascii_case("bearer") {
                    "Bearer"
                } else {
                    "mtls_pop"
                };
                assert_eq!(
                    challenges,
                    vec![format!(
                        r#"{scheme} error="invalid_token", error_description="{e}""#
                    )],
                    "case `{}`",
                    case.name
                );
            }
            Expect::Missing => {
                assert_eq!(status, 401, "case `{}`", case.name);
                assert_eq!(
                    challenges,
                    vec![
                        "Bearer".to_owned(),
                        "mtls_pop".to_owned(),
                        r#"DPoP algs="ES256 ES384 RS256 PS256""#.to_owned(),
                        "PoP".to_owned()
                    ],
                    "case `{}`",
                    case.name
                );
            }
            Expect::DpopMissing => {
                assert_eq!(status, 401, "case `{}`", case.name);
                assert_eq!(
                    challenges,
                    vec![
                        r#"DPoP error="invalid_dpop_proof", error_description="DPoP proof header missing", algs="ES256 ES384 RS256 PS256""#
                    ],
                    "case `{}`",
                    case.name
                );
            }
            Expect::InvalidRequest => {
                assert_eq!(status, 400, "case `{}`", case.name);
                assert!(
                    challenges[0].starts_with(r#"Bearer error="invalid_request""#),
                    "case `{}`",
                    case.name
                );
            }
        }
    }
    // No Authorization header at all.
    let resp = w
        .pki
        .http(Some(&w.right))
        .get(format!("https://127.0.0.1:{}/whoami", api.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenges: Vec<_> = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        vec![
            "Bearer",
            "mtls_pop",
            r#"DPoP algs="ES256 ES384 RS256 PS256""#,
            "PoP"
        ]
    );
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited_and_single_flight() {
    let w = world().await;
    let iss = w.issuer.issuer.clone();
    assert_eq!(w.issuer.jwks_fetches(), 2, "one load per validator");
    let x5t = w.right.thumbprint();
    // 20 concurrent requests with unknown kids: exactly one refetch.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let v = w.default.clone();
        let kid = format!("unknown-{i}");
        let t = token(
            &header("ES256", Some(&kid)),
            &claims(&iss, Some(&x5t.to_base64url())),
            Signer::Key(&w.attacker, JwsAlgorithm::ES256),
        );
        tasks.push(tokio::spawn(async move {
            v.validate(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&x5t)))
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.unwrap_err().token_error(), Some(&TokenError::KeyNotFound));
    }
    assert_eq!(w.issuer.jwks_fetches(), 3);
    // The issuer rotates in a new key: within the interval, no further fetch happens.
    let ec3 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    w.issuer.set_jwks(Jwks {
        keys: vec![
            w.ec1.public_jwk().with_kid("ec1"),
            ec3.public_jwk().with_kid("ec3"),
        ],
    });
    let t3 = token(
        &header("ES256", Some("ec3")),
        &claims(&iss, Some(&x5t.to_base64url())),
        Signer::Key(&ec3, JwsAlgorithm::ES256),
    );
    let r = w
        .default
        .validate(&Presented::token(ProtocolScheme::MtlsPop, &t3).peer(Some(&x5t)))
        .await;
    assert_eq!(r.unwrap_err().token_error(), Some(&TokenError::KeyNotFound));
    assert_eq!(w.issuer.jwks_fetches(), 3);

    // A validator with no minimum interval picks the rotated key up, with one fetch for
    // many concurrent requests.
    let eager = Validator::builder()
        .issuer(iss.clone())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone())
        .keys(
            certbound_resource::KeyFetching::default()
                .min_refetch_interval(std::time::Duration::ZERO),
        )
        .build()
        .await
        .unwrap();
    let ec4 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let before = w.issuer.jwks_fetches();
    w.issuer.set_jwks(Jwks {
        keys: vec![ec4.public_jwk().with_kid("ec4")],
    });
    let t4 = token(
        &header("ES256", Some("ec4")),
        &claims(&iss, Some(&x5t.to_base64url())),
        Signer::Key(&ec4, JwsAlgorithm::ES256),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let v = eager.clone();
        let t = t4.clone();
        tasks.push(tokio::spawn(async move {
            v.validate(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&x5t)))
                .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(w.issuer.jwks_fetches(), before + 1, "single-flight refetch");
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_refused() {
    let w = world().await;
    w.issuer
        .set_advertised_issuer("https://someone-else.example/v2.0");
    let err = Validator::builder()
        .issuer(w.issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected exactly"), "{err}");
}

#[tokio::test]
async fn untrusted_issuer_tls_is_refused() {
    let w = world().await;
    let err = Validator::builder()
        .issuer(w.issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(certbound_core::tls::TrustAnchors::default())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, certbound_resource::BuildError::Discovery { .. }),
        "{err}"
    );
}
