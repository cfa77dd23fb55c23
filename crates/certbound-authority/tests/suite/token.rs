//! The token endpoint over real TLS on loopback: every client-authentication method,
//! every binding rule, discovery and JWKS.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::{JwsAlgorithm, KeyKind};
use common::*;
use serde_json::{Value, json};

const SCOPE: &str = "api://orders/.default";

#[tokio::test]
async fn discovery_and_jwks() {
    let env = start().await;
    let http = env.http(None);
    let r = &env.running;
    for url in [
        r.discovery_url(),
        format!("{}/.well-known/oauth-authorization-server", r.issuer()),
    ] {
        let d: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(d["issuer"], r.issuer());
        assert_eq!(d["token_endpoint"], r.token_endpoint());
        assert_eq!(d["jwks_uri"], r.jwks_uri());
        assert_eq!(
            d["mtls_endpoint_aliases"]["token_endpoint"],
            r.token_endpoint()
        );
        assert_eq!(d["tls_client_certificate_bound_access_tokens"], true);
        let methods = d["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        for m in [
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
            "self_signed_tls_client_auth",
            "tls_client_auth",
        ] {
            assert!(methods.contains(&json!(m)), "{m}");
        }
        assert_eq!(d["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(d["id_token_signing_alg_values_supported"], json!(["ES256"]));
        assert!(d["subject_types_supported"].is_array());
        assert!(d["response_types_supported"].is_array());
    }
    assert!(
        r.issuer()
            .starts_with(&format!("https://127.0.0.1:{}/", r.addr().port()))
    );
    assert!(r.issuer().ends_with(&format!("/{}/v2.0", r.tenant())));
    let jwks: Value = http
        .get(r.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], r.authority().kid());
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0].get("d").is_none(), "no private members in the JWKS");
    // Another tenant is not served.
    let s = http
        .get(r.discovery_url().replace(r.tenant(), "other-tenant"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 404);
}

#[tokio::test]
async fn client_secret_post_gives_unbound_bearer_with_all_claims() {
    let env = start().await;
    env.running
        .register(ClientRegistration::with_secret(
            "s-app",
            "correct-horse-battery",
        ))
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "s-app"),
        ("client_secret", "correct-horse-battery"),
        ("scope", SCOPE),
    ];
    let (st, body, headers) = env.token(None, &form).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(headers["cache-control"], "no-store");
    let t = body["access_token"].as_str().unwrap();
    let h = header(t);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["kid"], env.running.authority().kid());
    assert_eq!(h["alg"], "ES256");
    let c = claims(t);
    assert_eq!(c["iss"], env.running.issuer());
    assert_eq!(c["aud"], "api://orders");
    for k in ["sub", "client_id", "azp", "appid"] {
        assert_eq!(c[k], "s-app", "{k}");
    }
    assert_eq!(c["tid"], env.running.tenant());
    // An object id like Entra's service-principal `oid`: GUID-shaped, the same on every token.
    let oid = c["oid"].as_str().expect("oid");
    assert_eq!((oid.len(), oid.matches('-').count()), (36, 4), "{oid}");
    let (st2, body2, _) = env.token(None, &form).await;
    assert_eq!(st2, 200, "{body2}");
    assert_eq!(claims(body2["access_token"].as_str().unwrap())["oid"], oid);
    let (iat, nbf, exp) = (
        c["iat"].as_i64().unwrap(),
        c["nbf"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert!(nbf <= iat);
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(
        c.get("cnf").is_none(),
        "secret-authenticated tokens are unbound"
    );
}

#[tokio::test]
async fn client_secret_basic_with_form_encoded_credentials() {
    let env = start().await;
    let secret = "p@ss:word+with/odd=chars";
    env.running
        .register(ClientRegistration::with_secret("b:app", secret))
        .unwrap();
    // RFC 6749 §2.3.1: form-urlencode id and secret, then Basic.
    let enc = |s: &str| serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned();
    let resp = env
        .http(None)
        .post(env.running.token_endpoint())
        .basic_auth(enc("b:app"), Some(enc(secret)))
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "b:app"
    );
}

#[tokio::test]
async fn private_key_jwt_all_algorithms_and_key_hints() {
    let env = start().await;
    let ec = self_signed("ec-app", KeyKind::EcP256);
    let rsa = self_signed("rsa-app", KeyKind::Rsa2048);
    env.running
        .register(ClientRegistration::with_certificate(
            "ec-app",
            ec.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    env.running
        .register(ClientRegistration::with_certificate(
            "rsa-app",
            rsa.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    /// (client, credential, alg, (x5t#S256, x5t, x5c) headers, aud)
    type Case<'a> = (
        &'a str,
        &'a certbound_core::CertifiedKey,
        JwsAlgorithm,
        (bool, bool, bool),
        String,
    );
    let cases: Vec<Case> = vec![
        (
            "ec-app",
            &ec,
            JwsAlgorithm::ES256,
            (true, false, false),
            env.running.token_endpoint().into(),
        ),
        (
            "ec-app",
            &ec,
            JwsAlgorithm::ES256,
            (false, false, false),
            env.running.issuer().into(),
        ),
        (
            "rsa-app",
            &rsa,
            JwsAlgorithm::RS256,
            (false, true, false),
            env.running.token_endpoint().into(),
        ),
        (
            "rsa-app",
            &rsa,
            JwsAlgorithm::PS256,
            (false, false, true),
            env.running.token_endpoint().into(),
        ),
        (
            "rsa-app",
            &rsa,
            JwsAlgorithm::PS256,
            (true, true, true),
            env.running.issuer().into(),
        ),
    ];
    for (id, cred, alg, (s256, sha1, x5c), aud) in cases {
        let mut a = Assertion::new(id, &aud, alg);
        a.x5t_s256 = s256;
        a.x5t = sha1;
        a.x5c = x5c;
        let jwt = a.sign(cred);
        let (st, body, _) = env
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &jwt),
                    ("scope", SCOPE),
                ],
            )
            .await;
        assert_eq!(st, 200, "{id} {alg}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!(c["sub"], id);
        assert!(c.get("cnf").is_none(), "assertion without mTLS is unbound");
    }
    // aud may also be an array holding the token endpoint.
    let mut a = Assertion::new("ec-app", "", JwsAlgorithm::ES256);
    a.aud = json!(["https://elsewhere.example", env.running.token_endpoint()]);
    let jwt = a.sign(&ec);
    let (st, body, _) = env
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &jwt),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn self_signed_tls_client_auth_binding_rules() {
    let env = start().await;
    // Registered for its TLS certificate and private_key_jwt (both are used below).
    let app = env.register_self_signed_for(
        "tls-app",
        CertAuthMethod::SelfSignedTlsClientAuth,
        &[certbound_authority::AuthMethod::PrivateKeyJwt],
    );
    let x5t = app.thumbprint().to_base64url();

    // Entra mTLS PoP: token_type=mtls_pop → mtls_pop + cnf.
    let (st, body, _) = env
        .token(
            Some(&app),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "tls-app"),
                ("scope", SCOPE),
                ("token_type", "mtls_pop"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "mtls_pop");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        x5t
    );

    // RFC 8705: registered for bound tokens, authenticated by mTLS → Bearer + cnf.
    let (st, body, _) = env
        .token(
            Some(&app),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "tls-app"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        x5t
    );

    // Not registered for bound tokens → unbound Bearer; mtls_pop still binds.
    let other = self_signed("tls-unbound", KeyKind::Rsa2048);
    env.running
        .register(
            ClientRegistration::with_certificate(
                "tls-unbound",
                other.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            .bound_tokens(false),
        )
        .unwrap();
    let (st, body, _) = env
        .token(
            Some(&other),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "tls-unbound"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        claims(body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
    let (st, body, _) = env
        .token(
            Some(&other),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "tls-unbound"),
                ("scope", SCOPE),
                ("token_type", "mtls_pop"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "mtls_pop");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        other.thumbprint().to_base64url()
    );

    // A private_key_jwt assertion plus the same certificate on TLS, asking for mtls_pop → bound.
    let jwt =
        Assertion::new("tls-app", env.running.token_endpoint(), JwsAlgorithm::ES256).sign(&app);
    let (st, body, _) = env
        .token(
            Some(&app),
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &jwt),
                ("scope", SCOPE),
                ("token_type", "mtls_pop"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "mtls_pop");
    // …but without mtls_pop an assertion-authenticated request stays unbound.
    let jwt =
        Assertion::new("tls-app", env.running.token_endpoint(), JwsAlgorithm::ES256).sign(&app);
    let (st, body, _) = env
        .token(
            Some(&app),
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &jwt),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        claims(body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
}

#[tokio::test]
async fn tls_client_auth_accepts_ca_issued_certificates_with_the_registered_subject() {
    let env = start().await;
    let ca = env.running.authority().ca();
    let spec = certbound_core::ca::IssueSpec::client("ca-app");
    let first = ca.issue_certified_key(&spec, KeyKind::EcP256).unwrap();
    env.running
        .register(ClientRegistration::with_certificate(
            "ca-app",
            first.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap();
    // A renewed certificate (new key, same subject, same CA) authenticates too.
    let renewed = ca.issue_certified_key(&spec, KeyKind::Rsa2048).unwrap();
    for cred in [&first, &renewed] {
        let (st, body, _) = env
            .token(
                Some(cred),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "ca-app"),
                    ("scope", SCOPE),
                    ("token_type", "mtls_pop"),
                ],
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
            cred.thumbprint().to_base64url()
        );
    }
    // Same subject, self-signed: refused.
    let forged = self_signed("ca-app", KeyKind::EcP256);
    let (st, body, _) = env
        .token(
            Some(&forged),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "ca-app"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // Registering a self-signed certificate for tls_client_auth is refused with advice.
    let err = env
        .running
        .register(ClientRegistration::with_certificate(
            "x",
            forged.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cert new --ca-dir"), "{err}");
}

#[tokio::test]
async fn audiences_scopes_and_resource_parameter() {
    let env = start().await;
    env.running
        .register(
            ClientRegistration::with_secret("limited", "limited-secret").audience("api://orders"),
        )
        .unwrap();
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", "limited"),
        ("client_secret", "limited-secret"),
    ];
    let ask = |scope: &'static str| {
        let mut f = base.to_vec();
        f.push(("scope", scope));
        f
    };
    let (st, body, _) = env
        .token(None, &ask("api://orders/read api://orders/write"))
        .await;
    assert_eq!(st, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (c["aud"].as_str(), c["scp"].as_str()),
        (Some("api://orders"), Some("read write"))
    );
    // Plain scopes resolve to the client's only allowed audience.
    let (st, body, _) = env.token(None, &ask("read")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "api://orders"
    );
    // RFC 8707 resource.
    let mut f = base.to_vec();
    f.push(("resource", "api://orders"));
    let (st, body, _) = env.token(None, &f).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "api://orders"
    );
}

#[tokio::test]
async fn token_lifetime_and_signing_algorithm_are_configurable() {
    for alg in [JwsAlgorithm::RS256, JwsAlgorithm::PS256] {
        let env = start_with(certbound_authority::AuthorityOptions {
            signing_alg: alg,
            token_lifetime: std::time::Duration::from_secs(600),
            tenant: Some("contoso-dev".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(env.running.tenant(), "contoso-dev");
        env.running
            .register(ClientRegistration::with_secret("app", "app-secret-1"))
            .unwrap();
        let (st, body, _) = env
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "app"),
                    ("client_secret", "app-secret-1"),
                    ("scope", SCOPE),
                ],
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["expires_in"], 600);
        let t = body["access_token"].as_str().unwrap();
        assert_eq!(header(t)["alg"], alg.as_str());
        let c = claims(t);
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
        assert_eq!(c["tid"], "contoso-dev");
    }
}
