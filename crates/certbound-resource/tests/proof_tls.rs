//! DPoP (RFC 9449) and PoP (signed HTTP request) over real TLS against the layer, with tokens
//! minted here (`cnf.jkt` / `cnf.kid`) and a static JWKS served by the test issuer: accepted,
//! and every hostile case refused with the right RFC 9449 / RFC 6750 challenge.
#![allow(clippy::string_slice)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use certbound_core::pop::ProofKey;
use certbound_core::{Jwks, KeyKind, PrivateKey, b64, jose};
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

async fn validator(
    w: &Pki,
    issuer: &TestIssuer,
    f: impl FnOnce(certbound_resource::ValidatorBuilder) -> certbound_resource::ValidatorBuilder,
) -> Validator {
    f(Validator::builder()
        .issuer(issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(w.anchors.clone()))
    .build()
    .await
    .unwrap()
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
    let v = validator(&pki, &issuer, |b| b).await;
    let api = serve_api(&pki, v).await;
    World {
        pki,
        issuer,
        signer,
        api,
    }
}

impl World {
    /// An access token carrying `cnf` (or none).
    fn token(&self, cnf: Option<Value>) -> String {
        let mut c = claims(&self.issuer.issuer, None);
        if let Some(cnf) = cnf {
            c.insert("cnf".into(), cnf);
        }
        let h = jose::JwsHeader::new(self.signer.default_jws_algorithm())
            .kid("k1")
            .typ("at+jwt");
        jose::sign_compact(&h, &c, &self.signer).unwrap()
    }
    fn dpop_token(&self, key: &ProofKey) -> String {
        self.token(Some(json!({"jkt": key.thumbprint()})))
    }
    fn pop_token(&self, key: &ProofKey) -> String {
        self.token(Some(json!({"kid": key.thumbprint()})))
    }
    fn url(&self, api: SocketAddr) -> String {
        format!("https://127.0.0.1:{}/whoami", api.port())
    }
}

struct Reply {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: String,
}

async fn send(
    w: &World,
    api: SocketAddr,
    method: http::Method,
    authorization: &str,
    dpop: &[&str],
) -> Reply {
    let mut req = w
        .pki
        .http(None)
        .request(method, w.url(api))
        .header(header::AUTHORIZATION, authorization);
    for p in dpop {
        req = req.header("DPoP", *p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenges = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = resp
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    Reply {
        status,
        challenges,
        nonce,
        body,
    }
}

fn dpop_refused(r: &Reply, error: &str, description: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.challenges,
        vec![format!(
            r#"DPoP error="{error}", error_description="{description}", {ALGS}"#
        )]
    );
}

/// Re-signs a proof's header and payload with `key` (the embedded jwk unchanged).
fn forge(proof: &str, key: &PrivateKey, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let (mut h, mut p) = jose::decode_unverified(proof).unwrap();
    edit(&mut h, &mut p);
    let input = format!(
        "{}.{}",
        b64::encode(h.to_string()),
        b64::encode(p.to_string())
    );
    let sig = key
        .sign(key.default_jws_algorithm(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64::encode(sig))
}

#[tokio::test]
async fn dpop_accepted_over_tls() {
    let w = world().await;
    for kind in [KeyKind::EcP256, KeyKind::EcP384, KeyKind::Rsa2048] {
        let key = ProofKey::generate_kind(kind).unwrap();
        let token = w.dpop_token(&key);
        let proof = key
            .dpop_proof("GET", &w.url(w.api), Some(&token), None)
            .unwrap();
        let r = send(
            &w,
            w.api,
            http::Method::GET,
            &format!("DPoP {token}"),
            &[&proof],
        )
        .await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["scheme"], "DPoP");
        assert_eq!(v["bound"], true);
        assert_eq!(v["cnf"]["jkt"], key.thumbprint());
        assert!(r.nonce.is_none(), "no nonce unless required");
        // A fresh proof for the next request is accepted too (scheme case-insensitive).
        let proof = key
            .dpop_proof("GET", &w.url(w.api), Some(&token), None)
            .unwrap();
        let r = send(
            &w,
            w.api,
            http::Method::GET,
            &format!("dpop {token}"),
            &[&proof],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[tokio::test]
async fn dpop_hostile_cases_over_tls() {
    let w = world().await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let url = w.url(w.api);
    let auth = format!("DPoP {token}");
    let get = http::Method::GET;
    let now = certbound_core::now_unix();

    // Wrong key: the proof embeds the bound key but is signed by another one.
    let attacker = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let good = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let forged = forge(&good, &attacker, |_, p| p["jti"] = json!("forged"));
    let r = send(&w, w.api, get.clone(), &auth, &[&forged]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof signature invalid");

    // jkt mismatch: a valid proof by another key.
    let other = ProofKey::generate().unwrap();
    let p = other.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "DPoP proof key does not match the token's cnf.jkt",
    );

    // Replayed proof.
    let p = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    assert_eq!(send(&w, w.api, get.clone(), &auth, &[&p]).await.status, 200);
    let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "DPoP proof replayed (jti already used)",
    );

    // Proof for another method, another URL, another port.
    let p = key.dpop_proof("POST", &url, Some(&token), None).unwrap();
    let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another HTTP method");
    for other_url in [
        url.replace("/whoami", "/other"),
        url.replace("127.0.0.1", "localhost"),
        format!("https://127.0.0.1:{}/whoami", w.api.port() + 1),
        url.replace("https", "http"),
    ] {
        let p = key
            .dpop_proof("GET", &other_url, Some(&token), None)
            .unwrap();
        let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
        dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    }
    // Query and fragment are not part of htu: a proof for the URL with a query is fine.
    let p = key
        .dpop_proof("GET", &format!("{url}?a=b#frag"), Some(&token), None)
        .unwrap();
    assert_eq!(send(&w, w.api, get.clone(), &auth, &[&p]).await.status, 200);

    // Stale and future iat.
    for iat in [now - 300, now + 300] {
        let p = key
            .dpop_proof_at("GET", &url, Some(&token), None, iat)
            .unwrap();
        let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
        dpop_refused(
            &r,
            "invalid_dpop_proof",
            "proof is too old or issued in the future",
        );
    }

    // Missing ath; ath of another token.
    let p = key.dpop_proof("GET", &url, None, None).unwrap();
    let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "proof has no ath (access token hash)",
    );
    let another = w.dpop_token(&key);
    let p = key.dpop_proof("GET", &url, Some(&another), None).unwrap();
    let r = send(&w, w.api, get.clone(), &auth, &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "proof ath does not match the access token",
    );

    // No proof; two proofs.
    let r = send(&w, w.api, get.clone(), &auth, &[]).await;
    dpop_refused(&r, "invalid_dpop_proof", "DPoP proof header missing");
    let p1 = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let p2 = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let r = send(&w, w.api, get.clone(), &auth, &[&p1, &p2]).await;
    dpop_refused(&r, "invalid_dpop_proof", "more than one DPoP proof header");

    // A proof-shaped JWT of another typ, and a proof carrying the private key.
    let p = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let wrong_typ = forge(&p, &attacker, |h, _| {
        h["typ"] = json!("jwt");
        h["jwk"] = serde_json::to_value(attacker.public_jwk()).unwrap();
    });
    let r = send(&w, w.api, get.clone(), &auth, &[&wrong_typ]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "proof type (typ) must be dpop+jwt",
    );
    let private = forge(&p, &attacker, |h, _| {
        h["jwk"] = serde_json::to_value(attacker.public_jwk()).unwrap();
        h["jwk"]["d"] = json!("AAAA");
    });
    let r = send(&w, w.api, get.clone(), &auth, &[&private]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "proof key (jwk) contains private key material",
    );

    // A DPoP-bound token sent as Bearer (with or without the proof).
    let p = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    for proofs in [vec![], vec![p.as_str()]] {
        let r = send(&w, w.api, get.clone(), &format!("Bearer {token}"), &proofs).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.challenges,
            vec![
                r#"Bearer error="invalid_token", error_description="DPoP-bound token (cnf.jkt) must be sent with the DPoP scheme and a proof""#
            ]
        );
    }
    // A Bearer token (unbound) sent with the DPoP scheme and a valid proof.
    let bearer = w.token(None);
    let p = key.dpop_proof("GET", &url, Some(&bearer), None).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("DPoP {bearer}"), &[&p]).await;
    dpop_refused(
        &r,
        "invalid_token",
        "DPoP scheme requires a token bound to a proof key",
    );
    // A certificate-bound token with the DPoP scheme.
    let x5t = w.token(Some(json!({"x5t#S256": key.thumbprint()})));
    let p = key.dpop_proof("GET", &url, Some(&x5t), None).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("DPoP {x5t}"), &[&p]).await;
    dpop_refused(
        &r,
        "invalid_token",
        "DPoP scheme requires a token bound to a proof key",
    );
    // The bound token itself is still fully validated (expired).
    let mut c = claims(&w.issuer.issuer, None);
    c.insert("cnf".into(), json!({"jkt": key.thumbprint()}));
    c.insert("exp".into(), json!(now - 3600));
    let expired = jose::sign_compact(
        &jose::JwsHeader::new(w.signer.default_jws_algorithm())
            .kid("k1")
            .typ("at+jwt"),
        &c,
        &w.signer,
    )
    .unwrap();
    let p = key.dpop_proof("GET", &url, Some(&expired), None).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("DPoP {expired}"), &[&p]).await;
    dpop_refused(&r, "invalid_token", "token expired");
    // Nothing leaked the token.
    assert!(!r.body.contains(&expired[expired.len() - 20..]));
}

#[tokio::test]
async fn dpop_nonce_required_then_accepted() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b.require_dpop_nonce(true)).await;
    let api = serve_api(&w.pki, v).await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let url = w.url(api);
    let auth = format!("DPoP {token}");
    let p = key.dpop_proof("GET", &url, Some(&token), None).unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.challenges,
        vec![format!(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", {ALGS}"#
        )]
    );
    let nonce = r.nonce.expect("DPoP-Nonce header");
    // A made-up nonce is refused with a fresh challenge.
    let p = key
        .dpop_proof("GET", &url, Some(&token), Some("made-up"))
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.nonce.as_deref(), Some(nonce.as_str()));
    // With the nonce: accepted, and the response keeps supplying it.
    let p = key
        .dpop_proof("GET", &url, Some(&token), Some(&nonce))
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.nonce.as_deref(), Some(nonce.as_str()));
    // The nonce of another server instance (another secret) is refused.
    let v2 = validator(&w.pki, &w.issuer, |b| b.require_dpop_nonce(true)).await;
    let theirs = v2.current_dpop_nonce().unwrap();
    assert_ne!(theirs, nonce);
    let p = key
        .dpop_proof("GET", &url, Some(&token), Some(&theirs))
        .unwrap();
    assert_eq!(
        send(&w, api, http::Method::GET, &auth, &[&p]).await.status,
        401
    );
}

#[tokio::test]
async fn external_base_url_behind_a_proxy() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://API.example.com:443/orders-api/")
            .proof_window(Duration::from_secs(30))
    })
    .await;
    let api = serve_api(&w.pki, v).await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let p = key
        .dpop_proof(
            "GET",
            "https://api.example.com/orders-api/whoami",
            Some(&token),
            None,
        )
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The internal URL is not what the client called.
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    // The configured window (30 s) applies.
    let p = key
        .dpop_proof_at(
            "GET",
            "https://api.example.com/orders-api/whoami",
            Some(&token),
            None,
            certbound_core::now_unix() - 45,
        )
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "proof is too old or issued in the future",
    );
    // A bad base URL is a build error.
    let bad = Validator::builder()
        .issuer(w.issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone())
        .external_base_url("api.example.com/x?y")
        .build()
        .await;
    assert!(bad.is_err());
}

fn pop_refused(r: &Reply, description: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.challenges,
        vec![format!(
            r#"PoP error="invalid_token", error_description="{description}""#
        )]
    );
}

#[tokio::test]
async fn pop_accepted_over_tls() {
    let w = world().await;
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let key = ProofKey::generate_kind(kind).unwrap();
        let token = w.pop_token(&key);
        let shr = key
            .signed_http_request(&token, "GET", &w.url(w.api))
            .unwrap();
        let r = send(&w, w.api, http::Method::GET, &format!("PoP {shr}"), &[]).await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["scheme"], "PoP");
        assert_eq!(v["cnf"]["kid"], key.thumbprint());
        assert_eq!(v["sub"], "app-1");
    }
}

#[tokio::test]
async fn pop_hostile_cases_over_tls() {
    let w = world().await;
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let url = w.url(w.api);
    let get = http::Method::GET;
    let now = certbound_core::now_unix();
    let attacker = PrivateKey::generate(KeyKind::EcP256).unwrap();

    // Wrong key: cnf.jwk is the bound key, the signature another key's.
    let good = key.signed_http_request(&token, "GET", &url).unwrap();
    let forged = forge(&good, &attacker, |_, p| p["nonce"] = json!("n2"));
    let r = send(&w, w.api, get.clone(), &format!("PoP {forged}"), &[]).await;
    pop_refused(&r, "signed request: proof signature invalid");
    // kid not the thumbprint of cnf.jwk.
    let lying = forge(&good, &attacker, |h, p| {
        p["cnf"]["jwk"] = serde_json::to_value(attacker.public_jwk()).unwrap();
        h["kid"] = json!(key.thumbprint());
    });
    let r = send(&w, w.api, get.clone(), &format!("PoP {lying}"), &[]).await;
    pop_refused(
        &r,
        "signed request: signed request kid is not the thumbprint of its cnf.jwk",
    );
    // kid mismatch: a valid SHR by another key around the token bound to `key`.
    let other = ProofKey::generate().unwrap();
    let shr = other.signed_http_request(&token, "GET", &url).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request key does not match the token's cnf.kid");

    // Replayed SHR.
    let shr = key.signed_http_request(&token, "GET", &url).unwrap();
    assert_eq!(
        send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[])
            .await
            .status,
        200
    );
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request replayed (nonce already used)");

    // Another method, path, host.
    let shr = key.signed_http_request(&token, "DELETE", &url).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request: proof is for another HTTP method");
    for other_url in [
        url.replace("/whoami", "/admin"),
        url.replace("127.0.0.1", "evil.example"),
    ] {
        let shr = key.signed_http_request(&token, "GET", &other_url).unwrap();
        let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
        pop_refused(&r, "signed request: proof is for another URL");
    }
    // Stale ts.
    let shr = key
        .signed_http_request_at(&token, "GET", &url, now - 600)
        .unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(
        &r,
        "signed request: proof is too old or issued in the future",
    );

    // An SHR-bound token sent as Bearer; a DPoP-bound and an unbound token inside an SHR.
    let r = send(&w, w.api, get.clone(), &format!("Bearer {token}"), &[]).await;
    assert_eq!(
        r.challenges,
        vec![
            r#"Bearer error="invalid_token", error_description="PoP-bound token (cnf.kid) must be sent inside a signed HTTP request (PoP scheme)""#
        ]
    );
    let dpop_bound = w.dpop_token(&key);
    let shr = key.signed_http_request(&dpop_bound, "GET", &url).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(
        &r,
        "DPoP-bound token (cnf.jkt) must be sent with the DPoP scheme and a proof",
    );
    let shr = key
        .signed_http_request(&w.token(None), "GET", &url)
        .unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "PoP scheme requires a token bound to a proof key");
    // The inner token is validated as usual: signed by an unknown issuer key.
    let mut c = claims(&w.issuer.issuer, None);
    c.insert("cnf".into(), json!({"kid": key.thumbprint()}));
    let fake = jose::sign_compact(
        &jose::JwsHeader::new(attacker.default_jws_algorithm())
            .kid("k1")
            .typ("at+jwt"),
        &c,
        &attacker,
    )
    .unwrap();
    let shr = key.signed_http_request(&fake, "GET", &url).unwrap();
    let r = send(&w, w.api, get.clone(), &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signature invalid");
    assert!(!r.body.contains(&fake[fake.len() - 20..]));
}

#[tokio::test]
async fn proof_schemes_need_the_request_line() {
    // validate()/validate_request() have no method or URL: DPoP and PoP are refused there.
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b).await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    for scheme in [
        certbound_resource::Scheme::DPoP,
        certbound_resource::Scheme::Pop,
    ] {
        let e = v.validate(scheme, &token, None).await.unwrap_err();
        assert_eq!(
            e.token_error(),
            Some(&certbound_resource::TokenError::ProofRequired)
        );
        assert!(v.validate_cached(scheme, &token, None).is_err());
    }
}
