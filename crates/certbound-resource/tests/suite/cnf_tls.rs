//! RFC 7800 §3.1 over real TLS with the proof schemes: a `cnf` names exactly one
//! proof-of-possession key. A DPoP- or PoP-bound token whose `cnf` also carries a `jwk` (or
//! another key member) is refused even with a valid proof for the key it names, and Entra's
//! `Pop` token shape (`cnf: {"kid": …, "xms_ksl": "sw"}`) passes with a valid signed request.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::net::SocketAddr;

use certbound_core::pop::ProofKey;
use certbound_core::{Jwks, KeyKind, PrivateKey, jose};
use certbound_resource::Validator;
use common::*;
use http::header;
use serde_json::{Value, json};

const ALGS: &str = r#"algs="ES256 ES384 RS256 PS256""#;

struct World {
    pki: Pki,
    issuer: TestIssuer,
    signer: PrivateKey,
    api: SocketAddr,
}

async fn world() -> World {
    certbound_core::tls::install_default_provider();
    let pki = Pki::new();
    let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let issuer = TestIssuer::start(
        &pki,
        Jwks {
            keys: vec![signer.public_jwk().with_kid("k1")],
        },
    )
    .await;
    let v = Validator::builder()
        .issuer(issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(pki.anchors.clone())
        .build()
        .await
        .unwrap();
    let api = serve_api(&pki, v).await;
    World {
        pki,
        issuer,
        signer,
        api,
    }
}

impl World {
    fn token(&self, cnf: Value) -> String {
        let mut c = claims(&self.issuer.issuer, None);
        c.insert("cnf".into(), cnf);
        let h = jose::JwsHeader::new(self.signer.default_jws_algorithm())
            .kid("k1")
            .typ("at+jwt");
        jose::sign_compact(&h, &c, &self.signer).unwrap()
    }
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/whoami", self.api.port())
    }
    async fn send(&self, authorization: &str, dpop: Option<&str>) -> (u16, Vec<String>, String) {
        let mut req = self
            .pki
            .http(None)
            .get(self.url())
            .header(header::AUTHORIZATION, authorization);
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenges = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        (status, challenges, resp.text().await.unwrap())
    }
}

fn jwk_of(key: &ProofKey) -> Value {
    serde_json::to_value(key.public_jwk()).unwrap()
}

#[tokio::test]
async fn dpop_token_with_a_second_cnf_key_is_refused_over_tls() {
    let w = world().await;
    let key = ProofKey::generate().unwrap();
    let other = ProofKey::generate().unwrap();
    // Control: the same token shape with only `jkt` passes.
    let token = w.token(json!({"jkt": key.thumbprint()}));
    let proof = key.dpop_proof("GET", &w.url(), Some(&token), None).unwrap();
    let (status, _, body) = w.send(&format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    for (cnf, members) in [
        (
            json!({"jkt": key.thumbprint(), "jwk": jwk_of(&other)}),
            "jkt, jwk",
        ),
        (
            json!({"jkt": key.thumbprint(), "jwk": jwk_of(&key)}),
            "jkt, jwk",
        ),
        (
            json!({"jkt": key.thumbprint(), "kid": other.thumbprint()}),
            "jkt, kid",
        ),
        (
            json!({"jkt": key.thumbprint(), "jku": "https://attacker.invalid/jwks"}),
            "jkt, jku",
        ),
    ] {
        let token = w.token(cnf.clone());
        let proof = key.dpop_proof("GET", &w.url(), Some(&token), None).unwrap();
        let (status, challenges, body) = w.send(&format!("DPoP {token}"), Some(&proof)).await;
        assert_eq!(status, 401, "{cnf}: {body}");
        assert_eq!(
            challenges,
            vec![format!(
                r#"DPoP error="invalid_token", error_description="cnf claim holds more than one proof-of-possession key ({members}); exactly one of x5t#S256, jkt or kid is accepted", {ALGS}"#
            )],
            "{cnf}"
        );
    }
    // `jwk` as the only confirmation: named, and refused (this server cannot enforce it).
    let token = w.token(json!({"jwk": jwk_of(&key)}));
    let proof = key.dpop_proof("GET", &w.url(), Some(&token), None).unwrap();
    let (status, challenges, _) = w.send(&format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenges,
        vec![format!(
            r#"DPoP error="invalid_token", error_description="cnf claim's jwk confirmation is not supported (this server enforces x5t#S256, jkt or kid)", {ALGS}"#
        )]
    );
}

#[tokio::test]
async fn pop_token_with_a_second_cnf_key_is_refused_over_tls() {
    let w = world().await;
    let key = ProofKey::generate().unwrap();
    let other = ProofKey::generate().unwrap();
    for (cnf, members) in [
        (
            json!({"kid": key.thumbprint(), "jwk": jwk_of(&other)}),
            "kid, jwk",
        ),
        (
            json!({"kid": key.thumbprint(), "jwe": "a.b.c.d.e", "xms_ksl": "sw"}),
            "kid, jwe",
        ),
        (
            json!({"kid": key.thumbprint(), "x5t#S256": other.thumbprint()}),
            "x5t#S256, kid",
        ),
    ] {
        let token = w.token(cnf.clone());
        let shr = key.signed_http_request(&token, "GET", &w.url()).unwrap();
        let (status, challenges, body) = w.send(&format!("PoP {shr}"), None).await;
        assert_eq!(status, 401, "{cnf}: {body}");
        assert_eq!(
            challenges,
            vec![format!(
                r#"PoP error="invalid_token", error_description="cnf claim holds more than one proof-of-possession key ({members}); exactly one of x5t#S256, jkt or kid is accepted""#
            )],
            "{cnf}"
        );
    }
}

#[tokio::test]
async fn entra_pop_token_with_xms_ksl_passes_with_a_valid_shr() {
    let w = world().await;
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let key = ProofKey::generate_kind(kind).unwrap();
        // What Entra issues for `token_type=pop`: the key's thumbprint as `kid` plus
        // `xms_ksl` (key storage location), which names no key and is ignored.
        let token = w.token(json!({"kid": key.thumbprint(), "xms_ksl": "sw"}));
        let shr = key.signed_http_request(&token, "GET", &w.url()).unwrap();
        let (status, _, body) = w.send(&format!("PoP {shr}"), None).await;
        assert_eq!(status, 200, "{kind:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["scheme"], "PoP");
        assert_eq!(v["cnf"]["kid"], key.thumbprint());
        assert_eq!(v["sub"], "app-1");
        // Another key's SHR around the same token is still refused.
        let other = ProofKey::generate_kind(kind).unwrap();
        let shr = other.signed_http_request(&token, "GET", &w.url()).unwrap();
        let (status, challenges, _) = w.send(&format!("PoP {shr}"), None).await;
        assert_eq!(status, 401);
        assert_eq!(
            challenges,
            vec![
                r#"PoP error="invalid_token", error_description="signed request key does not match the token's cnf.kid""#
            ]
        );
    }
}
