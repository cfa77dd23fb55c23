//! The development authority's client-assertion check (`private_key_jwt`, RFC 7523) on
//! structure-aware assertions: header (`alg`, `x5t#S256`, `x5t`, `x5c`, `kid`, `crit` …) and
//! payload (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti` …) are arbitrary JSON overlaid on
//! a valid assertion's, usually signed with the registered client certificate's key so the
//! claim rules run. Every input is refused or accepted, never a panic.
#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use certbound_authority::AssertionCheck;
use certbound_authority::{AuthMethod, CertAuthMethod, ClientRegistration};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, JwsAlgorithm, KeyKind};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const CLIENT: &str = "fuzz-client";
const TOKEN_ENDPOINT: &str = "https://authority.test/tenant/oauth2/v2.0/token";

struct Fixture {
    client: CertifiedKey,
    check: AssertionCheck,
    header: Map<String, Value>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let client = ca::self_signed_certified_key(&IssueSpec::client(CLIENT), KeyKind::EcP256)
            .expect("cert");
        let ca = ca::DevCa::generate("fuzz CA").expect("ca");
        let reg = ClientRegistration::with_certificate(
            CLIENT,
            client.leaf().clone(),
            CertAuthMethod::PrivateKeyJwt,
        );
        let check = AssertionCheck::new(
            &[reg],
            ca.cert().clone(),
            "tenant",
            vec![
                TOKEN_ENDPOINT.to_owned(),
                "https://authority.test/tenant/v2.0".to_owned(),
            ],
        )
        .expect("registry");
        let header = common::obj(json!({
            "alg": "ES256", "typ": "JWT", "x5t#S256": client.thumbprint().to_base64url(),
        }));
        let f = Fixture {
            client,
            check,
            header,
        };
        // The base assertion is accepted: the fuzzer starts past the signature.
        let base = common::Jws {
            header: common::Part::Json(common::Overlay::none()),
            payload: common::Part::Json(common::Overlay::none()),
            signature: common::Signature::Real,
            force_real: true,
        };
        let jwt = base.build(
            &f.header,
            &payload(certbound_core::now_unix()),
            f.client.key(),
            JwsAlgorithm::ES256,
        );
        assert_eq!(
            f.check.check(&jwt, Some(CLIENT)).ok(),
            Some(AuthMethod::PrivateKeyJwt)
        );
        f
    })
}

fn payload(now: i64) -> Map<String, Value> {
    common::obj(json!({
        "iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "exp": now + 300, "nbf": now,
        "iat": now, "jti": "a2b4c6d8-0000-4000-8000-000000000001",
    }))
}

#[derive(Debug, Arbitrary)]
struct Input {
    jws: common::Jws,
    client_id: Option<String>,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let jwt = input.jws.build(
        &f.header,
        &payload(certbound_core::now_unix()),
        f.client.key(),
        JwsAlgorithm::ES256,
    );
    for id in [Some(CLIENT), input.client_id.as_deref(), None] {
        if let Err(e) = f.check.check(&jwt, id) {
            let _ = (e.to_string(), format!("{e:?}"));
        }
    }
});
