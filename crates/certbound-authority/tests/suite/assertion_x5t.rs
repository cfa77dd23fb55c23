//! `private_key_jwt` assertions whose `x5t` / `x5t#S256` headers are standard base64 (with
//! `+`/`/`, padded or not), as the azure_identity crate sends them.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{CertifiedKey, JwsAlgorithm, KeyKind, b64, now_unix};
use common::*;
use serde_json::{Value, json};

const SCOPE: &str = "api://orders/.default";

fn sha1(cred: &CertifiedKey) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        cred.leaf().der(),
    )
    .as_ref()
    .to_vec()
}

fn has_std_only_chars(s: &str) -> bool {
    s.contains(['+', '/'])
}

/// A certificate whose SHA-1 and SHA-256 thumbprints both contain `+` or `/` in standard
/// base64 (about one certificate in three qualifies).
fn awkward_certificate() -> CertifiedKey {
    for _ in 0..200 {
        let c = self_signed("x5t-app", KeyKind::EcP256);
        if has_std_only_chars(&STANDARD.encode(sha1(&c)))
            && has_std_only_chars(&STANDARD.encode(c.thumbprint().as_bytes()))
        {
            return c;
        }
    }
    panic!("no certificate with `+`/`/` in both thumbprints after 200 tries");
}

fn assertion(cred: &CertifiedKey, aud: &str, hints: &[(&str, String)]) -> String {
    let now = now_unix();
    let mut h = JwsHeader::new(JwsAlgorithm::ES256).typ("JWT");
    for (name, value) in hints {
        h = h.set(name, json!(value));
    }
    let mut jti = [0u8; 12];
    aws_lc_rs::rand::fill(&mut jti).unwrap();
    let claims = json!({
        "iss": "x5t-app", "sub": "x5t-app", "aud": aud,
        "jti": b64::encode(jti), "iat": now, "exp": now + 300,
    });
    sign_compact(&h, &claims, cred.key()).unwrap()
}

async fn request(env: &Env, jwt: &str) -> (u16, Value) {
    let (st, body, _) = env
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "x5t-app"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", jwt),
                ("scope", SCOPE),
            ],
        )
        .await;
    (st, body)
}

#[tokio::test]
async fn standard_base64_x5t_and_x5t_s256_are_accepted() {
    let env = start().await;
    let app = awkward_certificate();
    env.running
        .register(ClientRegistration::with_certificate(
            "x5t-app",
            app.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    let aud = env.running.token_endpoint().to_owned();
    let s1 = sha1(&app);
    let s256 = app.thumbprint().as_bytes().to_vec();
    let accepted: Vec<(&str, String)> = vec![
        ("x5t", STANDARD.encode(&s1)),
        ("x5t", STANDARD_NO_PAD.encode(&s1)),
        ("x5t", b64::encode(&s1)),
        ("x5t", format!("{}=", b64::encode(&s1))),
        ("x5t#S256", STANDARD.encode(&s256)),
        ("x5t#S256", STANDARD_NO_PAD.encode(&s256)),
        ("x5t#S256", b64::encode(&s256)),
    ];
    for (name, value) in accepted {
        let (st, body) = request(&env, &assertion(&app, &aud, &[(name, value.clone())])).await;
        assert_eq!(st, 200, "{name}={value}: {body}");
        assert_eq!(body["token_type"], "Bearer");
    }
}

#[tokio::test]
async fn malformed_or_foreign_thumbprint_hints_are_refused() {
    let env = start().await;
    let app = awkward_certificate();
    let stranger = self_signed("x5t-app", KeyKind::EcP256);
    env.running
        .register(ClientRegistration::with_certificate(
            "x5t-app",
            app.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    let aud = env.running.token_endpoint().to_owned();
    let std1 = STANDARD.encode(sha1(&app));
    // A standard-only character (`+`/`/`) and a base64url-only one (`-`) together.
    let j = std1.find(|c: char| c.is_ascii_alphanumeric()).unwrap();
    let mut mixed = std1.clone();
    mixed.replace_range(j..=j, "-");
    assert!(has_std_only_chars(&mixed) && mixed.contains('-'));
    let refused: Vec<(&str, String, &str)> = vec![
        ("x5t", STANDARD.encode(sha1(&stranger)), "not registered"),
        ("x5t", mixed, "x5t header is malformed"),
        ("x5t", format!("{std1}="), "x5t header is malformed"),
        (
            "x5t",
            STANDARD.encode(app.thumbprint().as_bytes()),
            "x5t header is malformed",
        ),
        (
            "x5t#S256",
            STANDARD.encode(stranger.thumbprint().as_bytes()),
            "not registered",
        ),
        (
            "x5t#S256",
            STANDARD.encode(sha1(&app)),
            "x5t#S256 header is malformed",
        ),
    ];
    for (name, value, why) in refused {
        let jwt = assertion(&app, &aud, &[(name, value.clone())]);
        let (st, body) = request(&env, &jwt).await;
        assert_eq!(st, 401, "{name}={value}: {body}");
        assert_eq!(body["error"], "invalid_client");
        let d = body["error_description"].as_str().unwrap();
        assert!(d.contains(why), "{name}={value}: {d}");
        assert!(!d.contains(&jwt), "the assertion must not be echoed");
    }
}
