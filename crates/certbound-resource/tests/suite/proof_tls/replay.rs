//! Replay: nonce-less SHRs, case-sensitive methods, a flood of proofs.

use super::pop::pop_refused;
use super::*;

/// A proof key whose private key the test keeps too (to forge SHRs with it).
pub(super) fn proof_key_and_signer() -> (ProofKey, PrivateKey) {
    let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let copy = PrivateKey::from_der(&signer.to_pkcs8_der()).unwrap();
    let key = ProofKey::from_private_key(copy, signer.default_jws_algorithm()).unwrap();
    (key, signer)
}

/// The other valid ES256 signature of the same message: `r || (n - s)` (P-256 order `n`).
pub(super) fn p256_other_signature(sig: &[u8]) -> Vec<u8> {
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
pub(super) async fn nonce_less_signed_request_cannot_be_replayed() {
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
pub(super) async fn proof_methods_compare_case_sensitively() {
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
pub(super) async fn a_proof_flood_cannot_evict_a_recorded_proof() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| {
        b.proof_policy(certbound_resource::ProofPolicy::default().replay_cache_capacity(8))
    })
    .await;
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
