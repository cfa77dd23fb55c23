//! A `private_key_jwt` assertion with an extreme `exp` (i64::MAX, 1e300, -1e300) is refused
//! with `invalid_client` over real TLS; the check once computed `exp + skew` unchecked, which
//! panics (a dropped connection, no answer) in builds with overflow checks.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{JwsAlgorithm, KeyKind, b64, now_unix};
use common::*;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::test]
async fn extreme_assertion_exp_is_refused_not_a_panic() {
    let env = start().await;
    let app = self_signed("numbers-app", KeyKind::EcP256);
    env.running
        .register(ClientRegistration::with_certificate(
            "numbers-app",
            app.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    let aud = env.running.token_endpoint().to_owned();
    let now = now_unix();
    let mut n = 0u32;
    let mut sign = |exp: Value| {
        n += 1;
        let claims = json!({
            "iss": "numbers-app", "sub": "numbers-app", "aud": aud,
            "jti": b64::encode(n.to_be_bytes()), "iat": now, "exp": exp,
        });
        sign_compact(
            &JwsHeader::new(JwsAlgorithm::ES256).typ("JWT"),
            &claims,
            app.key(),
        )
        .unwrap()
    };
    let cases = [
        (json!(now + 300), 200, ""),
        (
            json!(i64::MAX),
            401,
            "client_assertion exp is more than 10 minutes ahead",
        ),
        (
            json!(i64::MAX - 30),
            401,
            "client_assertion exp is more than 10 minutes ahead",
        ),
        (
            json!(u64::MAX),
            401,
            "client_assertion exp is more than 10 minutes ahead",
        ),
        (
            json!(1e300),
            401,
            "client_assertion exp is more than 10 minutes ahead",
        ),
        (json!(-1e300), 401, "client_assertion has expired"),
        (json!(i64::MIN), 401, "client_assertion has expired"),
    ];
    for (exp, status, description) in cases {
        let jwt = sign(exp.clone());
        let (st, body, _) = env
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "numbers-app"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &jwt),
                    ("scope", "api://orders/.default"),
                ],
            )
            .await;
        assert_eq!(st, status, "exp {exp}: {body}");
        if status != 200 {
            assert_eq!(body["error"], "invalid_client", "exp {exp}: {body}");
            assert_eq!(body["error_description"], description, "exp {exp}: {body}");
        }
    }
}
