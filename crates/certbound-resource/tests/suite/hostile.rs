//! The hostile-token suite: every case refused with the right description, both directly
//! against the validator and over real TLS against the layer; no panic.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_resource::Presented;
use std::net::SocketAddr;
use std::sync::Arc;

use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey, b64};
use certbound_resource::transport::{PeerCertificate, TlsInfo};
use certbound_resource::{DpopError, ProtocolScheme, Rejection, TokenError, Validator};
use common::*;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cert {
    Right,
    Other,
    Absent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// ES256 and PS256 allowed, binding not required.
    Default,
    /// `require_binding(true)`.
    RequireBinding,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Ok,
    Token(TokenError),
    Missing,
    InvalidRequest,
    DpopMissing,
}

struct Case {
    name: &'static str,
    authorization: String,
    cert: Cert,
    variant: Variant,
    expect: Expect,
}

struct World {
    pki: Pki,
    issuer: TestIssuer,
    ec1: PrivateKey,
    rsa1: PrivateKey,
    attacker: PrivateKey,
    right: CertifiedKey,
    other: CertifiedKey,
    default: Validator,
    require_binding: Validator,
}

async fn world() -> World {
    certbound_core::tls::install_default_provider();
    let pki = Pki::new();
    let ec1 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let ec2 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let rsa1 = PrivateKey::generate(KeyKind::Rsa2048).unwrap();
    let attacker = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwks = Jwks {
        keys: vec![
            ec1.public_jwk().with_kid("ec1"),
            ec2.public_jwk().with_kid("ec2"),
            rsa1.public_jwk().with_kid("rsa1"),
        ],
    };
    let issuer = TestIssuer::start(&pki, jwks).await;
    let build = |require: bool| {
        Validator::builder()
            .issuer(issuer.issuer.clone())
            .audience(AUD)
            .token_rules(
                certbound_resource::TokenRules::default()
                    .algorithms(&[JwsAlgorithm::ES256, JwsAlgorithm::PS256]),
            )
            .trust_anchors(pki.anchors.clone())
            .keys(
                certbound_resource::KeyFetching::default()
                    .min_refetch_interval(std::time::Duration::from_secs(3600)),
            )
            .require_binding(require)
            .build()
    };
    let default = build(false).await.unwrap();
    let require_binding = build(true).await.unwrap();
    let right = pki.client_cert("right");
    let other = pki.client_cert("other");
    World {
        pki,
        issuer,
        ec1,
        rsa1,
        attacker,
        right,
        other,
        default,
        require_binding,
    }
}

fn cases(w: &World) -> Vec<Case> {
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

fn tls_info(w: &World, cert: Cert) -> TlsInfo {
    let id = match cert {
        Cert::Right => Some(&w.right),
        Cert::Other => Some(&w.other),
        Cert::Absent => None,
    };
    TlsInfo {
        peer: id.map(|c| PeerCertificate {
            chain: Arc::from(c.rustls_chain()),
            thumbprint: c.thumbprint(),
        }),
        remote_addr: "127.0.0.1:1".parse().unwrap(),
        listen_addr: None,
    }
}

fn check_direct(case: &Case, got: Result<certbound_resource::ValidatedToken, Rejection>) {
    match (&case.expect, got) {
        (Expect::Ok, Ok(_)) => {}
        (Expect::Token(e), Err(Rejection::InvalidToken { error, .. })) if &error == e => {}
        (Expect::Missing, Err(Rejection::MissingToken)) => {}
        (Expect::InvalidRequest, Err(Rejection::InvalidRequest(_))) => {}
        (Expect::DpopMissing, Err(Rejection::InvalidDpopProof(DpopError::Missing))) => {}
        (want, got) => panic!("case `{}`: expected {want:?}, got {got:?}", case.name),
    }
}

#[tokio::test]
async fn hostile_tokens_against_the_validator() {
    let w = world().await;
    let cases = cases(&w);
    let refusals = cases.iter().filter(|c| c.expect != Expect::Ok).count();
    assert!(refusals >= 40, "only {refusals} hostile cases");
    for case in &cases {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&case.authorization).unwrap(),
        );
        let v = match case.variant {
            Variant::Default => &w.default,
            Variant::RequireBinding => &w.require_binding,
        };
        let got = v
            .validate(&Presented::headers(&headers).tls(Some(&tls_info(&w, case.cert))))
            .await;
        if let Err(r) = &got {
            // Never echo the token in what goes back to the client.
            if case.authorization.len() > 40 {
                let tail = &case.authorization[case.authorization.len() - 20..];
                for c in r.challenges() {
                    assert!(!c.contains(tail), "case `{}` echoes the token", case.name);
                }
                assert!(
                    !r.to_string().contains(tail),
                    "case `{}` echoes the token",
                    case.name
                );
            }
        }
        check_direct(case, got);
    }
}

async fn call(w: &World, addr: SocketAddr, case: &Case) -> reqwest::Response {
    let id = match case.cert {
        Cert::Right => Some(&w.right),
        Cert::Other => Some(&w.other),
        Cert::Absent => None,
    };
    w.pki
        .http(id)
        .get(format!("https://127.0.0.1:{}/whoami", addr.port()))
        .header(header::AUTHORIZATION, &case.authorization)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn hostile_tokens_over_tls_against_the_layer() {
    let w = world().await;
    let api = serve_api(&w.pki, w.default.clone()).await;
    let api_rb = serve_api(&w.pki, w.require_binding.clone()).await;
    for case in cases(&w) {
        let addr = match case.variant {
            Variant::Default => api,
            Variant::RequireBinding => api_rb,
        };
        let resp = call(&w, addr, &case).await;
        let status = resp.status().as_u16();
        let challenges: Vec<String> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = resp.text().await.unwrap();
        let tail = &case.authorization[case.authorization.len().saturating_sub(20)..];
        assert!(
            case.authorization.len() <= 40 || !body.contains(tail) || case.expect == Expect::Ok,
            "case `{}` echoes the token",
            case.name
        );
        match &case.expect {
            Expect::Ok => {
                assert_eq!(status, 200, "case `{}`: {body}", case.name);
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["sub"], "app-1");
            }
            Expect::Token(e) => {
                assert_eq!(status, 401, "case `{}`: {body}", case.name);
                let scheme = if case.authorization[..6].eq_ignore_ascii_case("bearer") {
                    "Bearer"
                } else {
                    "mtls_pop"
                };
                assert_eq!(
                    challenges,
                    vec![format!(
                        r#"{scheme} error="invalid_token", error_description="{e}""#
                    )],
                    "case `{}`",
                    case.name
                );
            }
            Expect::Missing => {
                assert_eq!(status, 401, "case `{}`", case.name);
                assert_eq!(
                    challenges,
                    vec![
                        "Bearer".to_owned(),
                        "mtls_pop".to_owned(),
                        r#"DPoP algs="ES256 ES384 RS256 PS256""#.to_owned(),
                        "PoP".to_owned()
                    ],
                    "case `{}`",
                    case.name
                );
            }
            Expect::DpopMissing => {
                assert_eq!(status, 401, "case `{}`", case.name);
                assert_eq!(
                    challenges,
                    vec![
                        r#"DPoP error="invalid_dpop_proof", error_description="DPoP proof header missing", algs="ES256 ES384 RS256 PS256""#
                    ],
                    "case `{}`",
                    case.name
                );
            }
            Expect::InvalidRequest => {
                assert_eq!(status, 400, "case `{}`", case.name);
                assert!(
                    challenges[0].starts_with(r#"Bearer error="invalid_request""#),
                    "case `{}`",
                    case.name
                );
            }
        }
    }
    // No Authorization header at all.
    let resp = w
        .pki
        .http(Some(&w.right))
        .get(format!("https://127.0.0.1:{}/whoami", api.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenges: Vec<_> = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        vec![
            "Bearer",
            "mtls_pop",
            r#"DPoP algs="ES256 ES384 RS256 PS256""#,
            "PoP"
        ]
    );
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited_and_single_flight() {
    let w = world().await;
    let iss = w.issuer.issuer.clone();
    assert_eq!(w.issuer.jwks_fetches(), 2, "one load per validator");
    let x5t = w.right.thumbprint();
    // 20 concurrent requests with unknown kids: exactly one refetch.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let v = w.default.clone();
        let kid = format!("unknown-{i}");
        let t = token(
            &header("ES256", Some(&kid)),
            &claims(&iss, Some(&x5t.to_base64url())),
            Signer::Key(&w.attacker, JwsAlgorithm::ES256),
        );
        tasks.push(tokio::spawn(async move {
            v.validate(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&x5t)))
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.unwrap_err().token_error(), Some(&TokenError::KeyNotFound));
    }
    assert_eq!(w.issuer.jwks_fetches(), 3);
    // The issuer rotates in a new key: within the interval, no further fetch happens.
    let ec3 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    w.issuer.set_jwks(Jwks {
        keys: vec![
            w.ec1.public_jwk().with_kid("ec1"),
            ec3.public_jwk().with_kid("ec3"),
        ],
    });
    let t3 = token(
        &header("ES256", Some("ec3")),
        &claims(&iss, Some(&x5t.to_base64url())),
        Signer::Key(&ec3, JwsAlgorithm::ES256),
    );
    let r = w
        .default
        .validate(&Presented::token(ProtocolScheme::MtlsPop, &t3).peer(Some(&x5t)))
        .await;
    assert_eq!(r.unwrap_err().token_error(), Some(&TokenError::KeyNotFound));
    assert_eq!(w.issuer.jwks_fetches(), 3);

    // A validator with no minimum interval picks the rotated key up, with one fetch for
    // many concurrent requests.
    let eager = Validator::builder()
        .issuer(iss.clone())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone())
        .keys(
            certbound_resource::KeyFetching::default()
                .min_refetch_interval(std::time::Duration::ZERO),
        )
        .build()
        .await
        .unwrap();
    let ec4 = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let before = w.issuer.jwks_fetches();
    w.issuer.set_jwks(Jwks {
        keys: vec![ec4.public_jwk().with_kid("ec4")],
    });
    let t4 = token(
        &header("ES256", Some("ec4")),
        &claims(&iss, Some(&x5t.to_base64url())),
        Signer::Key(&ec4, JwsAlgorithm::ES256),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let v = eager.clone();
        let t = t4.clone();
        tasks.push(tokio::spawn(async move {
            v.validate(&Presented::token(ProtocolScheme::MtlsPop, &t).peer(Some(&x5t)))
                .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(w.issuer.jwks_fetches(), before + 1, "single-flight refetch");
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_refused() {
    let w = world().await;
    w.issuer
        .set_advertised_issuer("https://someone-else.example/v2.0");
    let err = Validator::builder()
        .issuer(w.issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(w.pki.anchors.clone())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected exactly"), "{err}");
}

#[tokio::test]
async fn untrusted_issuer_tls_is_refused() {
    let w = world().await;
    let err = Validator::builder()
        .issuer(w.issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(certbound_core::tls::TrustAnchors::default())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, certbound_resource::BuildError::Discovery { .. }),
        "{err}"
    );
}
