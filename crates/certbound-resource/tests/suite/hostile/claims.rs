//! Hostile cases for [`super::cases`] (one group per file, so each stays readable).

use super::*;

/// The hostile cases: Duplicate members, header rules and claims.
pub(super) fn cases(w: &World) -> Vec<Case> {
    let iss = w.issuer.issuer.as_str();
    let x5t = w.right.thumbprint().to_base64url();
    let bound = || claims(iss, Some(&x5t));
    let es = |k| Signer::Key(k, JwsAlgorithm::ES256);
    let good = token(&header("ES256", Some("ec1")), &bound(), es(&w.ec1));
    let unbound = token(
        &header("ES256", Some("ec1")),
        &claims(iss, None),
        es(&w.ec1),
    );
    let now = certbound_core::now_unix();
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
    let bound_json = serde_json::to_string(&bound()).unwrap();
    let hdr_json = r#"{"alg":"ES256","typ":"at+jwt","kid":"ec1"}"#;

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
    // Duplicate members.
    add(
        "duplicate alg in the header",
        "mtls_pop",
        compact(
            br#"{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"ec1"}"#,
            bound_json.as_bytes(),
            es(&w.ec1),
        ),
        Right,
        Default,
        T(TokenError::DuplicateMember("header")),
    );
    add(
        "duplicate aud in the payload (signed)",
        "mtls_pop",
        compact(
            hdr_json.as_bytes(),
            bound_json
                .replacen('{', r#"{"aud":"api://other","#, 1)
                .as_bytes(),
            es(&w.ec1),
        ),
        Right,
        Default,
        T(TokenError::DuplicateMember("payload")),
    );
    add(
        "duplicate x5t#S256 inside cnf (signed)",
        "mtls_pop",
        compact(
            hdr_json.as_bytes(),
            bound_json
                .replacen(
                    r#""cnf":{"#,
                    &format!(r#""cnf":{{"x5t#S256":"{}","#, w.other.thumbprint()),
                    1,
                )
                .as_bytes(),
            es(&w.ec1),
        ),
        Right,
        Default,
        T(TokenError::DuplicateMember("payload")),
    );
    // Header rules.
    add(
        "unknown crit",
        "mtls_pop",
        with_header(&|h| {
            h.insert("crit".into(), json!(["x-bank"]));
            h.insert("x-bank".into(), json!(1));
        }),
        Right,
        Default,
        T(TokenError::Crit),
    );
    add(
        "empty crit",
        "mtls_pop",
        with_header(&|h| {
            h.insert("crit".into(), json!([]));
        }),
        Right,
        Default,
        T(TokenError::Crit),
    );
    add(
        "crit not an array",
        "mtls_pop",
        with_header(&|h| {
            h.insert("crit".into(), json!("exp"));
        }),
        Right,
        Default,
        T(TokenError::Crit),
    );
    add(
        "typ JOSE",
        "mtls_pop",
        with_header(&|h| {
            h.insert("typ".into(), json!("JOSE"));
        }),
        Right,
        Default,
        T(TokenError::TypNotAccepted),
    );
    add(
        "typ dpop+jwt",
        "mtls_pop",
        with_header(&|h| {
            h.insert("typ".into(), json!("dpop+jwt"));
        }),
        Right,
        Default,
        T(TokenError::TypNotAccepted),
    );
    add(
        "typ missing",
        "mtls_pop",
        with_header(&|h| {
            h.remove("typ");
        }),
        Right,
        Default,
        T(TokenError::TypMissing),
    );
    add(
        "typ not a string",
        "mtls_pop",
        with_header(&|h| {
            h.insert("typ".into(), json!(1));
        }),
        Right,
        Default,
        T(TokenError::TypNotAccepted),
    );
    // Claims.
    add(
        "expired",
        "mtls_pop",
        with(&|c| {
            c.insert("exp".into(), json!(now - 3600));
        }),
        Right,
        Default,
        T(TokenError::Expired),
    );
    add(
        "expired just beyond the skew",
        "mtls_pop",
        with(&|c| {
            c.insert("exp".into(), json!(now - 61));
        }),
        Right,
        Default,
        T(TokenError::Expired),
    );
    add(
        "exp missing",
        "mtls_pop",
        with(&|c| {
            c.remove("exp");
        }),
        Right,
        Default,
        T(TokenError::ClaimMissing("exp")),
    );
    add(
        "exp a string",
        "mtls_pop",
        with(&|c| {
            c.insert("exp".into(), json!((now + 600).to_string()));
        }),
        Right,
        Default,
        T(TokenError::ClaimMalformed("exp")),
    );
    add(
        "not yet valid",
        "mtls_pop",
        with(&|c| {
            c.insert("nbf".into(), json!(now + 3600));
        }),
        Right,
        Default,
        T(TokenError::NotYetValid),
    );
    add(
        "issued in the future",
        "mtls_pop",
        with(&|c| {
            c.insert("iat".into(), json!(now + 3600));
        }),
        Right,
        Default,
        T(TokenError::IssuedInFuture),
    );
    add(
        "wrong iss",
        "mtls_pop",
        with(&|c| {
            c.insert("iss".into(), json!("https://evil.example/v2.0"));
        }),
        Right,
        Default,
        T(TokenError::IssuerNotAccepted),
    );
    add(
        "iss with a trailing slash",
        "mtls_pop",
        with(&|c| {
            c.insert("iss".into(), json!(format!("{iss}/")));
        }),
        Right,
        Default,
        T(TokenError::IssuerNotAccepted),
    );
    add(
        "iss missing",
        "mtls_pop",
        with(&|c| {
            c.remove("iss");
        }),
        Right,
        Default,
        T(TokenError::ClaimMissing("iss")),
    );
    add(
        "wrong aud",
        "mtls_pop",
        with(&|c| {
            c.insert("aud".into(), json!("api://other"));
        }),
        Right,
        Default,
        T(TokenError::AudienceNotAccepted),
    );
    add(
        "aud array without ours",
        "mtls_pop",
        with(&|c| {
            c.insert("aud".into(), json!(["api://a", "api://b"]));
        }),
        Right,
        Default,
        T(TokenError::AudienceNotAccepted),
    );
    add(
        "aud missing",
        "mtls_pop",
        with(&|c| {
            c.remove("aud");
        }),
        Right,
        Default,
        T(TokenError::ClaimMissing("aud")),
    );
    add(
        "aud a number",
        "mtls_pop",
        with(&|c| {
            c.insert("aud".into(), json!(7));
        }),
        Right,
        Default,
        T(TokenError::ClaimMalformed("aud")),
    );
    // Binding.
    add(
        "cnf with another certificate's hash",
        "mtls_pop",
        good.clone(),
        Other,
        Default,
        T(TokenError::ThumbprintMismatch),
    );
    add(
        "cnf hash of another cert, Bearer",
        "Bearer",
        with(&|c| {
            c.insert(
                "cnf".into(),
                json!({"x5t#S256": w.other.thumbprint().to_base64url()}),
            );
        }),
        Right,
        Default,
        T(TokenError::ThumbprintMismatch),
    );
    add(
        "cnf a string",
        "mtls_pop",
        with(&|c| {
            c.insert("cnf".into(), json!(x5t));
        }),
        Right,
        Default,
        T(TokenError::CnfMalformed),
    );
    add(
        "DPoP-bound token (cnf.jkt) sent as mtls_pop",
        "mtls_pop",
        with(&|c| {
            c.insert("cnf".into(), json!({"jkt": x5t}));
        }),
        Right,
        Default,
        T(TokenError::DpopBoundToken),
    );
    add(
        "cnf hash of the wrong length",
        "mtls_pop",
        with(&|c| {
            c.insert("cnf".into(), json!({"x5t#S256": &x5t[..40]}));
        }),
        Right,
        Default,
        T(TokenError::CnfMalformed),
    );
    add(
        "cnf hash padded",
        "mtls_pop",
        with(&|c| {
            c.insert("cnf".into(), json!({"x5t#S256": format!("{x5t}=")}));
        }),
        Right,
        Default,
        T(TokenError::CnfMalformed),
    );
    add(
        "bound token, no certificate",
        "mtls_pop",
        good.clone(),
        Absent,
        Default,
        T(TokenError::NoClientCertificate),
    );
    add(
        "bound token, Bearer, no certificate",
        "Bearer",
        good.clone(),
        Absent,
        Default,
        T(TokenError::NoClientCertificate),
    );
    add(
        "bound token, Bearer, another certificate",
        "Bearer",
        good.clone(),
        Other,
        Default,
        T(TokenError::ThumbprintMismatch),
    );
    add(
        "unbound token with mtls_pop",
        "mtls_pop",
        unbound.clone(),
        Right,
        Default,
        T(TokenError::PopWithoutCnf),
    );
    add(
        "unbound token where binding is required",
        "Bearer",
        unbound.clone(),
        Right,
        RequireBinding,
        T(TokenError::BindingRequired),
    );
    v
}
