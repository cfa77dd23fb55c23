//! DPoP over TLS: accepted, hostile proofs, nonces, behind a proxy.

use super::*;

#[tokio::test]
pub(super) async fn dpop_accepted_over_tls() {
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
pub(super) async fn dpop_hostile_cases_over_tls() {
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
pub(super) async fn dpop_nonce_required_then_accepted() {
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
pub(super) async fn external_base_url_behind_a_proxy() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://API.example.com:443/orders-api/")
            .proof_policy(
                certbound_resource::ProofPolicy::default().window(Duration::from_secs(30)),
            )
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
