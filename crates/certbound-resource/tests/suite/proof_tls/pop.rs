//! Signed HTTP requests (PoP) over TLS.

use super::*;
use certbound_resource::Presented;

pub(super) fn pop_refused(r: &Reply, description: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.challenges,
        vec![format!(
            r#"PoP error="invalid_token", error_description="{description}""#
        )]
    );
}

#[tokio::test]
pub(super) async fn pop_accepted_over_tls() {
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
pub(super) async fn pop_hostile_cases_over_tls() {
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
pub(super) async fn proof_schemes_need_the_request_line() {
    // A bare token (or headers without a request line) has no method or URL: DPoP and PoP
    // are refused there.
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b).await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    for scheme in [
        certbound_resource::ProtocolScheme::DPoP,
        certbound_resource::ProtocolScheme::Pop,
    ] {
        let e = v
            .validate(&Presented::token(scheme, &token))
            .await
            .unwrap_err();
        assert_eq!(
            e.token_error(),
            Some(&certbound_resource::TokenError::ProofRequired)
        );
        assert!(
            v.validate_cached(&Presented::token(scheme, &token))
                .is_some_and(|r| r.is_err())
        );
    }
}
