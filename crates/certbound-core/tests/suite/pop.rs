//! DPoP and SHR proofs: round trips for every key kind, every refusal rule, and no panic on
//! garbage.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::pop::{self, DpopExpectations, PopError, ProofKey};
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, b64, now_unix};
use proptest::prelude::*;
use serde_json::{Value, json};

const URL: &str = "https://api.example/orders";

/// Re-signs `header`/`payload` with `key`.
fn forge(header: &Value, payload: &Value, key: &PrivateKey, alg: JwsAlgorithm) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(payload.to_string())
    );
    let sig = key.sign(alg, input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

fn parts(token: &str) -> (Value, Value) {
    let (h, p) = certbound_core::jose::decode_unverified(token).unwrap();
    (h, p)
}

#[test]
fn dpop_round_trip_every_kind() {
    for kind in [KeyKind::EcP256, KeyKind::EcP384, KeyKind::Rsa2048] {
        let key = ProofKey::generate_kind(kind).unwrap();
        let proof = key
            .dpop_proof(
                "POST",
                "HTTPS://api.example:443/orders?q=1#x",
                Some("at"),
                Some("n1"),
            )
            .unwrap();
        let (h, p) = parts(&proof);
        assert_eq!(h["typ"], "dpop+jwt");
        assert!(h["jwk"].get("d").is_none());
        assert_eq!(p["htu"], URL);
        assert_eq!(p["ath"], pop::access_token_hash("at"));
        let now = now_unix();
        let ok = pop::verify_dpop_proof(
            &proof,
            &DpopExpectations::new("POST", URL, now)
                .access_token("at")
                .nonce("n1"),
        )
        .unwrap();
        assert_eq!(ok.jkt, key.thumbprint());
        assert_eq!(ok.nonce.as_deref(), Some("n1"));
        // Fresh jti per proof.
        let again = key.dpop_proof("POST", URL, Some("at"), None).unwrap();
        assert_ne!(parts(&again).1["jti"], p["jti"]);
    }
}

#[test]
fn dpop_refusals() {
    let key = ProofKey::generate().unwrap();
    let now = now_unix();
    let proof = key.dpop_proof("GET", URL, Some("at"), None).unwrap();
    let want = |m: &'static str, u: &'static str| DpopExpectations::new(m, u, now);
    let check = |p: &str, w: DpopExpectations<'_>| pop::verify_dpop_proof(p, &w).unwrap_err();
    assert_eq!(
        check(&proof, want("POST", URL).access_token("at")),
        PopError::MethodMismatch
    );
    assert_eq!(
        check(
            &proof,
            want("GET", "https://api.example/other").access_token("at")
        ),
        PopError::UrlMismatch
    );
    assert_eq!(
        check(&proof, want("GET", URL).access_token("other")),
        PopError::AthMismatch
    );
    assert_eq!(check(&proof, want("GET", URL).nonce("n")), PopError::Nonce);
    let no_ath = key.dpop_proof("GET", URL, None, None).unwrap();
    assert_eq!(
        check(&no_ath, want("GET", URL).access_token("at")),
        PopError::AthMissing
    );
    let stale = key
        .dpop_proof_at("GET", URL, None, None, now - 600)
        .unwrap();
    assert_eq!(check(&stale, want("GET", URL)), PopError::Stale);
    let future = key
        .dpop_proof_at("GET", URL, None, None, now + 600)
        .unwrap();
    assert_eq!(check(&future, want("GET", URL)), PopError::Stale);

    // Signed by another key than the embedded one.
    let (h, p) = parts(&proof);
    let other = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let wrong = forge(&h, &p, &other, JwsAlgorithm::ES256);
    assert_eq!(check(&wrong, want("GET", URL)), PopError::BadSignature);
    // Private members in the embedded key.
    let mut hp = h.clone();
    hp["jwk"]["d"] = json!("AAAA");
    assert_eq!(
        check(
            &forge(&hp, &p, &other, JwsAlgorithm::ES256),
            want("GET", URL)
        ),
        PopError::PrivateJwk
    );
    // Wrong typ, alg none, HMAC.
    let mut ht = h.clone();
    ht["typ"] = json!("JWT");
    assert_eq!(
        check(
            &forge(&ht, &p, &other, JwsAlgorithm::ES256),
            want("GET", URL)
        ),
        PopError::Typ("dpop+jwt")
    );
    for alg in ["none", "HS256"] {
        let mut ha = h.clone();
        ha["alg"] = json!(alg);
        let t = format!(
            "{}.{}.c2ln",
            b64::encode(ha.to_string()),
            b64::encode(p.to_string())
        );
        assert_eq!(check(&t, want("GET", URL)), PopError::Algorithm);
    }
    // An RSA key used with ES256.
    let mut hk = h.clone();
    hk["jwk"] =
        serde_json::to_value(PrivateKey::generate(KeyKind::Rsa2048).unwrap().public_jwk()).unwrap();
    assert_eq!(
        check(
            &forge(&hk, &p, &other, JwsAlgorithm::ES256),
            want("GET", URL)
        ),
        PopError::KeyAlgMismatch
    );
    // Missing claims.
    for claim in ["jti", "htm", "htu", "iat"] {
        let mut pc = p.clone();
        pc.as_object_mut().unwrap().remove(claim);
        let sk = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let mut hh = h.clone();
        hh["jwk"] = serde_json::to_value(sk.public_jwk()).unwrap();
        assert_eq!(
            check(&forge(&hh, &pc, &sk, JwsAlgorithm::ES256), want("GET", URL)),
            PopError::Claim(claim)
        );
    }
}

#[test]
fn shr_round_trip_and_refusals() {
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let key = ProofKey::generate_kind(kind).unwrap();
        let shr = key
            .signed_http_request("inner.at.token", "GET", "https://API.example:443/orders?x")
            .unwrap();
        let (h, p) = parts(&shr);
        assert_eq!(h["typ"], "pop");
        assert_eq!(h["kid"], key.thumbprint());
        assert_eq!(
            h["alg"],
            if kind == KeyKind::Rsa2048 {
                "PS256"
            } else {
                "ES256"
            }
        );
        assert_eq!(p["u"], "api.example");
        assert_eq!(p["p"], "/orders");
        let v = pop::verify_signed_http_request(&shr).unwrap();
        assert_eq!(v.access_token, "inner.at.token");
        assert_eq!(v.thumbprint, key.thumbprint());
        assert!(!format!("{v:?}").contains("inner.at.token"));
        let now = now_unix();
        v.check_request("GET", URL, now, 60, 5).unwrap();
        assert_eq!(
            v.check_request("POST", URL, now, 60, 5),
            Err(PopError::MethodMismatch)
        );
        assert_eq!(
            v.check_request("GET", "https://api.example/x", now, 60, 5),
            Err(PopError::UrlMismatch)
        );
        assert_eq!(
            v.check_request("GET", "https://other.example/orders", now, 60, 5),
            Err(PopError::UrlMismatch)
        );
        assert_eq!(
            v.check_request("GET", URL, now + 600, 60, 5),
            Err(PopError::Stale)
        );
    }
    // kid of another key.
    let key = ProofKey::generate().unwrap();
    let other = ProofKey::generate().unwrap();
    let shr = key.signed_http_request("a", "GET", URL).unwrap();
    let (mut h, p) = parts(&shr);
    h["kid"] = json!(other.thumbprint());
    let sk = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let mut p2 = p.clone();
    p2["cnf"]["jwk"] = serde_json::to_value(sk.public_jwk()).unwrap();
    assert_eq!(
        pop::verify_signed_http_request(&forge(&h, &p2, &sk, JwsAlgorithm::ES256)).unwrap_err(),
        PopError::KidMismatch
    );
    // Signed by a key other than cnf.jwk.
    assert_eq!(
        pop::verify_signed_http_request(&forge(&parts(&shr).0, &p, &sk, JwsAlgorithm::ES256))
            .unwrap_err(),
        PopError::BadSignature
    );
}

#[test]
fn rotation_changes_the_key_and_debug_is_redacted() {
    let key = ProofKey::generate().unwrap();
    let clone = key.clone();
    let before = key.thumbprint();
    let old_proof = key.dpop_proof("GET", URL, None, None).unwrap();
    key.rotate().unwrap();
    assert_ne!(clone.thumbprint(), before, "clones share the rotated key");
    let new = pop::verify_dpop_proof(
        &clone.dpop_proof("GET", URL, None, None).unwrap(),
        &DpopExpectations::new("GET", URL, now_unix()),
    )
    .unwrap();
    assert_eq!(new.jkt, key.thumbprint());
    assert_ne!(
        pop::verify_dpop_proof(&old_proof, &DpopExpectations::new("GET", URL, now_unix()))
            .unwrap()
            .jkt,
        new.jkt
    );
    let pk = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let pem = pk.to_pkcs8_pem();
    let k = ProofKey::from_private_key(pk, JwsAlgorithm::ES256).unwrap();
    let dbg = format!("{k:?}");
    assert!(!dbg.contains(&pem[30..70]));
    assert!(dbg.contains(&k.thumbprint()));
    assert!(
        ProofKey::from_private_key(
            PrivateKey::generate(KeyKind::EcP256).unwrap(),
            JwsAlgorithm::PS256
        )
        .is_err()
    );
    assert_eq!(
        key.dpop_proof("GET", "not a url", None, None).unwrap_err(),
        PopError::BadUrl
    );
    assert_eq!(
        key.dpop_proof("G ET", URL, None, None).unwrap_err(),
        PopError::BadMethod
    );
}

#[test]
fn req_cnf_round_trip_and_garbage() {
    let key = ProofKey::generate().unwrap();
    assert_eq!(
        pop::parse_req_cnf(&key.req_cnf()).unwrap(),
        key.thumbprint()
    );
    for bad in [
        String::new(),
        "!!".into(),
        b64::encode("[]"),
        b64::encode(r#"{"kid":1}"#),
        b64::encode(r#"{"kid":"short"}"#),
        b64::encode(format!(r#"{{"kid":"{0}","kid":"{0}"}}"#, key.thumbprint())),
        "A".repeat(5000),
    ] {
        assert!(pop::parse_req_cnf(&bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(s in "\\PC{0,300}", dots in "[A-Za-z0-9_.-]{0,200}") {
        let now = now_unix();
        for t in [&s, &dots] {
            let _ = pop::verify_dpop_proof(t, &DpopExpectations::new("GET", URL, now));
            let _ = pop::verify_signed_http_request(t);
            let _ = pop::normalize_htu(t);
            let _ = pop::parse_req_cnf(t);
        }
    }

    #[test]
    fn garbage_json_never_panics(h in "\\PC{0,120}", p in "\\PC{0,120}", sig in "[A-Za-z0-9_-]{0,90}") {
        let t = format!("{}.{}.{}", b64::encode(&h), b64::encode(&p), sig);
        let now = now_unix();
        prop_assert!(pop::verify_dpop_proof(&t, &DpopExpectations::new("GET", URL, now)).is_err());
        prop_assert!(pop::verify_signed_http_request(&t).is_err());
    }
}
