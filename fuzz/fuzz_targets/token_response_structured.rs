//! The client's checks of a token-endpoint response on structure-aware bodies: a JSON object
//! with hostile values for `access_token`, `token_type`, `expires_in`, `ext_expires_in`,
//! `refresh_in` … overlaid on a valid response, whose access token is itself a JWT built from
//! arbitrary header and claims (often carrying the right `cnf` for the request), checked as
//! an unbound, a certificate-bound, a `Pop` and a `DPoP` request. Errors, never panics.
#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use certbound_core::ca::{self, IssueSpec};
use certbound_core::pop::ProofKey;
use certbound_core::{CertifiedKey, JwsAlgorithm, KeyKind, PrivateKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

struct Fixture {
    cert: CertifiedKey,
    proof_key: ProofKey,
    issuer: PrivateKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        cert: ca::self_signed_certified_key(&IssueSpec::client("fuzz"), KeyKind::EcP256)
            .expect("cert"),
        proof_key: ProofKey::generate().expect("proof key"),
        issuer: PrivateKey::generate(KeyKind::EcP256).expect("key"),
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// The access token: a JWT from arbitrary parts (else the body overlay decides).
    token: common::Jws,
    /// Which `cnf` the token's base claims carry.
    cnf: u8,
    body: common::Overlay,
    raw_body: Option<String>,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let now = certbound_core::now_unix();
    let cnf = match input.cnf % 4 {
        0 => json!({"x5t#S256": f.cert.thumbprint().to_base64url()}),
        1 => json!({"kid": f.proof_key.thumbprint(), "xms_ksl": "sw"}),
        2 => json!({"jkt": f.proof_key.thumbprint()}),
        _ => Value::Null,
    };
    let header = common::obj(json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}));
    let mut claims = common::obj(json!({"aud": "api://fuzz", "exp": now + 3600, "iat": now}));
    if !cnf.is_null() {
        claims.insert("cnf".into(), cnf);
    }
    let token = input
        .token
        .build(&header, &claims, &f.issuer, JwsAlgorithm::ES256);
    let base = common::obj(json!({
        "access_token": token, "token_type": "mtls_pop", "expires_in": 3599,
        "ext_expires_in": 3599, "refresh_in": 1800,
    }));
    let body = match &input.raw_body {
        Some(raw) => raw.as_bytes().to_vec(),
        None => serde_json::to_vec(&input.body.apply(&base)).unwrap_or_default(),
    };
    let _ = certbound_client::check_token_response(&body, None, false);
    let _ = certbound_client::check_token_response(&body, Some(&f.cert), false);
    let _ = certbound_client::check_token_response(&body, Some(&f.cert), true);
    for dpop in [false, true] {
        let _ =
            certbound_client::check_key_bound_token_response(&body, &f.proof_key, dpop);
    }
});
