//! Multi-byte text at every byte offset of every string-valued header and payload member the
//! DPoP proof verifier and the signed-HTTP-request (SHR, `PoP`) verifier read — `typ`, `alg`,
//! `kid`, the `jwk` members, `htm`, `htu`, `jti`, `ath`, `nonce`, `at`, `m`, `u`, `p`, `q`,
//! `h` — and of the request they are compared with: each proof is refused or accepted, never a
//! panic. Proofs are signed with the key they embed, so the claim rules run too.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::pop::{self, DpopExpectations, HttpTarget};
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, b64, now_unix};
use serde_json::{Map, Value, json};

const URL: &str = "https://api.example.com:8443/orders/1?expand=lines";
const AT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl";
const INSERTS: [&str; 3] = ["é", "€", "𝄞"];

/// `value` with each of [`INSERTS`] inserted at every byte offset (`value` is ASCII), and
/// replacing the whole value.
fn variants(value: &str) -> Vec<String> {
    assert!(value.is_ascii());
    let mut out = Vec::new();
    for c in INSERTS {
        for i in 0..=value.len() {
            out.push(format!("{}{c}{}", &value[..i], &value[i..]));
        }
        out.push(c.to_owned());
    }
    out
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn sign(key: &PrivateKey, h: &Map<String, Value>, p: &Map<String, Value>) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(serde_json::to_vec(h).unwrap()),
        b64::encode(serde_json::to_vec(p).unwrap())
    );
    let sig = key.sign(JwsAlgorithm::ES256, input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

struct Fixture {
    key: PrivateKey,
    jwk: Map<String, Value>,
    thumbprint: String,
    now: i64,
}

fn fixture() -> Fixture {
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwk = obj(serde_json::to_value(key.public_jwk()).unwrap());
    let thumbprint = key.public_jwk().thumbprint().unwrap();
    Fixture {
        key,
        jwk,
        thumbprint,
        now: now_unix(),
    }
}

impl Fixture {
    fn dpop_header(&self) -> Map<String, Value> {
        obj(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}))
    }
    fn dpop_payload(&self) -> Map<String, Value> {
        obj(json!({
            "jti": "0f8fad5b-d9cb-469f-a165-70867728950e", "htm": "GET",
            "htu": "https://api.example.com:8443/orders/1", "iat": self.now,
            "ath": pop::access_token_hash(AT), "nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v",
        }))
    }
    fn shr_header(&self) -> Map<String, Value> {
        obj(json!({"typ": "pop", "alg": "ES256", "kid": self.thumbprint}))
    }
    fn shr_payload(&self) -> Map<String, Value> {
        obj(json!({
            "at": AT, "ts": self.now, "nonce": "6e2a1c0b9d8f4e7a", "m": "GET",
            "u": "api.example.com:8443", "p": "/orders/1",
            "q": [["expand"], "9ZlVi7ODmLr6wBzJ3uMGGGbZNfdwn8n4MbZkKZxLGr0"],
            "h": [["content-type"], "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"],
            "cnf": {"jwk": self.jwk},
        }))
    }

    /// Runs the DPoP verifier on `proof` against the request and a few hostile requests.
    fn dpop(&self, proof: &str) -> usize {
        let mut accepted = 0;
        for url in [URL, "https://api.example.com:8443/orders/1"] {
            let want = DpopExpectations::new("GET", url, self.now)
                .access_token(AT)
                .nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v");
            if let Ok(p) = pop::verify_dpop_proof(proof, &want) {
                accepted += 1;
                let _ = format!("{p:?}");
            }
        }
        let _ = pop::verify_dpop_proof(proof, &DpopExpectations::new("GET", URL, self.now));
        let _ = pop::verify_signed_http_request(proof);
        accepted
    }

    /// Runs the SHR verifier on `shr`, then its request check.
    fn shr(&self, shr: &str) -> usize {
        let mut accepted = 0;
        if let Ok(s) = pop::verify_signed_http_request(shr) {
            let _ = format!("{s:?}");
            for url in [URL, "https://API.example.com:8443/orders/1"] {
                if s.check_request("GET", url, self.now, 300, 5).is_ok() {
                    accepted += 1;
                }
            }
        }
        let _ = self.dpop(shr);
        accepted
    }
}

#[test]
fn controls_are_accepted() {
    let f = fixture();
    assert_eq!(
        f.dpop(&sign(&f.key, &f.dpop_header(), &f.dpop_payload())),
        2
    );
    assert_eq!(f.shr(&sign(&f.key, &f.shr_header(), &f.shr_payload())), 2);
}

#[test]
fn dpop_multibyte_text_at_every_offset_of_every_member() {
    let f = fixture();
    let mut proofs = 0;
    for member in ["typ", "alg"] {
        let Some(Value::String(base)) = f.dpop_header().get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut h = f.dpop_header();
            h.insert(member.into(), json!(v));
            f.dpop(&sign(&f.key, &h, &f.dpop_payload()));
            proofs += 1;
        }
    }
    for member in ["kty", "crv", "x", "y"] {
        let Some(Value::String(base)) = f.jwk.get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut jwk = f.jwk.clone();
            jwk.insert(member.into(), json!(v));
            let mut h = f.dpop_header();
            h.insert("jwk".into(), Value::Object(jwk));
            f.dpop(&sign(&f.key, &h, &f.dpop_payload()));
            proofs += 1;
        }
    }
    let mut accepted = 0;
    for member in ["jti", "htm", "htu", "ath", "nonce"] {
        let Some(Value::String(base)) = f.dpop_payload().get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut p = f.dpop_payload();
            p.insert(member.into(), json!(v));
            accepted += f.dpop(&sign(&f.key, &f.dpop_header(), &p));
            proofs += 1;
        }
    }
    assert!(proofs > 700, "{proofs}");
    // Only `jti` is free text: its variants are accepted.
    assert!(accepted >= 2 * 3 * 37, "{accepted}");
}

#[test]
fn shr_multibyte_text_at_every_offset_of_every_member() {
    let f = fixture();
    let mut proofs = 0;
    for member in ["typ", "alg", "kid"] {
        let Some(Value::String(base)) = f.shr_header().get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut h = f.shr_header();
            h.insert(member.into(), json!(v));
            f.shr(&sign(&f.key, &h, &f.shr_payload()));
            proofs += 1;
        }
    }
    for member in ["kty", "crv", "x", "y"] {
        let Some(Value::String(base)) = f.jwk.get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut jwk = f.jwk.clone();
            jwk.insert(member.into(), json!(v));
            let mut p = f.shr_payload();
            p.insert("cnf".into(), json!({ "jwk": jwk }));
            f.shr(&sign(&f.key, &f.shr_header(), &p));
            proofs += 1;
        }
    }
    let mut accepted = 0;
    for member in ["at", "nonce", "m", "u", "p"] {
        let Some(Value::String(base)) = f.shr_payload().get(member).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut p = f.shr_payload();
            p.insert(member.into(), json!(v));
            accepted += f.shr(&sign(&f.key, &f.shr_header(), &p));
            proofs += 1;
        }
    }
    // `q` and `h`: the names and the hash.
    for v in variants("expand") {
        for (member, value) in [
            (
                "q",
                json!([[v], "9ZlVi7ODmLr6wBzJ3uMGGGbZNfdwn8n4MbZkKZxLGr0"]),
            ),
            ("h", json!([["content-type", v], v])),
        ] {
            let mut p = f.shr_payload();
            p.insert(member.into(), value);
            accepted += f.shr(&sign(&f.key, &f.shr_header(), &p));
            proofs += 1;
        }
    }
    assert!(proofs > 700, "{proofs}");
    // `at`, `nonce`, `q` and `h` are not compared: their variants are accepted.
    assert!(accepted > 300, "{accepted}");
}

#[test]
fn request_urls_with_multibyte_text_at_every_offset() {
    // The request side: the URL a verifier compares with (the server's own origin, or a
    // client's target) parsed with multi-byte text anywhere.
    let f = fixture();
    let dpop = sign(&f.key, &f.dpop_header(), &f.dpop_payload());
    let shr =
        pop::verify_signed_http_request(&sign(&f.key, &f.shr_header(), &f.shr_payload())).unwrap();
    for url in variants(URL)
        .into_iter()
        .chain(variants("http://[::1]:80/a%2fb/../c"))
    {
        let _ = pop::normalize_htu(&url);
        let _ = HttpTarget::parse(&url);
        let _ = pop::verify_dpop_proof(&dpop, &DpopExpectations::new("GET", &url, f.now));
        let _ = shr.check_request("GET", &url, f.now, 300, 5);
        for m in variants("GET") {
            let _ = shr.check_request(&m, &url, f.now, 300, 5);
        }
    }
}
