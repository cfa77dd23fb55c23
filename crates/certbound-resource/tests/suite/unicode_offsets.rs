//! Multi-byte text at every byte offset of every string-valued JOSE header member and claim
//! the validator reads: each token is refused or accepted, never a panic (the validator once
//! sliced `alg` and `typ` at byte offsets inside a character). Tokens are signed with the
//! issuer's real key, so the claim rules run too, and an accepted token's accessors are read.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound_core::{Jwks, JwsAlgorithm, KeyKind, PrivateKey, Thumbprint, b64};
use certbound_resource::Presented;
use certbound_resource::{ProtocolScheme, Validator};
use serde_json::{Map, Value, json};

const ISS: &str = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const AUD: &str = "api://orders";
/// Two-, three- and four-byte UTF-8 characters.
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
        out.push(c.repeat(value.len().max(1)));
    }
    out
}

struct Fixture {
    key: PrivateKey,
    validator: Validator,
    peer: Thumbprint,
}

fn fixture() -> Fixture {
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwks = Jwks {
        keys: vec![key.public_jwk().with_kid("k1")],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let validator = rt
        .block_on(
            Validator::builder()
                .issuer(ISS)
                .audience(AUD)
                .token_rules(
                    certbound_resource::TokenRules::default()
                        .algorithms(&[JwsAlgorithm::ES256])
                        .token_types(["at+jwt", "JWT", "pop"])
                        .understood_crit(["ext"]),
                )
                .jwks(jwks)
                .build(),
        )
        .unwrap();
    Fixture {
        key,
        validator,
        peer: Thumbprint::of_der(b"client certificate"),
    }
}

fn header() -> Map<String, Value> {
    match json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["ext"], "ext": "v1", "cty": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"})
    {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn claims(peer: &Thumbprint) -> Map<String, Value> {
    let now = certbound_core::now_unix();
    match json!({
        "iss": ISS, "aud": [AUD, "api://other"], "sub": "9f8e7d6c-0000-4000-8000-000000000001",
        "azp": "11111111-2222-3333-4444-555555555555", "appid": "11111111-2222-3333-4444-555555555555",
        "client_id": "orders-client", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "oid": "9f8e7d6c-0000-4000-8000-000000000001", "scp": "orders.read orders.write",
        "scope": "orders.read", "roles": ["Orders.Admin", "Reader"], "jti": "Yw8bH2c3QkSd0yFvX9n1Aw",
        "ver": "2.0", "idtyp": "app", "iat": now, "nbf": now, "exp": now + 600,
        "cnf": {"x5t#S256": peer.to_base64url(), "xms_ksl": "sw"},
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn sign(f: &Fixture, h: &Map<String, Value>, c: &Map<String, Value>) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(serde_json::to_vec(h).unwrap()),
        b64::encode(serde_json::to_vec(c).unwrap())
    );
    let sig = f.key.sign(JwsAlgorithm::ES256, input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

/// Validates `token` every way the validator can be called without a proof; reads every
/// accessor of an accepted token. Returns how many calls accepted it.
fn exercise(f: &Fixture, token: &str) -> usize {
    let mut accepted = 0;
    for (scheme, peer) in [
        (ProtocolScheme::MtlsPop, Some(&f.peer)),
        (ProtocolScheme::Bearer, Some(&f.peer)),
        (ProtocolScheme::Bearer, None),
    ] {
        match f
            .validator
            .validate_cached(&Presented::token(scheme, token).peer(peer))
            .expect("a fixed key set always answers")
        {
            Ok(v) => {
                accepted += 1;
                let c = v.claims();
                let _ = (c.sub(), c.client_id(), c.scopes(), c.roles(), c.kid());
                let _ = (c.issuer(), c.audiences(), c.expires_at(), c.alg());
                let _ = (
                    c.header().len(),
                    c.all().len(),
                    c.get("tid"),
                    c.confirmation(),
                );
                let _ = (v.is_bound(), v.proof_key_thumbprint(), format!("{v:?}"));
            }
            Err(r) => {
                // The refusal's texts are built too (they go into WWW-Authenticate).
                let _ = (r.to_string(), r.challenges(), r.status());
            }
        }
    }
    accepted
}

#[test]
fn control_token_is_accepted() {
    let f = fixture();
    let token = sign(&f, &header(), &claims(&f.peer));
    // mtls_pop and Bearer with the certificate; Bearer without it is refused.
    assert_eq!(exercise(&f, &token), 2);
}

#[test]
fn multibyte_text_at_every_offset_of_every_header_member() {
    let f = fixture();
    let c = claims(&f.peer);
    let mut tokens = 0;
    for member in ["alg", "typ", "kid", "cty", "x5t", "ext"] {
        let Some(Value::String(base)) = header().get(member).cloned() else {
            unreachable!()
        };
        let mut bases = vec![base];
        if member == "typ" {
            bases.extend([
                "application/at+jwt".into(),
                "JWT".into(),
                "application/".into(),
            ]);
        }
        if member == "alg" {
            bases.extend(["HS256".into(), "none".into()]);
        }
        for base in bases {
            for v in variants(&base) {
                let mut h = header();
                h.insert(member.into(), json!(v));
                exercise(&f, &sign(&f, &h, &c));
                tokens += 1;
            }
        }
    }
    // `crit` entries (and the member each one names).
    for v in variants("ext") {
        let mut h = header();
        h.insert("crit".into(), json!([v]));
        exercise(&f, &sign(&f, &h, &c));
        h.insert(v.clone(), json!("x"));
        exercise(&f, &sign(&f, &h, &c));
        h.insert("crit".into(), json!(["ext", v]));
        exercise(&f, &sign(&f, &h, &c));
        tokens += 3;
    }
    assert!(tokens > 400, "{tokens}");
}

#[test]
fn multibyte_text_at_every_offset_of_every_claim() {
    let f = fixture();
    let h = header();
    let mut tokens = 0;
    let mut accepted = 0;
    for claim in [
        "iss",
        "sub",
        "azp",
        "appid",
        "client_id",
        "tid",
        "oid",
        "scp",
        "scope",
        "jti",
        "ver",
        "idtyp",
    ] {
        let Some(Value::String(base)) = claims(&f.peer).get(claim).cloned() else {
            unreachable!()
        };
        for v in variants(&base) {
            let mut c = claims(&f.peer);
            c.insert(claim.into(), json!(v));
            accepted += exercise(&f, &sign(&f, &h, &c));
            tokens += 1;
        }
    }
    // Array elements: `aud` (and `aud` as a string), `roles`.
    for v in variants(AUD) {
        for aud in [json!(v), json!([v]), json!([AUD, v])] {
            let mut c = claims(&f.peer);
            c.insert("aud".into(), aud);
            accepted += exercise(&f, &sign(&f, &h, &c));
            tokens += 1;
        }
    }
    for v in variants("Orders.Admin") {
        let mut c = claims(&f.peer);
        c.insert("roles".into(), json!(["Reader", v]));
        accepted += exercise(&f, &sign(&f, &h, &c));
        tokens += 1;
    }
    // Every `cnf` member, as each key member the validator reads.
    let x5t = f.peer.to_base64url();
    for member in ["x5t#S256", "jkt", "kid", "xms_ksl"] {
        for v in variants(&x5t).into_iter().chain(variants("sw")) {
            let mut c = claims(&f.peer);
            c.insert("cnf".into(), json!({ member: v }));
            exercise(&f, &sign(&f, &h, &c));
            c.insert("cnf".into(), json!({"x5t#S256": x5t, member: v}));
            accepted += exercise(&f, &sign(&f, &h, &c));
            tokens += 2;
        }
    }
    for v in variants("x5t#S256") {
        let mut c = claims(&f.peer);
        c.insert("cnf".into(), json!({ v: x5t }));
        exercise(&f, &sign(&f, &h, &c));
        tokens += 1;
    }
    assert!(tokens > 2000, "{tokens}");
    // Claims the rules do not read (sub, scp, …) keep the token acceptable.
    assert!(accepted > 500, "{accepted}");
}
