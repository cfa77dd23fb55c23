//! DPoP (RFC 9449) and PoP (signed HTTP request) over real TLS against the layer, with tokens
//! minted here (`cnf.jkt` / `cnf.kid`) and a static JWKS served by the test issuer: accepted,
//! and every hostile case refused with the right RFC 9449 / RFC 6750 challenge.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

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
/// The refusal of a request whose `Host` names none of the server's origins.
const NOT_ORIGIN: &str = "the request's Host is not an origin of this server";

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
    reply(req.send().await.unwrap()).await
}

/// An HTTP/1.1-only client: the `Host` header is then exactly what the caller sets, as a
/// proxy forwarding a request or a replayer forging one sends it.
fn http1(pki: &Pki) -> reqwest::Client {
    let mut cfg = certbound_core::tls::client_config(&pki.anchors, None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .http1_only()
        .build()
        .unwrap()
}

/// `send` over HTTP/1.1 to the API at `api` with `Host: host`.
async fn send_host(
    w: &World,
    api: SocketAddr,
    host: &str,
    authorization: &str,
    dpop: &[&str],
) -> Reply {
    let mut req = http1(&w.pki)
        .get(w.url(api))
        .header(header::HOST, host)
        .header(header::AUTHORIZATION, authorization);
    for p in dpop {
        req = req.header("DPoP", *p);
    }
    reply(req.send().await.unwrap()).await
}

async fn reply(resp: reqwest::Response) -> Reply {
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
    // The proxy forwards the client's Host.
    let r = send_host(&w, api, "api.example.com", &auth, &[&p]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The internal URL is not what the client called.
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send_host(&w, api, "api.example.com", &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    // Nor is the listen address an origin once external URLs are configured.
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
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
    let r = send_host(&w, api, "api.example.com:443", &auth, &[&p]).await;
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
    pop_refused(&r, "signed request replayed (already used)");

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

/// docs/resource-server.md (proof origin) (a): a token and proof accepted by one API are replayed to a second API of
/// the same issuer and audience with `Host` forged to name the first. The second API
/// compares the proof with its own origin (its listen address here), never with `Host`.
#[tokio::test]
async fn proof_replayed_to_a_sibling_api_with_a_forged_host_is_refused() {
    let w = world().await;
    let sibling = serve_api(&w.pki, validator(&w.pki, &w.issuer, |b| b).await).await;
    let first_host = format!("127.0.0.1:{}", w.api.port());

    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key
        .dpop_proof("GET", &w.url(w.api), Some(&token), None)
        .unwrap();
    let r = send_host(&w, sibling, &first_host, &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    // Without the forged Host it names another URL.
    let r = send(&w, sibling, http::Method::GET, &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    // The pair itself is good where it was made for.
    let r = send(&w, w.api, http::Method::GET, &auth, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The same with a signed HTTP request.
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "GET", &w.url(w.api))
        .unwrap();
    let auth = format!("PoP {shr}");
    let r = send_host(&w, sibling, &first_host, &auth, &[]).await;
    pop_refused(&r, &format!("signed request: {NOT_ORIGIN}"));
    let r = send(&w, w.api, http::Method::GET, &auth, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Two APIs behind a gateway, each with its external URL: the same refusal.
    let orders = serve_api(
        &w.pki,
        validator(&w.pki, &w.issuer, |b| {
            b.external_base_url("https://orders.example")
        })
        .await,
    )
    .await;
    let billing = serve_api(
        &w.pki,
        validator(&w.pki, &w.issuer, |b| {
            b.external_base_url("https://billing.example")
        })
        .await,
    )
    .await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key
        .dpop_proof("GET", "https://orders.example/whoami", Some(&token), None)
        .unwrap();
    let r = send_host(&w, billing, "orders.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    let r = send_host(&w, billing, "billing.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    let r = send_host(&w, orders, "orders.example", &auth, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// docs/resource-server.md (proof origin) (b): a proof naming the attacker's host, sent with that `Host`, is refused:
/// the server is not `attacker.example`, whatever the request says.
#[tokio::test]
async fn proof_for_a_host_that_is_not_this_server_is_refused() {
    let w = world().await;
    let evil = "https://attacker.example/whoami";
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key.dpop_proof("GET", evil, Some(&token), None).unwrap();
    let r = send_host(&w, w.api, "attacker.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    // A good proof with a foreign Host is refused too; the refusal echoes nothing of it.
    let good = key
        .dpop_proof("GET", &w.url(w.api), Some(&token), None)
        .unwrap();
    let r = send_host(&w, w.api, "attacker.example", &auth, &[&good]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    assert!(!r.body.contains("attacker"), "{}", r.body);
    // The same proof with the Host naming this server: accepted.
    let host = format!("127.0.0.1:{}", w.api.port());
    let r = send_host(&w, w.api, &host, &auth, &[&good]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A Host that is not a bare host[:port] names no origin.
    for host in [
        format!("{host}/whoami"),
        format!("u@{host}"),
        format!("{host} x"),
    ] {
        let p = key
            .dpop_proof("GET", &w.url(w.api), Some(&token), None)
            .unwrap();
        let r = send_host(&w, w.api, &host, &auth, &[&p]).await;
        dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    }

    // HTTP/2: `:authority` is a claim too. The server's certificate is valid for
    // `localhost`, but its origin is its listen address, https://127.0.0.1:PORT.
    let cfg = certbound_core::tls::client_config(&w.pki.anchors, None).unwrap();
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", w.api)
        .build()
        .unwrap();
    let local = format!("https://localhost:{}/whoami", w.api.port());
    let p = key.dpop_proof("GET", &local, Some(&token), None).unwrap();
    let resp = h2
        .get(&local)
        .header(header::AUTHORIZATION, &auth)
        .header("DPoP", p)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    dpop_refused(&reply(resp).await, "invalid_dpop_proof", NOT_ORIGIN);

    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key.signed_http_request(&token, "GET", evil).unwrap();
    let r = send_host(&w, w.api, "attacker.example", &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, &format!("signed request: {NOT_ORIGIN}"));
}

/// docs/resource-server.md (proof origin) (b): several configured origins (one with a path prefix, two on one host): a
/// proof is accepted for the origin its `Host` names, refused for another configured one.
#[tokio::test]
async fn each_configured_origin_is_accepted_with_its_own_host() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://api.example.com")
            .external_base_urls([
                "https://gw.example.com/orders-api/",
                "https://gw.example.com:8443/v2",
                "https://gw.example.com/other-api",
            ])
    })
    .await;
    assert_eq!(
        v.proof_origins("0.0.0.0:443".parse().unwrap()).unwrap(),
        vec![
            "https://api.example.com",
            "https://gw.example.com/orders-api",
            "https://gw.example.com:8443/v2",
            "https://gw.example.com/other-api",
        ]
    );
    // In process: no Host at all is ambiguous with several origins, and so are two.
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let uri: http::Uri = "/whoami".parse().unwrap();
    for hosts in [&[][..], &["api.example.com", "api.example.com"][..]] {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("DPoP {token}").parse().unwrap(),
        );
        let p = key
            .dpop_proof("GET", "https://api.example.com/whoami", Some(&token), None)
            .unwrap();
        h.insert("dpop", p.parse().unwrap());
        for host in hosts {
            h.append(header::HOST, host.parse().unwrap());
        }
        let e = v
            .validate_http_request(&http::Method::GET, &uri, &h, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                certbound_resource::Rejection::InvalidDpopProof(
                    certbound_resource::DpopError::Proof(
                        certbound_core::pop::PopError::HostMissing
                    )
                )
            ),
            "{hosts:?}: {e:?}"
        );
    }
    let api = serve_api(&w.pki, v).await;
    let auth = format!("DPoP {token}");
    for (url, host) in [
        ("https://api.example.com/whoami", "api.example.com"),
        ("https://gw.example.com/orders-api/whoami", "GW.example.com"),
        (
            "https://gw.example.com/other-api/whoami",
            "gw.example.com:443",
        ),
        (
            "https://gw.example.com:8443/v2/whoami",
            "gw.example.com:8443",
        ),
    ] {
        let p = key.dpop_proof("GET", url, Some(&token), None).unwrap();
        let r = send_host(&w, api, host, &auth, &[&p]).await;
        assert_eq!(r.status, 200, "{url} with Host {host}: {}", r.body);
    }
    // A configured origin, but not the one the Host names.
    for (url, host, why) in [
        (
            "https://api.example.com/whoami",
            "gw.example.com",
            "proof is for another URL",
        ),
        (
            "https://gw.example.com/orders-api/whoami",
            "api.example.com",
            "proof is for another URL",
        ),
        (
            "https://gw.example.com/orders-api/whoami",
            "gw.example.com:8443",
            "proof is for another URL",
        ),
        // The prefix is part of the origin.
        (
            "https://gw.example.com/whoami",
            "gw.example.com",
            "proof is for another URL",
        ),
    ] {
        let p = key.dpop_proof("GET", url, Some(&token), None).unwrap();
        let r = send_host(&w, api, host, &auth, &[&p]).await;
        dpop_refused(&r, "invalid_dpop_proof", why);
    }
    // The listen address is not an origin any more.
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);

    // Signed HTTP requests likewise.
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "GET", "https://gw.example.com/orders-api/whoami")
        .unwrap();
    let r = send_host(&w, api, "gw.example.com", &format!("PoP {shr}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let shr = key
        .signed_http_request(&token, "GET", "https://api.example.com/whoami")
        .unwrap();
    let r = send_host(&w, api, "gw.example.com", &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request: proof is for another URL");
}

/// docs/resource-server.md (proof origin) (c): without an external URL the origin is `https://<listen address>`, which a
/// wildcard address is not: serving refuses to start, naming the option, and a server
/// started without the check refuses every proof.
#[tokio::test]
async fn wildcard_listen_without_external_url_has_no_origin() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b).await;
    for wildcard in ["0.0.0.0:8443", "[::]:8443"] {
        let e = v.proof_origins(wildcard.parse().unwrap()).unwrap_err();
        assert!(
            matches!(e, certbound_resource::BuildError::WildcardListen(_)),
            "{e:?}"
        );
        assert!(e.to_string().contains("--external-url"), "{e}");
        assert!(e.to_string().contains(wildcard), "{e}");
    }
    assert_eq!(
        v.proof_origins("127.0.0.1:8443".parse().unwrap()).unwrap(),
        vec!["https://127.0.0.1:8443"]
    );
    assert_eq!(
        v.proof_origins("[::1]:443".parse().unwrap()).unwrap(),
        vec!["https://[::1]"]
    );

    // sample::serve (what `certbound api serve` runs) refuses to start.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let e = common::sample::serve(listener, &w.pki.server, v.clone(), async {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("--external-url"), "{e}");
    // With an external URL it serves.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let with_url = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://api.example.com")
    })
    .await;
    common::sample::serve(listener, &w.pki.server, with_url, async {})
        .await
        .unwrap();

    // A server on a wildcard address that skipped the check refuses proofs (fail closed).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = certbound_core::tls::server_config(
        &w.pki.server,
        certbound_core::tls::ClientAuth::Optional,
    )
    .unwrap();
    tokio::spawn(
        certbound_resource::transport::TlsServer::new(listener, tls)
            .serve(common::sample::router(v), std::future::pending()),
    );
    let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send(&w, api, http::Method::GET, &format!("DPoP {token}"), &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "this server has no origin to check proofs against: configure its external URL",
    );
    // Bearer tokens do not need an origin.
    let r = send(
        &w,
        api,
        http::Method::GET,
        &format!("Bearer {}", w.token(None)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A proof key whose private key the test keeps too (to forge SHRs with it).
fn proof_key_and_signer() -> (ProofKey, PrivateKey) {
    let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let copy = PrivateKey::from_der(&signer.to_pkcs8_der()).unwrap();
    let key = ProofKey::from_private_key(copy, signer.default_jws_algorithm()).unwrap();
    (key, signer)
}

/// The other valid ES256 signature of the same message: `r || (n - s)` (P-256 order `n`).
fn p256_other_signature(sig: &[u8]) -> Vec<u8> {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    assert_eq!(sig.len(), 64);
    let mut out = sig.to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        out[32 + i] = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// docs/resource-server.md (proof origin) (d): an SHR without `nonce` is replay-protected by the hash of its signed part.
#[tokio::test]
async fn nonce_less_signed_request_cannot_be_replayed() {
    let w = world().await;
    let (key, signer) = proof_key_and_signer();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "GET", &w.url(w.api))
        .unwrap();
    let bare = forge(&shr, &signer, |_, p| {
        p.as_object_mut().unwrap().remove("nonce");
    });
    assert!(
        jose::decode_unverified(&bare)
            .unwrap()
            .1
            .get("nonce")
            .is_none()
    );
    let auth = format!("PoP {bare}");
    let r = send(&w, w.api, http::Method::GET, &auth, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(&w, w.api, http::Method::GET, &auth, &[]).await;
    pop_refused(&r, "signed request replayed (already used)");
    // Anyone can turn an ECDSA signature (r, s) into another valid one, (r, n - s): the
    // replay key is what is signed, not the signature.
    let (input, sig) = bare.rsplit_once('.').unwrap();
    let flipped = format!(
        "{input}.{}",
        b64::encode(p256_other_signature(&b64::decode(sig).unwrap()))
    );
    assert_ne!(flipped, bare);
    assert!(certbound_core::pop::verify_signed_http_request(&flipped).is_ok());
    let r = send(&w, w.api, http::Method::GET, &format!("PoP {flipped}"), &[]).await;
    pop_refused(&r, "signed request replayed (already used)");
    // Another nonce-less SHR (another ts) is a new request.
    let other = forge(&shr, &signer, |_, p| {
        p.as_object_mut().unwrap().remove("nonce");
        p["ts"] = json!(certbound_core::now_unix() - 1);
    });
    let r = send(&w, w.api, http::Method::GET, &format!("PoP {other}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// docs/resource-server.md (proof origin) (e): methods compare case-sensitively (RFC 9110 §9.1): `get` is not `GET`.
#[tokio::test]
async fn proof_methods_compare_case_sensitively() {
    let w = world().await;
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "get", &w.url(w.api))
        .unwrap();
    let r = send(&w, w.api, http::Method::GET, &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request: proof is for another HTTP method");

    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let p = key
        .dpop_proof("get", &w.url(w.api), Some(&token), None)
        .unwrap();
    let r = send(
        &w,
        w.api,
        http::Method::GET,
        &format!("DPoP {token}"),
        &[&p],
    )
    .await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another HTTP method");
}

/// The replay record is bounded by refusing, never by forgetting: an attacker with a valid
/// token of their own floods the API with fresh DPoP proofs to push a victim's recorded
/// proof out (or keep the victim's next proof from being recorded), then replays the
/// victim's captured proof. With an evicting cache the replay passed; now the flood gets
/// 503 `temporarily_unavailable` with `Retry-After` once the record is full, and the
/// victim's proof stays replayed. Same for signed HTTP requests.
#[tokio::test]
async fn a_proof_flood_cannot_evict_a_recorded_proof() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b.replay_cache_capacity(8)).await;
    let api = serve_api(&w.pki, v).await;

    let victim = ProofKey::generate().unwrap();
    let victim_token = w.dpop_token(&victim);
    let captured = victim
        .dpop_proof("GET", &w.url(api), Some(&victim_token), None)
        .unwrap();
    let auth = format!("DPoP {victim_token}");
    let r = send(&w, api, http::Method::GET, &auth, &[&captured]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let attacker = ProofKey::generate().unwrap();
    let attacker_token = w.dpop_token(&attacker);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let proof = attacker
            .dpop_proof("GET", &w.url(api), Some(&attacker_token), None)
            .unwrap();
        let r = send(
            &w,
            api,
            http::Method::GET,
            &format!("DPoP {attacker_token}"),
            &[&proof],
        )
        .await;
        if r.status == 503 {
            assert!(r.body.contains("temporarily_unavailable"), "{}", r.body);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        33,
        "{statuses:?}"
    );

    // The captured proof is still known: replayed, not accepted.
    let r = send(&w, api, http::Method::GET, &auth, &[&captured]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "DPoP proof replayed (jti already used)",
    );

    // The victim's next proof is refused for now (503, retryable) rather than accepted
    // unrecorded, so it cannot be replayed either.
    let next = victim
        .dpop_proof("GET", &w.url(api), Some(&victim_token), None)
        .unwrap();
    let resp = w
        .pki
        .http(None)
        .get(w.url(api))
        .header(header::AUTHORIZATION, &auth)
        .header("DPoP", &next)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers().get(header::RETRY_AFTER).unwrap(),
        "1",
        "retryable"
    );

    // Signed HTTP requests share the record and the rule.
    let (key, _signer) = proof_key_and_signer();
    let token = w.pop_token(&key);
    let shr = key.signed_http_request(&token, "GET", &w.url(api)).unwrap();
    let r = send(&w, api, http::Method::GET, &format!("PoP {shr}"), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
}
