//! DPoP (RFC 9449) at the token endpoint, over real TLS: DPoP-bound tokens (`cnf.jkt`,
//! `token_type: "DPoP"`) on every endpoint alias, and the refusals (`invalid_dpop_proof`,
//! `use_dpop_nonce`, exclusive bindings).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_authority::{AuthorityOptions, CertAuthMethod, ClientRegistration};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::pop::ProofKey;
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, b64, now_unix};
use common::*;
use serde_json::{Value, json};

const SCOPE: &str = "api://orders/.default";
const SECRET: &str = "dpop-client-secret-0123456789";

/// A proof made by hand: `jwk` in the header is `jwk_of`'s public key, the signature is
/// `signer`'s.
fn hand_proof(signer: &PrivateKey, jwk_of: &PrivateKey, typ: &str, claims: &Value) -> String {
    let header = JwsHeader::new(signer.default_jws_algorithm())
        .typ(typ)
        .set("jwk", serde_json::to_value(jwk_of.public_jwk()).unwrap());
    sign_compact(&header, claims, signer).unwrap()
}

fn jti() -> String {
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b64::encode(b)
}

/// The response is a refusal that echoes nothing secret and issues no token.
fn assert_refused(r: &Reply, status: u16, error: &str, secrets: &[&str]) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), error, "{}", r.text);
    assert!(r.body.get("access_token").is_none());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for s in secrets {
        assert!(
            !r.text.contains(s),
            "the response echoes a secret: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn discovery_advertises_dpop() {
    let env = start().await;
    let disco: Value = env
        .http(None)
        .get(env.running.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        disco["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "RS256", "PS256"])
    );
    assert_eq!(
        disco["token_types_supported"],
        json!(["Bearer", "mtls_pop", "pop", "DPoP"])
    );
}

#[tokio::test]
async fn dpop_binds_the_key_whatever_the_client_authentication() {
    let env = start().await;
    // Registered for both: the TLS certificate and private_key_jwt.
    let cert = env.register_self_signed_for(
        "dpop-tls-app",
        CertAuthMethod::SelfSignedTlsClientAuth,
        &[certbound_authority::AuthMethod::PrivateKeyJwt],
    );
    let key = ProofKey::generate().unwrap();
    let url = env.running.token_endpoint().to_owned();

    // TLS client certificate: the token is bound to the DPoP key, not the certificate.
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let r = env
        .post(
            &url,
            Some(&cert),
            &[("DPoP", &proof)],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "dpop-tls-app"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "DPoP");
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["cnf"], json!({ "jkt": key.thumbprint() }));
    assert_eq!(c["azpacr"], "2");

    // private_key_jwt with the same certificate's key.
    let assertion = Assertion::new("dpop-tls-app", &url, JwsAlgorithm::ES256).sign(&cert);
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let r = env
        .post(
            &url,
            None,
            &[("DPoP", &proof)],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "dpop-tls-app"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "DPoP");
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["cnf"], json!({ "jkt": key.thumbprint() }));

    // A valid proof does not stand in for client authentication.
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let r = env
        .post(
            &url,
            None,
            &[("DPoP", &proof)],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "dpop-tls-app"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_refused(&r, 401, "invalid_client", &[&proof]);

    // Without a DPoP header, the same client still gets its certificate-bound Bearer.
    let r = env
        .post(
            &url,
            Some(&cert),
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "dpop-tls-app"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(
        c["cnf"],
        json!({ "x5t#S256": cert.thumbprint().to_base64url() })
    );
}

#[tokio::test]
async fn replayed_proof_is_refused() {
    let env = start().await;
    register_secret_client(&env, SECRET);
    let key = ProofKey::generate().unwrap();
    let url = env.running.token_endpoint().to_owned();
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let first = env
        .post(&url, None, &[("DPoP", &proof)], &secret_form(SECRET, SCOPE))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = env
        .post(&url, None, &[("DPoP", &proof)], &secret_form(SECRET, SCOPE))
        .await;
    assert_refused(&again, 400, "invalid_dpop_proof", &[&proof, SECRET]);
    assert!(again.description().contains("replayed"), "{}", again.text);
    // Nor does it pass on another alias (it names the first URL).
    let other = env.localhost_token_endpoint();
    let r = env
        .post(
            &other,
            None,
            &[("DPoP", &proof)],
            &secret_form(SECRET, SCOPE),
        )
        .await;
    assert_refused(&r, 400, "invalid_dpop_proof", &[&proof, SECRET]);
    assert!(r.description().contains("another URL"), "{}", r.text);
}

#[tokio::test]
async fn hostile_proofs_get_invalid_dpop_proof() {
    let env = start().await;
    register_secret_client(&env, SECRET);
    let url = env.running.token_endpoint().to_owned();
    let key = ProofKey::generate().unwrap();
    let a = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let b = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let now = now_unix();
    let claims_for = |htu: &str| json!({ "jti": jti(), "htm": "POST", "htu": htu, "iat": now });
    let mut no_jti = claims_for(&url);
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut no_iat = claims_for(&url);
    no_iat.as_object_mut().unwrap().remove("iat");
    let mut no_htu = claims_for(&url);
    no_htu.as_object_mut().unwrap().remove("htu");
    let other_path = url.replace("/oauth2/v2.0/token", "/oauth2/v2.0/other");
    let other_port = url.replacen(
        &format!(":{}/", env.running.addr().port()),
        &format!(":{}/", env.running.addr().port().wrapping_add(1).max(1)),
        1,
    );
    assert_ne!(other_port, url);
    let tampered = {
        let p = key.dpop_proof("POST", &url, None, None).unwrap();
        let mut parts: Vec<String> = p.split('.').map(str::to_owned).collect();
        let mut c: Value = serde_json::from_slice(&b64::decode(&parts[1]).unwrap()).unwrap();
        c["htu"] = json!(other_path);
        parts[1] = b64::encode(c.to_string());
        parts.join(".")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong htm",
            key.dpop_proof("GET", &url, None, None).unwrap(),
            "htm must be POST",
        ),
        (
            "wrong htu (path)",
            key.dpop_proof("POST", &other_path, None, None).unwrap(),
            "another URL",
        ),
        (
            "wrong htu (port)",
            key.dpop_proof("POST", &other_port, None, None).unwrap(),
            "another URL",
        ),
        (
            "wrong htu (scheme)",
            key.dpop_proof("POST", &url.replace("https://", "http://"), None, None)
                .unwrap(),
            "another URL",
        ),
        (
            "stale iat",
            key.dpop_proof_at("POST", &url, None, None, now - 300)
                .unwrap(),
            "too old",
        ),
        (
            "iat in the future",
            key.dpop_proof_at("POST", &url, None, None, now + 300)
                .unwrap(),
            "in the future",
        ),
        (
            "signed by another key than its jwk",
            hand_proof(&b, &a, "dpop+jwt", &claims_for(&url)),
            "signature invalid",
        ),
        (
            "payload changed after signing",
            tampered,
            "signature invalid",
        ),
        (
            "missing jti",
            hand_proof(&a, &a, "dpop+jwt", &no_jti),
            "jti",
        ),
        (
            "missing iat",
            hand_proof(&a, &a, "dpop+jwt", &no_iat),
            "iat",
        ),
        (
            "missing htu",
            hand_proof(&a, &a, "dpop+jwt", &no_htu),
            "htu",
        ),
        (
            "wrong typ",
            hand_proof(&a, &a, "JWT", &claims_for(&url)),
            "dpop+jwt",
        ),
        ("not a JWS", "not-a-proof".to_owned(), "compact JWS"),
    ];
    for (what, proof, why) in cases {
        let r = env
            .post(&url, None, &[("DPoP", &proof)], &secret_form(SECRET, SCOPE))
            .await;
        assert_refused(&r, 400, "invalid_dpop_proof", &[&proof, SECRET]);
        assert!(
            r.description().contains(why),
            "{what}: expected `{why}` in {}",
            r.text
        );
    }

    // Two DPoP headers, each a valid proof.
    let p1 = key.dpop_proof("POST", &url, None, None).unwrap();
    let p2 = key.dpop_proof("POST", &url, None, None).unwrap();
    let r = env
        .post(
            &url,
            None,
            &[("DPoP", &p1), ("DPoP", &p2)],
            &secret_form(SECRET, SCOPE),
        )
        .await;
    assert_refused(&r, 400, "invalid_dpop_proof", &[&p1, &p2, SECRET]);
    assert!(r.description().contains("more than one"), "{}", r.text);
    // Refused proofs were not recorded: p1 alone still works.
    let r = env
        .post(&url, None, &[("DPoP", &p1)], &secret_form(SECRET, SCOPE))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // An empty DPoP header is a (missing) proof, not a plain token request.
    let r = env
        .post(&url, None, &[("DPoP", "")], &secret_form(SECRET, SCOPE))
        .await;
    assert_refused(&r, 400, "invalid_dpop_proof", &[SECRET]);
}

#[tokio::test]
async fn dpop_and_other_bindings_are_exclusive() {
    let env = start().await;
    let cert = env.register_self_signed("excl-app", KeyKind::EcP256);
    let key = ProofKey::generate().unwrap();
    let url = env.running.token_endpoint().to_owned();
    let req_cnf = key.req_cnf();
    for (token_type, extra) in [("mtls_pop", None), ("pop", Some(req_cnf.as_str()))] {
        let proof = key.dpop_proof("POST", &url, None, None).unwrap();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", "excl-app"),
            ("scope", SCOPE),
            ("token_type", token_type),
        ];
        if let Some(c) = extra {
            form.push(("req_cnf", c));
        }
        let r = env
            .post(&url, Some(&cert), &[("DPoP", &proof)], &form)
            .await;
        assert_refused(&r, 400, "invalid_request", &[&proof]);
        assert!(r.description().contains("exclusive"), "{}", r.text);
        assert!(r.description().contains(token_type), "{}", r.text);
        // The proof was not consumed: the same request without token_type succeeds.
        form.retain(|(k, _)| *k != "token_type" && *k != "req_cnf");
        let r = env
            .post(&url, Some(&cert), &[("DPoP", &proof)], &form)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["token_type"], "DPoP");
    }
}

#[tokio::test]
async fn nonce_demanded_then_accepted_and_stale_nonces_refused() {
    let env = start_with(AuthorityOptions {
        dpop_nonce: true,
        ..Default::default()
    })
    .await;
    let cert = self_signed("nonce-app", KeyKind::EcP256);
    env.running
        .register(ClientRegistration::with_certificate(
            "nonce-app",
            cert.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        ))
        .unwrap();
    let url = env.running.token_endpoint().to_owned();
    let key = ProofKey::generate().unwrap();
    let assertion = Assertion::new("nonce-app", &url, JwsAlgorithm::ES256).sign(&cert);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "nonce-app"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
        ("scope", SCOPE),
    ];

    // No nonce: use_dpop_nonce with the nonce to use.
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let r = env.post(&url, None, &[("DPoP", &proof)], &form).await;
    assert_refused(&r, 400, "use_dpop_nonce", &[&proof, &assertion]);
    let nonce = r
        .header("dpop-nonce")
        .expect("DPoP-Nonce header")
        .to_owned();
    assert!(!nonce.is_empty());
    assert_eq!(env.running.dpop_nonce().as_deref(), Some(nonce.as_str()));

    // A made-up nonce: the same answer.
    let proof = key.dpop_proof("POST", &url, None, Some("made-up")).unwrap();
    let r = env.post(&url, None, &[("DPoP", &proof)], &form).await;
    assert_refused(&r, 400, "use_dpop_nonce", &[&proof, &assertion]);
    assert_eq!(r.header("dpop-nonce"), Some(nonce.as_str()));

    // Retry with the nonce — and the same client assertion, which the nonce round trips
    // did not consume.
    let proof = key.dpop_proof("POST", &url, None, Some(&nonce)).unwrap();
    let r = env.post(&url, None, &[("DPoP", &proof)], &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "DPoP");
    assert!(r.header("dpop-nonce").is_some(), "a nonce for next time");
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["cnf"], json!({ "jkt": key.thumbprint() }));

    // Token requests without DPoP do not need a nonce.
    let assertion2 = Assertion::new("nonce-app", &url, JwsAlgorithm::ES256).sign(&cert);
    let mut plain = form;
    plain[3].1 = assertion2.as_str();
    let r = env.post(&url, None, &[], &plain).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");

    // After a restart the old nonce is stale: use_dpop_nonce again, with a new nonce.
    let dir = env.running.authority().dir().to_path_buf();
    let Env { dir: keep, running } = env;
    running.shutdown().await;
    let authority = certbound_authority::DevAuthority::open_or_init(
        &dir,
        AuthorityOptions {
            dpop_nonce: true,
            ..Default::default()
        },
    )
    .unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = Env { dir: keep, running };
    let url = env.running.token_endpoint().to_owned();
    let assertion3 = Assertion::new("nonce-app", &url, JwsAlgorithm::ES256).sign(&cert);
    let mut form3 = form;
    form3[3].1 = assertion3.as_str();
    let proof = key.dpop_proof("POST", &url, None, Some(&nonce)).unwrap();
    let r = env.post(&url, None, &[("DPoP", &proof)], &form3).await;
    assert_refused(&r, 400, "use_dpop_nonce", &[&proof, &assertion3]);
    let fresh = r.header("dpop-nonce").unwrap().to_owned();
    assert_ne!(fresh, nonce);
    let proof = key.dpop_proof("POST", &url, None, Some(&fresh)).unwrap();
    let r = env.post(&url, None, &[("DPoP", &proof)], &form3).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn in_process_dpop_tokens() {
    let env = start().await;
    let key = ProofKey::generate().unwrap();
    let t = env
        .running
        .issue_dpop_token("svc", "api://orders/.default", &key.thumbprint())
        .unwrap();
    let c = claims(t.access_token());
    assert_eq!(c["cnf"], json!({ "jkt": key.thumbprint() }));
    assert_eq!(c["aud"], "api://orders");
    assert!(t.cnf.is_none());
    assert!(!format!("{t:?}").contains(t.access_token()));
    let e = env
        .running
        .issue_dpop_token("svc", "api://orders/.default", "not-a-thumbprint")
        .unwrap_err();
    assert_eq!(e.code, certbound_authority::ErrorCode::InvalidRequest);
    // A certificate and a key binding together are refused.
    let mut both = certbound_authority::IssueRequest::new("svc", "api://orders/.default")
        .dpop_bound(key.thumbprint());
    both.cnf = Some(self_signed("x", KeyKind::EcP256).thumbprint());
    let e = env.running.issue_token(&both).unwrap_err();
    assert!(e.description.contains("not both"), "{e}");
    assert!(env.running.dpop_nonce().is_none());
}

/// docs/resource-server.md (proof origin) at the token endpoint: the proof must name this authority's own token
/// endpoint URL, whatever `Host` the request claims. A proof for `attacker.example` sent
/// with `Host: attacker.example` (over HTTP/1.1, so the Host is exactly that) is refused.
#[tokio::test]
async fn proof_for_another_host_is_refused_whatever_the_host_header() {
    let env = start().await;
    register_secret_client(&env, SECRET);
    let url = env.running.token_endpoint().to_owned();
    let path = certbound_core::pop::HttpTarget::parse(&url).unwrap().path;
    let evil = format!("https://attacker.example{path}");
    let mut cfg = certbound_core::tls::client_config(&env.anchors(), None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .http1_only()
        .build()
        .unwrap();
    let key = ProofKey::generate().unwrap();
    let send = |proof: String, host: Option<&'static str>| {
        let mut req = http
            .post(&url)
            .header("DPoP", proof)
            .form(&secret_form(SECRET, SCOPE));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    for host in [Some("attacker.example"), None] {
        let proof = key.dpop_proof("POST", &evil, None, None).unwrap();
        let (status, body) = send(proof, host).await;
        assert_eq!(status, 400, "{host:?}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(&url), "{description}");
        assert!(!description.contains("attacker"), "{description}");
        assert!(body.get("access_token").is_none());
    }
    // An unknown Host does not change what the proof must name: this authority's URL.
    let proof = key.dpop_proof("POST", &url, None, None).unwrap();
    let (status, body) = send(proof, Some("attacker.example")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

/// The token endpoint's DPoP checks (for the authority): accepted, replay, method/URL, ath
/// not needed, nonce flow, malformed headers.
mod token_endpoint_checks {
    use std::time::Duration;

    use certbound_authority::{TokenEndpointDpop, TokenEndpointDpopError};
    use certbound_core::pop::{DpopError, DpopNonces};
    use certbound_core::pop::{PopError, ProofKey};
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
        let ep = TokenEndpointDpop::new("HTTPS://LOGIN.example:443/tenant/oauth2/v2.0/token?x=1")
            .unwrap();
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
}
