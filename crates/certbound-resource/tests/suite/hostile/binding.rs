//! Hostile cases for [`super::cases`] (one group per file, so each stays readable).

use super::*;

/// The hostile cases: Binding, headers, non-ASCII text and multi-key `cnf`.
pub(super) fn cases(w: &World) -> Vec<Case> {
    let iss = w.issuer.issuer.as_str();
    let x5t = w.right.thumbprint().to_base64url();
    let bound = || claims(iss, Some(&x5t));
    let es = |k| Signer::Key(k, JwsAlgorithm::ES256);
    let good = token(&header("ES256", Some("ec1")), &bound(), es(&w.ec1));
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = bound();
        f(&mut c);
        token(&header("ES256", Some("ec1")), &c, es(&w.ec1))
    };
    let with_header = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut h = header("ES256", Some("ec1"));
        f(&mut h);
        token(&h, &bound(), es(&w.ec1))
    };
    let attacker_jwk = serde_json::to_value(w.attacker.public_jwk().with_kid("evil")).unwrap();

    let mut v: Vec<Case> = Vec::new();
    let mut add = |name, scheme: &str, tok: String, cert, variant, expect| {
        v.push(Case {
            name,
            authorization: if scheme.is_empty() {
                tok
            } else {
                format!("{scheme} {tok}")
            },
            cert,
            variant,
            expect,
        })
    };
    use Cert::*;
    use Expect::Token as T;
    use Variant::*;
    // Headers.
    add(
        "wrong scheme (Basic)",
        "Basic",
        good.clone(),
        Right,
        Default,
        Expect::Missing,
    );
    add(
        "DPoP scheme without a DPoP proof header",
        "DPoP",
        good.clone(),
        Right,
        Default,
        Expect::DpopMissing,
    );
    add(
        "scheme without a token",
        "",
        "Bearer".into(),
        Right,
        Default,
        Expect::InvalidRequest,
    );
    add(
        "two tokens",
        "Bearer",
        format!("{good} {good}"),
        Right,
        Default,
        Expect::InvalidRequest,
    );
    // Non-ASCII text in header members and claims (the validator once sliced `alg` and
    // `typ` at byte offsets and panicked inside a multi-byte character): a 401 naming the
    // rule, never a dropped connection.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    for (member, value, expect) in [
        ("alg", json!("€"), T(TokenError::AlgNotAllowed)),
        ("alg", json!("aé"), T(TokenError::AlgNotAllowed)),
        ("alg", json!("H€"), T(TokenError::AlgNotAllowed)),
        ("alg", json!("é"), T(TokenError::AlgNotAllowed)),
        ("alg", json!("HS€"), T(TokenError::AlgHmac)),
        ("alg", json!("ES256€"), T(TokenError::AlgNotAllowed)),
        ("typ", json!("application€"), T(TokenError::TypNotAccepted)),
        (
            "typ",
            json!("applicatio€/at+jwt"),
            T(TokenError::TypNotAccepted),
        ),
        ("typ", json!("application/€"), T(TokenError::TypNotAccepted)),
        ("typ", json!("€"), T(TokenError::TypNotAccepted)),
        ("typ", json!("at+jwt𝄞"), T(TokenError::TypNotAccepted)),
        ("kid", json!("€"), T(TokenError::KeyNotFound)),
        ("kid", json!("ec1é"), T(TokenError::KeyNotFound)),
        ("crit", json!(["€"]), T(TokenError::Crit)),
        ("crit", json!(["é", "€"]), T(TokenError::Crit)),
        ("cty", json!("€"), Expect::Ok),
        ("x5t#S256", json!("é𝄞"), Expect::Ok),
        ("€", json!("€"), Expect::Ok),
    ] {
        let mut extra = serde_json::Map::new();
        if member == "crit"
            && let Some(names) = value.as_array()
        {
            for n in names {
                extra.insert(n.as_str().unwrap().to_owned(), json!("x"));
            }
        }
        add(
            leak(format!("non-ASCII header {member} {value}")),
            "mtls_pop",
            with_header(&|h| {
                h.insert(member.into(), value.clone());
                h.extend(extra.clone());
            }),
            Right,
            Default,
            expect,
        );
    }
    for (claim, value, expect) in [
        (
            "iss",
            json!(format!("{iss}€")),
            T(TokenError::IssuerNotAccepted),
        ),
        ("iss", json!("é"), T(TokenError::IssuerNotAccepted)),
        (
            "aud",
            json!("api://orders€"),
            T(TokenError::AudienceNotAccepted),
        ),
        ("aud", json!(["€", "é"]), T(TokenError::AudienceNotAccepted)),
        (
            "cnf",
            json!({"x5t#S256": "€".repeat(14)}),
            T(TokenError::CnfMalformed),
        ),
        (
            "cnf",
            json!({"x5t#S256": format!("{}é", &x5t[..41])}),
            T(TokenError::CnfMalformed),
        ),
        (
            "cnf",
            json!({"jkt": "𝄞".repeat(11)}),
            T(TokenError::CnfMalformed),
        ),
        ("cnf", json!({"kid": "é"}), T(TokenError::CnfMalformed)),
        ("cnf", json!({"x5t#S256": x5t, "€": "é"}), Expect::Ok),
        ("jti", json!("€"), Expect::Ok),
        ("scp", json!("orders.read é€"), Expect::Ok),
        ("roles", json!(["𝄞"]), Expect::Ok),
        ("azp", json!("é"), Expect::Ok),
        ("tid", json!("€"), Expect::Ok),
        ("ver", json!("2.0€"), Expect::Ok),
    ] {
        add(
            leak(format!("non-ASCII claim {claim} {value}")),
            "mtls_pop",
            with(&|c| {
                c.insert(claim.into(), value.clone());
            }),
            Right,
            Default,
            expect,
        );
    }
    // RFC 7800 §3.1: a `cnf` represents a single proof-of-possession key. A second key member
    // next to `x5t#S256`/`jkt` was once ignored (the token accepted); members that name no
    // key are still ignored (Entra's `xms_ksl`).
    let jwk = attacker_jwk.clone();
    let other_x5t = w.other.thumbprint().to_base64url();
    for (cnf, scheme, expect) in [
        (
            json!({"x5t#S256": x5t, "jwk": jwk}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, jwk".into())),
        ),
        (
            json!({"x5t#S256": x5t, "jwk": jwk}),
            "Bearer",
            T(TokenError::CnfMultipleKeys("x5t#S256, jwk".into())),
        ),
        (
            json!({"jwk": jwk, "x5t#S256": x5t}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, jwk".into())),
        ),
        (
            json!({"jkt": x5t, "jwk": jwk}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("jkt, jwk".into())),
        ),
        (
            json!({"x5t#S256": x5t, "jkt": other_x5t}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, jkt".into())),
        ),
        (
            json!({"x5t#S256": x5t, "kid": other_x5t}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, kid".into())),
        ),
        (
            json!({"x5t#S256": x5t, "jku": "https://attacker.invalid/jwks"}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, jku".into())),
        ),
        (
            json!({"x5t#S256": x5t, "jwe": "a.b.c.d.e"}),
            "mtls_pop",
            T(TokenError::CnfMultipleKeys("x5t#S256, jwe".into())),
        ),
        (
            json!({"jwk": jwk}),
            "mtls_pop",
            T(TokenError::CnfUnsupported("jwk")),
        ),
        (
            json!({"jwk": jwk}),
            "Bearer",
            T(TokenError::CnfUnsupported("jwk")),
        ),
        (
            json!({"jwe": "a.b.c.d.e"}),
            "mtls_pop",
            T(TokenError::CnfUnsupported("jwe")),
        ),
        (
            json!({"jku": "https://attacker.invalid/jwks", "xms_ksl": "sw"}),
            "Bearer",
            T(TokenError::CnfUnsupported("jku")),
        ),
        (
            json!({"xms_ksl": "sw"}),
            "Bearer",
            T(TokenError::CnfMalformed),
        ),
        (
            json!({"x5t#S256": x5t, "xms_ksl": "sw"}),
            "mtls_pop",
            Expect::Ok,
        ),
        (
            json!({"x5t#S256": x5t, "x5t": "ignored", "ext": {"jwk": 1}}),
            "Bearer",
            Expect::Ok,
        ),
    ] {
        add(
            leak(format!("cnf {cnf} with {scheme}")),
            scheme,
            with(&|c| {
                c.insert("cnf".into(), cnf.clone());
            }),
            Right,
            Default,
            expect,
        );
    }
    v
}
