//! A bound token checked independently: its `cnf` thumbprint against the `openssl`
//! binary's, and its signature against the keys published at `jwks_uri`.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use certbound_authority::{AuthorityOptions, CertAuthMethod, ClientRegistration};
use certbound_core::{JwsAlgorithm, KeyKind};
use common::*;
use serde_json::Value;

fn openssl_x5t_s256(pem: &str) -> Option<String> {
    let der = run("openssl", &["x509", "-outform", "der"], pem.as_bytes())?;
    let digest = run("openssl", &["dgst", "-sha256", "-binary"], &der)?;
    assert_eq!(digest.len(), 32);
    let b64 = run("openssl", &["base64", "-A"], &digest)?;
    let text = String::from_utf8(b64).ok()?;
    Some(
        text.trim()
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_owned(),
    )
}

fn run(cmd: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input).ok()?;
    let out = child.wait_with_output().ok()?;
    assert!(out.status.success(), "{cmd} {args:?} failed");
    Some(out.stdout)
}

#[tokio::test]
async fn cnf_matches_openssl_and_signature_verifies_with_jwks() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: the openssl binary is not installed");
        return;
    }
    for (alg, kind) in [
        (JwsAlgorithm::ES256, KeyKind::EcP256),
        (JwsAlgorithm::RS256, KeyKind::Rsa2048),
        (JwsAlgorithm::PS256, KeyKind::EcP384),
    ] {
        let env = start_with(AuthorityOptions {
            signing_alg: alg,
            ..Default::default()
        })
        .await;
        let app = self_signed("verify-app", kind);
        env.running
            .register(ClientRegistration::with_certificate(
                "verify-app",
                app.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            ))
            .unwrap();
        let (st, body, _) = env
            .token(
                Some(&app),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "verify-app"),
                    ("scope", "api://orders/.default"),
                    ("token_type", "mtls_pop"),
                ],
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let token = body["access_token"].as_str().unwrap();

        // 1. The binding, computed by openssl from the PEM we presented.
        let expected = openssl_x5t_s256(&app.leaf().to_pem()).unwrap();
        assert_eq!(claims(token)["cnf"]["x5t#S256"], expected.as_str());

        // 2. The signature, with the key from jwks_uri (fetched over TLS).
        let jwks: jsonwebtoken::jwk::JwkSet = env
            .http(None)
            .get(env.running.jwks_uri())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kid = header(token)["kid"].as_str().unwrap().to_owned();
        let jwk = jwks.find(&kid).expect("token kid is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let jalg = match alg {
            JwsAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            JwsAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            _ => jsonwebtoken::Algorithm::PS256,
        };
        let mut v = jsonwebtoken::Validation::new(jalg);
        v.set_audience(&["api://orders"]);
        v.set_issuer(&[env.running.issuer()]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap();
        assert_eq!(data.claims["client_id"], "verify-app");
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));

        // A token altered by one byte does not verify.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged_claims = serde_json::json!({"aud": "api://orders", "iss": env.running.issuer(), "exp": i64::MAX / 2, "client_id": "evil"});
        parts[1] = certbound_core::b64::encode(forged_claims.to_string());
        assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &v).is_err());
    }
}
