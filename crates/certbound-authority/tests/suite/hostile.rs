//! Malformed and hostile token requests, each with its RFC 6749 §5.2 error, over real
//! TLS; the server keeps serving afterwards and never echoes a secret.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::Write as _;

use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::{JwsAlgorithm, KeyKind};
use common::*;
use serde_json::{Value, json};

const SCOPE: &str = "api://orders/.default";
const SECRET: &str = "s3cret-Value-that-must-not-leak";

struct Case {
    name: &'static str,
    status: u16,
    error: &'static str,
    resp: (u16, Value, reqwest::header::HeaderMap),
}

#[tokio::test]
async fn hostile_requests_get_the_right_errors() {
    let env = start().await;
    let r = &env.running;
    let app = self_signed("pkj-app", KeyKind::EcP256);
    let other = self_signed("other-app", KeyKind::EcP256);
    let stranger = self_signed("stranger", KeyKind::EcP256);
    // Registered for its TLS certificate and for private_key_jwt.
    r.register(
        ClientRegistration::with_certificate(
            "pkj-app",
            app.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        )
        .auth_method(certbound_authority::AuthMethod::PrivateKeyJwt),
    )
    .unwrap();
    r.register(ClientRegistration::with_certificate(
        "other-app",
        other.leaf().clone(),
        CertAuthMethod::SelfSignedTlsClientAuth,
    ))
    .unwrap();
    r.register(ClientRegistration::with_secret("secret-app", SECRET))
        .unwrap();
    r.register(ClientRegistration::with_secret("limited-app", SECRET).audience("api://orders"))
        .unwrap();
    let te = r.token_endpoint().to_owned();
    let gc = ("grant_type", "client_credentials");
    let sc = ("scope", SCOPE);
    let assertion = |f: &dyn Fn(&mut Assertion)| {
        let mut a = Assertion::new("pkj-app", &te, JwsAlgorithm::ES256);
        f(&mut a);
        a.sign(&app)
    };
    let http = env.http(None);
    let raw = |body: Vec<u8>, ctype: &'static str| {
        let http = http.clone();
        let te = te.clone();
        async move {
            let resp = http
                .post(&te)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let st = resp.status().as_u16();
            let h = resp.headers().clone();
            let text = resp.text().await.unwrap();
            (
                st,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
                h,
            )
        }
    };
    let form = "application/x-www-form-urlencoded";

    let mut cases = Vec::new();
    macro_rules! case {
        ($name:expr, $status:expr, $err:expr, $resp:expr) => {
            cases.push(Case {
                name: $name,
                status: $status,
                error: $err,
                resp: $resp,
            });
        };
    }
    case!(
        "wrong grant type",
        400,
        "unsupported_grant_type",
        env.token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                sc
            ]
        )
        .await
    );
    case!(
        "missing grant type",
        400,
        "invalid_request",
        env.token(
            None,
            &[("client_id", "secret-app"), ("client_secret", SECRET), sc]
        )
        .await
    );
    case!(
        "missing client_id",
        400,
        "invalid_request",
        env.token(Some(&app), &[gc, sc]).await
    );
    case!(
        "client_secret without client_id",
        400,
        "invalid_request",
        env.token(None, &[gc, ("client_secret", SECRET), sc]).await
    );
    case!(
        "bad secret (post)",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", "wrong-secret-123"),
                sc
            ]
        )
        .await
    );
    let basic_bad = http
        .post(&te)
        .basic_auth("secret-app", Some("wrong-secret-123"))
        .form(&[gc, sc])
        .send()
        .await
        .unwrap();
    let (st, h) = (basic_bad.status().as_u16(), basic_bad.headers().clone());
    let body: Value = basic_bad.json().await.unwrap();
    assert!(
        h.get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Basic")),
        "Basic challenge"
    );
    case!("bad secret (basic)", 401, "invalid_client", (st, body, h));
    let both = http
        .post(&te)
        .basic_auth("secret-app", Some(SECRET))
        .form(&[
            gc,
            ("client_id", "secret-app"),
            ("client_secret", SECRET),
            sc,
        ])
        .send()
        .await
        .unwrap();
    let (st, h) = (both.status().as_u16(), both.headers().clone());
    case!(
        "basic and post together",
        400,
        "invalid_request",
        (st, both.json().await.unwrap(), h)
    );
    let garbage_basic = http
        .post(&te)
        .header("authorization", "Basic %%%not-base64")
        .form(&[gc, sc])
        .send()
        .await
        .unwrap();
    let (st, h) = (
        garbage_basic.status().as_u16(),
        garbage_basic.headers().clone(),
    );
    case!(
        "malformed Basic header",
        401,
        "invalid_client",
        (st, garbage_basic.json().await.unwrap(), h)
    );
    case!(
        "unknown client",
        401,
        "invalid_client",
        env.token(
            None,
            &[gc, ("client_id", "nobody"), ("client_secret", SECRET), sc]
        )
        .await
    );
    let mut big =
        format!("grant_type=client_credentials&client_id=secret-app&client_secret={SECRET}&pad=")
            .into_bytes();
    big.resize(70 * 1024, b'a');
    case!(
        "oversized body",
        413,
        "invalid_request",
        raw(big, form).await
    );
    case!(
        "bad percent-encoding / not UTF-8",
        400,
        "invalid_request",
        raw(
            b"grant_type=client_credentials&client_id=%ff%fe&scope=%zz".to_vec(),
            form
        )
        .await
    );
    case!(
        "JSON instead of a form",
        400,
        "invalid_request",
        raw(
            json!({"grant_type":"client_credentials"})
                .to_string()
                .into_bytes(),
            "application/json"
        )
        .await
    );
    case!(
        "repeated parameter",
        400,
        "invalid_request",
        env.token(
            None,
            &[
                gc,
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                sc
            ]
        )
        .await
    );
    case!(
        "wrong client_assertion_type",
        400,
        "invalid_request",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", "urn:example:saml"),
                ("client_assertion", &assertion(&|_| {})),
                sc
            ]
        )
        .await
    );
    case!(
        "garbage assertion",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_id", "pkj-app"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", "a.b.c"),
                sc
            ]
        )
        .await
    );
    case!(
        "expired assertion",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion(&|a| a.exp_in = -600)),
                sc
            ]
        )
        .await
    );
    case!(
        "assertion exp too far ahead",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion(&|a| a.exp_in = 3600)),
                sc
            ]
        )
        .await
    );
    case!(
        "wrong-aud assertion",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                (
                    "client_assertion",
                    &assertion(&|a| a.aud = json!("https://login.example/token"))
                ),
                sc
            ]
        )
        .await
    );
    let once = assertion(&|_| {});
    let (st, body, _) = env
        .token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &once),
                sc,
            ],
        )
        .await;
    assert_eq!(st, 200, "first use of the assertion: {body}");
    case!(
        "replayed assertion",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &once),
                sc
            ]
        )
        .await
    );
    // Signed by another key while naming the registered certificate.
    let mut forged = Assertion::new("pkj-app", &te, JwsAlgorithm::ES256);
    forged.x5t_s256 = false;
    let mut forged_jwt = forged.sign(&stranger);
    case!(
        "assertion signed by an unregistered key",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &forged_jwt),
                sc
            ]
        )
        .await
    );
    // alg=none: header {"alg":"none"}, payload of a valid assertion, no signature.
    let valid = assertion(&|_| {});
    let payload = valid.split('.').nth(1).unwrap();
    forged_jwt = format!(
        "{}.{payload}.",
        certbound_core::b64::encode(br#"{"alg":"none"}"#)
    );
    case!(
        "alg none assertion",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &forged_jwt),
                sc
            ]
        )
        .await
    );
    case!(
        "unregistered TLS certificate",
        401,
        "invalid_client",
        env.token(Some(&stranger), &[gc, ("client_id", "pkj-app"), sc])
            .await
    );
    case!(
        "mtls_pop without a certificate",
        401,
        "invalid_client",
        env.token(
            None,
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                sc,
                ("token_type", "mtls_pop")
            ]
        )
        .await
    );
    case!(
        "certificate of another client",
        401,
        "invalid_client",
        env.token(
            Some(&other),
            &[gc, ("client_id", "pkj-app"), sc, ("token_type", "mtls_pop")]
        )
        .await
    );
    case!(
        "mtls_pop with a certificate that does not authenticate the secret client",
        401,
        "invalid_client",
        env.token(
            Some(&app),
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                sc,
                ("token_type", "mtls_pop")
            ]
        )
        .await
    );
    case!(
        "scope without resource",
        400,
        "invalid_scope",
        env.token(
            None,
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                ("scope", "/.default")
            ]
        )
        .await
    );
    case!(
        "missing scope",
        400,
        "invalid_scope",
        env.token(
            None,
            &[gc, ("client_id", "secret-app"), ("client_secret", SECRET)]
        )
        .await
    );
    case!(
        "scopes of two resources",
        400,
        "invalid_scope",
        env.token(
            None,
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                ("scope", "api://a/.default api://b/.default")
            ]
        )
        .await
    );
    case!(
        "disallowed audience",
        400,
        "invalid_scope",
        env.token(
            None,
            &[
                gc,
                ("client_id", "limited-app"),
                ("client_secret", SECRET),
                ("scope", "api://payroll/.default")
            ]
        )
        .await
    );
    case!(
        "secret sent by a certificate client",
        401,
        "invalid_client",
        env.token(
            None,
            &[gc, ("client_id", "pkj-app"), ("client_secret", SECRET), sc]
        )
        .await
    );

    assert!(cases.len() >= 15);
    for c in &cases {
        let (st, body, headers) = &c.resp;
        assert_eq!(*st, c.status, "{}: {body}", c.name);
        assert_eq!(body["error"], c.error, "{}: {body}", c.name);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}",
            c.name
        );
        let text = body.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("wrong-secret-123"),
            "{}: secret echoed",
            c.name
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{}",
            c.name
        );
    }

    // GET on the token endpoint is not a token request.
    assert_eq!(http.get(&te).send().await.unwrap().status(), 405);

    // Raw garbage on the TLS port (not even a handshake) does not take the server down.
    {
        let mut s = std::net::TcpStream::connect(r.addr()).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\xff\x16\x03garbage");
    }
    // Still serving.
    let (st, body, _) = env
        .token(
            None,
            &[
                gc,
                ("client_id", "secret-app"),
                ("client_secret", SECRET),
                sc,
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
}
