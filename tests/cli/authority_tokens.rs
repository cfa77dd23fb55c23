//! The development authority's tokens as a resource server sees them: PoP (SHR) and DPoP
//! tokens issued by `certbound-authority` validated by `certbound-resource` (the authority
//! crate does not depend on the resource crate, so these cross-crate checks live here).
//!
//! Microsoft "PoP" (signed HTTP request) issuance over real TLS: `token_type=pop` with
//! `req_cnf` gives `token_type: "pop"` and `cnf.kid`, whatever the client authentication.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../../crates/certbound-authority/tests/common/mod.rs"]
mod common;

use base64::Engine as _;
use certbound_authority::ClientRegistration;
use certbound_core::pop::ProofKey;
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, b64};
use certbound_resource::Presented;
use common::*;
use serde_json::{Value, json};

const SCOPE: &str = "api://orders/.default";
const SECRET: &str = "pop-client-secret-0123456789";

/// (how the client authenticates, TLS identity, headers, form, client id)
type Case<'a> = (
    &'a str,
    Option<&'a certbound_core::CertifiedKey>,
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
    &'a str,
);

async fn validator(env: &Env) -> certbound_resource::Validator {
    certbound_resource::Validator::builder()
        .issuer(env.running.issuer())
        .audience("api://orders")
        .jwks_uri(env.running.jwks_uri())
        .trust_anchors(env.anchors())
        .external_base_url("https://api.example")
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn pop_bound_tokens_with_private_key_jwt_secret_and_tls_certificate() {
    let env = start().await;
    let cert = env.register_self_signed_for(
        "pop-cert-app",
        certbound_authority::CertAuthMethod::SelfSignedTlsClientAuth,
        &[certbound_authority::AuthMethod::PrivateKeyJwt],
    );
    env.running
        .register(ClientRegistration::with_secret("pop-secret-app", SECRET))
        .unwrap();
    let url = env.running.token_endpoint().to_owned();
    let v = validator(&env).await;
    let key = ProofKey::generate().unwrap();
    let rsa = ProofKey::generate_kind(KeyKind::Rsa2048).unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("pop-secret-app:{SECRET}"))
    );

    for (what, key) in [("EC", &key), ("RSA", &rsa)] {
        let req_cnf = key.req_cnf();
        let assertion = Assertion::new("pop-cert-app", &url, JwsAlgorithm::ES256).sign(&cert);
        let base = |id: &'static str| {
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("scope", SCOPE),
                ("token_type", "pop"),
            ]
        };
        let mut jwt_form = base("pop-cert-app");
        jwt_form.push(("client_assertion_type", JWT_BEARER));
        jwt_form.push(("client_assertion", &assertion));
        jwt_form.push(("req_cnf", &req_cnf));
        let mut secret_form = base("pop-secret-app");
        secret_form.push(("client_secret", SECRET));
        secret_form.push(("req_cnf", &req_cnf));
        let mut basic_form = base("pop-secret-app");
        basic_form.push(("req_cnf", &req_cnf));
        let mut tls_form = base("pop-cert-app");
        tls_form.push(("req_cnf", &req_cnf));
        // Entra spells it `pop`; any case is accepted.
        tls_form[3].1 = "PoP";
        let cases: Vec<Case> = vec![
            ("private_key_jwt", None, vec![], jwt_form, "pop-cert-app"),
            (
                "client_secret_post",
                None,
                vec![],
                secret_form,
                "pop-secret-app",
            ),
            (
                "client_secret_basic",
                None,
                vec![("authorization", basic.as_str())],
                basic_form,
                "pop-secret-app",
            ),
            (
                "self_signed_tls_client_auth",
                Some(&cert),
                vec![],
                tls_form,
                "pop-cert-app",
            ),
        ];
        for (how, identity, headers, form, client) in cases {
            let r = env.post(&url, identity, &headers, &form).await;
            assert_eq!(r.status, 200, "{what} {how}: {}", r.text);
            assert_eq!(r.body["token_type"], "pop", "{what} {how}");
            assert_eq!(r.header("cache-control"), Some("no-store"));
            let token = r.body["access_token"].as_str().unwrap();
            let c = claims(token);
            // Bound to the key only, even when a TLS certificate authenticated the client.
            assert_eq!(c["cnf"], json!({ "kid": key.thumbprint() }), "{what} {how}");
            assert_eq!(c["sub"], client);

            // The resource server accepts it inside a signed HTTP request by that key.
            let shr = key
                .signed_http_request(token, "GET", "https://api.example/orders")
                .unwrap();
            let mut h = http::HeaderMap::new();
            h.insert("authorization", format!("PoP {shr}").parse().unwrap());
            let uri: http::Uri = "/orders".parse().unwrap();
            let ok = v
                .validate(&Presented::http(&http::Method::GET, &uri, &h))
                .await
                .unwrap();
            assert_eq!(ok.proof_key_thumbprint(), Some(key.thumbprint().as_str()));
            // … and not inside one by another key.
            let other = ProofKey::generate().unwrap();
            let shr = other
                .signed_http_request(token, "GET", "https://api.example/orders")
                .unwrap();
            let mut h = http::HeaderMap::new();
            h.insert("authorization", format!("PoP {shr}").parse().unwrap());
            assert!(
                v.validate(&Presented::http(&http::Method::GET, &uri, &h))
                    .await
                    .is_err()
            );
        }
    }
}

#[tokio::test]
async fn pop_without_or_with_malformed_req_cnf_is_invalid_request() {
    let env = start().await;
    env.running
        .register(ClientRegistration::with_secret("pop-secret-app", SECRET))
        .unwrap();
    let url = env.running.token_endpoint().to_owned();
    let short_kid = b64::encode(json!({ "kid": "short" }).to_string());
    let not_b64_kid = b64::encode(json!({ "kid": "!".repeat(43) }).to_string());
    let jkt_member =
        b64::encode(json!({ "jkt": ProofKey::generate().unwrap().thumbprint() }).to_string());
    let array = b64::encode("[1]");
    let huge = "A".repeat(5000);
    let key = ProofKey::generate().unwrap();
    let std_alphabet = base64::engine::general_purpose::STANDARD
        .encode(json!({ "kid": key.thumbprint() }).to_string())
        .replace('=', "");
    let mut values: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("garbage value!"),
        Some("e30"),
        Some(&short_kid),
        Some(&not_b64_kid),
        Some(&jkt_member),
        Some(&array),
        Some(&huge),
    ];
    // Standard base64 is refused only if it actually differs from base64url.
    if std_alphabet.contains(['+', '/']) {
        values.push(Some(&std_alphabet));
    }
    for value in values {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", "pop-secret-app"),
            ("client_secret", SECRET),
            ("scope", SCOPE),
            ("token_type", "pop"),
        ];
        if let Some(v) = value {
            form.push(("req_cnf", v));
        }
        let r = env.post(&url, None, &[], &form).await;
        assert_eq!(r.status, 400, "{value:?}: {}", r.text);
        assert_eq!(r.error(), "invalid_request", "{value:?}");
        assert!(r.description().contains("req_cnf"), "{}", r.text);
        assert!(r.body.get("access_token").is_none());
        assert!(!r.text.contains(SECRET));
        if let Some(v) = value.filter(|v| v.len() > 3) {
            assert!(!r.text.contains(v), "the value is echoed: {}", r.text);
        }
    }
    // req_cnf without token_type=pop is ignored, as other unknown parameters are.
    let r = env
        .post(
            &url,
            None,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "pop-secret-app"),
                ("client_secret", SECRET),
                ("scope", SCOPE),
                ("req_cnf", "garbage"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    assert!(
        claims(r.body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
    // A bad secret still fails client authentication (after the request checks).
    let r = env
        .post(
            &url,
            None,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "pop-secret-app"),
                ("client_secret", "wrong"),
                ("scope", SCOPE),
                ("token_type", "pop"),
                ("req_cnf", &key.req_cnf()),
            ],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.error(), "invalid_client");
}

#[tokio::test]
async fn in_process_pop_tokens() {
    let env = start().await;
    let key = ProofKey::generate().unwrap();
    let t = env
        .running
        .issue_pop_token("svc", "api://orders/.default", &key.thumbprint())
        .unwrap();
    assert_eq!(
        claims(t.access_token())["cnf"],
        json!({ "kid": key.thumbprint() })
    );
    assert_eq!(
        t.key_binding,
        Some(certbound_authority::KeyBinding::Pop(key.thumbprint()))
    );
    let v = validator(&env).await;
    let shr = key
        .signed_http_request(t.access_token(), "POST", "https://api.example/orders")
        .unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("PoP {shr}").parse().unwrap());
    let uri: http::Uri = "/orders".parse().unwrap();
    assert!(
        v.validate(&Presented::http(&http::Method::POST, &uri, &h))
            .await
            .is_ok()
    );
}

/// The token endpoint URLs a client may use: discovery's `token_endpoint`, its
/// `mtls_endpoint_aliases.token_endpoint`, and the same server by `localhost`.
async fn endpoint_aliases(env: &Env) -> Vec<String> {
    let disco: Value = env
        .http(None)
        .get(env.running.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    vec![
        disco["token_endpoint"].as_str().unwrap().to_owned(),
        disco["mtls_endpoint_aliases"]["token_endpoint"]
            .as_str()
            .unwrap()
            .to_owned(),
        env.localhost_token_endpoint(),
    ]
}

#[tokio::test]
async fn dpop_bound_tokens_for_ec_and_rsa_keys_on_every_endpoint_alias() {
    let env = start().await;
    register_secret_client(&env, SECRET);
    let rsa_rs256 = ProofKey::from_private_key(
        PrivateKey::generate(KeyKind::Rsa2048).unwrap(),
        JwsAlgorithm::RS256,
    )
    .unwrap();
    let keys = [
        ProofKey::generate().unwrap(),
        ProofKey::generate_kind(KeyKind::EcP384).unwrap(),
        ProofKey::generate_kind(KeyKind::Rsa2048).unwrap(),
        rsa_rs256,
    ];
    let aliases = endpoint_aliases(&env).await;
    assert!(aliases[2].contains("://localhost:"), "{aliases:?}");
    // A resource server that accepts the authority's tokens with DPoP proofs.
    let validator = certbound_resource::Validator::builder()
        .issuer(env.running.issuer())
        .audience("api://orders")
        .jwks_uri(env.running.jwks_uri())
        .trust_anchors(env.anchors())
        .external_base_url("https://api.example")
        .build()
        .await
        .unwrap();
    for key in &keys {
        for url in &aliases {
            let proof = key.dpop_proof("POST", url, None, None).unwrap();
            let r = env
                .post(url, None, &[("DPoP", &proof)], &secret_form(SECRET, SCOPE))
                .await;
            assert_eq!(r.status, 200, "{:?} at {url}: {}", key.algorithm(), r.text);
            assert_eq!(r.body["token_type"], "DPoP");
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert!(r.header("dpop-nonce").is_none(), "no nonce demanded");
            let token = r.body["access_token"].as_str().unwrap();
            let c = claims(token);
            assert_eq!(c["cnf"], json!({ "jkt": key.thumbprint() }), "{c}");
            assert_eq!(c["sub"], "dpop-app");

            // The token works at a resource server with a fresh proof, and only so.
            let mut h = http::HeaderMap::new();
            h.insert("authorization", format!("DPoP {token}").parse().unwrap());
            let p = key
                .dpop_proof("GET", "https://api.example/orders", Some(token), None)
                .unwrap();
            h.insert("dpop", p.parse().unwrap());
            let uri: http::Uri = "/orders".parse().unwrap();
            let ok = validator
                .validate(&Presented::http(&http::Method::GET, &uri, &h))
                .await
                .unwrap();
            assert_eq!(ok.proof_key_thumbprint(), Some(key.thumbprint().as_str()));
            let mut bearer = http::HeaderMap::new();
            bearer.insert("authorization", format!("Bearer {token}").parse().unwrap());
            assert!(
                validator
                    .validate(&Presented::http(&http::Method::GET, &uri, &bearer))
                    .await
                    .is_err(),
                "a DPoP-bound token sent as Bearer"
            );
        }
    }
}
