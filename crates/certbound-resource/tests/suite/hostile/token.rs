//! Hostile cases for [`super::cases`] (one group per file, so each stays readable).

use super::*;

/// The hostile cases: Controls, algorithms, keys, signature and shape.
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
    let attacker_jwk = serde_json::to_value(w.attacker.public_jwk().with_kid("evil")).unwrap();
    let attacker_cert = ca::self_signed(&IssueSpec::client("evil"), &w.attacker).unwrap();
    let spki_bytes = w.ec1.public_key_bytes().to_vec();
    let jwk_json = serde_json::to_vec(&w.ec1.public_jwk().with_kid("ec1")).unwrap();
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
    // Controls: the suite must be able to say yes.
    add(
        "control: bound mtls_pop with the right cert",
        "mtls_pop",
        good.clone(),
        Right,
        Default,
        Expect::Ok,
    );
    add(
        "control: bound Bearer with the right cert",
        "Bearer",
        good.clone(),
        Right,
        Default,
        Expect::Ok,
    );
    add(
        "control: unbound Bearer",
        "bearer",
        unbound.clone(),
        Absent,
        Default,
        Expect::Ok,
    );
    add(
        "control: expired 30 s ago, within skew",
        "mtls_pop",
        with(&|c| {
            c.insert("exp".into(), json!(now - 30));
        }),
        Right,
        Default,
        Expect::Ok,
    );
    add(
        "control: application/at+jwt typ",
        "mtls_pop",
        with_header(&|h| {
            h.insert("typ".into(), json!("application/AT+JWT"));
        }),
        Right,
        Default,
        Expect::Ok,
    );
    // Algorithms.
    add(
        "alg none with a signature",
        "mtls_pop",
        token(&header("none", Some("ec1")), &bound(), Signer::Raw("AAAA")),
        Right,
        Default,
        T(TokenError::AlgNone),
    );
    add(
        "alg None (mixed case)",
        "mtls_pop",
        token(&header("None", None), &bound(), Signer::Raw("AAAA")),
        Right,
        Default,
        T(TokenError::AlgNone),
    );
    add(
        "alg none with an empty signature",
        "mtls_pop",
        token(&header("none", None), &bound(), Signer::Raw("")),
        Right,
        Default,
        T(TokenError::NotCompactJws),
    );
    add(
        "HS256 signed with the public key bytes",
        "mtls_pop",
        token(
            &header("HS256", Some("ec1")),
            &bound(),
            Signer::Hmac(&spki_bytes),
        ),
        Right,
        Default,
        T(TokenError::AlgHmac),
    );
    add(
        "HS256 signed with the JWK JSON",
        "mtls_pop",
        token(&header("HS256", None), &bound(), Signer::Hmac(&jwk_json)),
        Right,
        Default,
        T(TokenError::AlgHmac),
    );
    add(
        "HS512",
        "mtls_pop",
        token(
            &header("HS512", Some("ec1")),
            &bound(),
            Signer::Hmac(b"secret"),
        ),
        Right,
        Default,
        T(TokenError::AlgHmac),
    );
    add(
        "RS256 token when only ES256/PS256 are allowed",
        "mtls_pop",
        token(
            &header("RS256", Some("rsa1")),
            &bound(),
            Signer::Key(&w.rsa1, JwsAlgorithm::RS256),
        ),
        Right,
        Default,
        T(TokenError::AlgNotAllowed),
    );
    add(
        "ES384 not in the allowlist",
        "mtls_pop",
        token(&header("ES384", Some("ec1")), &bound(), Signer::Raw("AAAA")),
        Right,
        Default,
        T(TokenError::AlgNotAllowed),
    );
    add(
        "alg in lower case",
        "mtls_pop",
        token(&header("es256", Some("ec1")), &bound(), es(&w.ec1)),
        Right,
        Default,
        T(TokenError::AlgNotAllowed),
    );
    add(
        "alg missing",
        "mtls_pop",
        with_header(&|h| {
            h.remove("alg");
        }),
        Right,
        Default,
        T(TokenError::AlgMissing),
    );
    add(
        "alg not a string",
        "mtls_pop",
        with_header(&|h| {
            h.insert("alg".into(), json!(["ES256"]));
        }),
        Right,
        Default,
        T(TokenError::AlgMissing),
    );
    // Keys.
    add(
        "unknown kid",
        "mtls_pop",
        token(&header("ES256", Some("nope")), &bound(), es(&w.attacker)),
        Right,
        Default,
        T(TokenError::KeyNotFound),
    );
    add(
        "kid not a string",
        "mtls_pop",
        with_header(&|h| {
            h.insert("kid".into(), json!(1));
        }),
        Right,
        Default,
        T(TokenError::KidMalformed),
    );
    add(
        "no kid, two ES256 keys",
        "mtls_pop",
        token(&header("ES256", None), &bound(), es(&w.ec1)),
        Right,
        Default,
        T(TokenError::KeyAmbiguous),
    );
    add(
        "kid of the RSA key with ES256",
        "mtls_pop",
        token(&header("ES256", Some("rsa1")), &bound(), es(&w.ec1)),
        Right,
        Default,
        T(TokenError::KeyAlgMismatch),
    );
    add(
        "PS256 with the EC key's kid",
        "mtls_pop",
        token(
            &header("PS256", Some("ec1")),
            &bound(),
            Signer::Key(&w.rsa1, JwsAlgorithm::PS256),
        ),
        Right,
        Default,
        T(TokenError::KeyAlgMismatch),
    );
    add(
        "jku to an attacker JWKS, attacker kid",
        "mtls_pop",
        {
            let mut h = header("ES256", Some("evil"));
            h.insert("jku".into(), json!("https://attacker.invalid/jwks"));
            token(&h, &bound(), es(&w.attacker))
        },
        Right,
        Default,
        T(TokenError::KeyNotFound),
    );
    add(
        "x5u to an attacker certificate",
        "mtls_pop",
        {
            let mut h = header("ES256", Some("evil"));
            h.insert("x5u".into(), json!("https://attacker.invalid/c.pem"));
            token(&h, &bound(), es(&w.attacker))
        },
        Right,
        Default,
        T(TokenError::KeyNotFound),
    );
    add(
        "embedded attacker jwk, no kid",
        "mtls_pop",
        {
            let mut h = header("ES256", None);
            h.insert("jwk".into(), attacker_jwk.clone());
            token(&h, &bound(), es(&w.attacker))
        },
        Right,
        Default,
        T(TokenError::KeyAmbiguous),
    );
    add(
        "embedded attacker jwk, issuer's kid",
        "mtls_pop",
        {
            let mut h = header("ES256", Some("ec1"));
            h.insert("jwk".into(), attacker_jwk.clone());
            token(&h, &bound(), es(&w.attacker))
        },
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    add(
        "embedded attacker x5c, issuer's kid",
        "mtls_pop",
        {
            let mut h = header("ES256", Some("ec1"));
            h.insert("x5c".into(), json!([b64::encode_std(attacker_cert.der())]));
            token(&h, &bound(), es(&w.attacker))
        },
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    // Signature.
    add(
        "signed by another key under the issuer's kid",
        "mtls_pop",
        token(&header("ES256", Some("ec1")), &bound(), es(&w.attacker)),
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    add(
        "tampered payload",
        "mtls_pop",
        {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            let mut c = bound();
            c.insert("sub".into(), json!("admin"));
            parts[1] = b64::encode(serde_json::to_vec(&c).unwrap());
            parts.join(".")
        },
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    add(
        "tampered signature",
        "mtls_pop",
        {
            let (head, sig) = good.rsplit_once('.').unwrap();
            let mut bytes = b64::decode(sig).unwrap();
            bytes[10] ^= 1;
            format!("{head}.{}", b64::encode(bytes))
        },
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    add(
        "truncated signature",
        "mtls_pop",
        good[..good.len() - 10].to_owned(),
        Right,
        Default,
        T(TokenError::BadSignature),
    );
    add(
        "truncated to two parts",
        "mtls_pop",
        good.rsplit_once('.').unwrap().0.to_owned(),
        Right,
        Default,
        T(TokenError::NotCompactJws),
    );
    add(
        "non-canonical base64url in the signature",
        "mtls_pop",
        {
            // 64 bytes → 86 chars; the last char carries 2 data bits + 4 zero bits.
            let (head, sig) = good.rsplit_once('.').unwrap();
            let last = sig.chars().last().unwrap();
            let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let idx = alphabet.find(last).unwrap();
            let alt = alphabet.as_bytes()[idx | 1] as char;
            format!("{head}.{}{alt}", &sig[..sig.len() - 1])
        },
        Right,
        Default,
        T(TokenError::Base64("signature")),
    );
    add(
        "padding in the signature",
        "mtls_pop",
        format!("{good}=="),
        Right,
        Default,
        T(TokenError::Base64("signature")),
    );
    // Shape.
    add(
        "oversized token",
        "mtls_pop",
        with(&|c| {
            c.insert("pad".into(), json!("x".repeat(17 * 1024)));
        }),
        Right,
        Default,
        T(TokenError::TooLarge),
    );
    add(
        "extra dots",
        "mtls_pop",
        format!("{good}.x"),
        Right,
        Default,
        T(TokenError::NotCompactJws),
    );
    add(
        "empty parts",
        "mtls_pop",
        "..".into(),
        Right,
        Default,
        T(TokenError::NotCompactJws),
    );
    add(
        "empty header part",
        "mtls_pop",
        format!(".{}", good.split_once('.').unwrap().1),
        Right,
        Default,
        T(TokenError::NotCompactJws),
    );
    add(
        "non-base64 header",
        "mtls_pop",
        format!("!!{good}"),
        Right,
        Default,
        T(TokenError::Base64("header")),
    );
    add(
        "standard-alphabet character in the payload (signed)",
        "mtls_pop",
        sign_input(&format!("{}.e30+", b64::encode(hdr_json)), es(&w.ec1)),
        Right,
        Default,
        T(TokenError::Base64("payload")),
    );
    add(
        "header is not JSON",
        "mtls_pop",
        format!(
            "{}.{}",
            b64::encode("not json"),
            good.split_once('.').unwrap().1
        ),
        Right,
        Default,
        T(TokenError::NotJsonObject("header")),
    );
    add(
        "header is a JSON array",
        "mtls_pop",
        format!("{}.{}", b64::encode("[]"), good.split_once('.').unwrap().1),
        Right,
        Default,
        T(TokenError::NotJsonObject("header")),
    );
    add(
        "payload is not JSON (signed)",
        "mtls_pop",
        compact(hdr_json.as_bytes(), b"hello", es(&w.ec1)),
        Right,
        Default,
        T(TokenError::NotJsonObject("payload")),
    );
    add(
        "payload is a JSON string (signed)",
        "mtls_pop",
        compact(hdr_json.as_bytes(), br#""x""#, es(&w.ec1)),
        Right,
        Default,
        T(TokenError::NotJsonObject("payload")),
    );
    v
}
