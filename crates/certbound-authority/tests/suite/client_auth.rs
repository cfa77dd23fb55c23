//! Client authentication against hostile certificates and method confusion, over real
//! TLS on loopback: `tls_client_auth` subject DN and SAN matching (RFC 8705 §2.1.2), the
//! registered methods being the only ones accepted, and assertion `jti`s surviving a
//! restart.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::net::IpAddr;

use certbound_authority::{
    AuthMethod, AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority,
    TlsClientAuthSubject,
};
use certbound_core::ca::DevCa;
use certbound_core::{Certificate, CertifiedKey, JwsAlgorithm, KeyKind, PrivateKey, now_unix};
use common::*;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

const SCOPE: &str = "api://orders/.default";
const SECRET: &str = "correct-horse-battery-staple";

/// A client certificate with exactly this subject (RDNs in DER order) and these SANs,
/// issued by `ca` (or self-signed when `ca` is `None`).
fn mint(ca: Option<&DevCa>, dn: &[(DnType, &str)], sans: Vec<SanType>) -> CertifiedKey {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    for (t, v) in dn {
        d.push(t.clone(), *v);
    }
    p.distinguished_name = d;
    p.subject_alt_names = sans;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let kp = KeyPair::generate().unwrap();
    let key = PrivateKey::from_pem(kp.serialize_pem().as_bytes())
        .unwrap()
        .unwrap();
    match ca {
        Some(ca) => {
            let ca_key = KeyPair::from_pem(&ca.key().to_pkcs8_pem()).unwrap();
            let der = rustls::pki_types::CertificateDer::from(ca.cert().der().to_vec());
            let issuer = Issuer::from_ca_cert_der(&der, ca_key).unwrap();
            let c = p.signed_by(&kp, &issuer).unwrap();
            let leaf = Certificate::from_der(c.der().to_vec(), "test leaf").unwrap();
            CertifiedKey::new(vec![leaf, ca.cert().clone()], key, "test").unwrap()
        }
        None => {
            let c = p.self_signed(&kp).unwrap();
            let leaf = Certificate::from_der(c.der().to_vec(), "test leaf").unwrap();
            CertifiedKey::new(vec![leaf], key, "test").unwrap()
        }
    }
}

fn ca(env: &Env) -> &DevCa {
    env.running.authority().ca()
}

fn dns(n: &str) -> SanType {
    SanType::DnsName(n.try_into().unwrap())
}

/// A token request authenticated by the TLS certificate alone.
async fn by_mtls(env: &Env, cert: &CertifiedKey, client_id: &str) -> Reply {
    let url = env.running.token_endpoint().to_owned();
    env.post(
        &url,
        Some(cert),
        &[],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", SCOPE),
        ],
    )
    .await
}

fn assert_invalid_client(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert_eq!(r.error(), "invalid_client", "{what}: {}", r.text);
    assert!(r.body.get("access_token").is_none(), "{what}");
}

fn assert_bound_to(r: &Reply, cert: &CertifiedKey, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(
        c["cnf"]["x5t#S256"],
        cert.thumbprint().to_base64url(),
        "{what}"
    );
}

#[tokio::test]
async fn a_comma_in_a_common_name_does_not_pass_for_the_registered_dn() {
    let env = start().await;
    // The victim's certificate: three RDNs in DER order CN, O, C (its display string,
    // which the old comparison used, is `CN=victim-app, O=Contoso, C=DE`).
    let victim = mint(
        Some(ca(&env)),
        &[
            (DnType::CommonName, "victim-app"),
            (DnType::OrganizationName, "Contoso"),
            (DnType::CountryName, "DE"),
        ],
        vec![],
    );
    env.running
        .register(ClientRegistration::with_certificate(
            "victim",
            victim.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap();
    // Stored in RFC 4514 form (RDNs last to first, no spaces).
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.running.authority().dir().join("authority.json")).unwrap(),
    )
    .unwrap();
    let rec = file["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "victim")
        .unwrap();
    assert_eq!(
        rec["tls_client_auth_subject_dn"],
        "C=DE,O=Contoso,CN=victim-app"
    );

    // The attacker's certificate, from the same CA: one CN holding the victim's subject
    // as text (the reported spoof: its display string equals the victim's), and variants.
    for text in [
        "victim-app, O=Contoso, C=DE",
        "victim-app,O=Contoso,C=DE",
        "C=DE,O=Contoso,CN=victim-app",
    ] {
        let spoof = mint(Some(ca(&env)), &[(DnType::CommonName, text)], vec![]);
        assert_eq!(
            spoof.leaf().subject() == victim.leaf().subject(),
            text == "victim-app, O=Contoso, C=DE",
            "the display strings collide for the reported spoof"
        );
        assert_invalid_client(&by_mtls(&env, &spoof, "victim").await, text);
    }
    // The same RDNs in the other order are another name.
    let reordered = mint(
        Some(ca(&env)),
        &[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Contoso"),
            (DnType::CommonName, "victim-app"),
        ],
        vec![],
    );
    assert_invalid_client(&by_mtls(&env, &reordered, "victim").await, "reordered");

    // Registered as text, as the report wrote it: the same checks.
    env.running
        .register(ClientRegistration::with_tls_client_auth(
            "victim-dn",
            TlsClientAuthSubject::SubjectDn("CN=victim-app, O=Contoso, C=DE".into()),
        ))
        .unwrap();
    let spoof = mint(
        Some(ca(&env)),
        &[(DnType::CommonName, "victim-app, O=Contoso, C=DE")],
        vec![],
    );
    assert_invalid_client(
        &by_mtls(&env, &spoof, "victim-dn").await,
        "spoof vs text DN",
    );
    assert_bound_to(
        &by_mtls(&env, &reordered, "victim-dn").await,
        &reordered,
        "RFC 4514 text lists RDNs last to first",
    );
    assert_invalid_client(&by_mtls(&env, &victim, "victim-dn").await, "reversed order");

    // The victim still authenticates, and a renewed certificate with the same subject in
    // another case and spacing too (RFC 4518 caseIgnoreMatch).
    assert_bound_to(&by_mtls(&env, &victim, "victim").await, &victim, "victim");
    let renewed = mint(
        Some(ca(&env)),
        &[
            (DnType::CommonName, "Victim-App"),
            (DnType::OrganizationName, "  CONTOSO "),
            (DnType::CountryName, "de"),
        ],
        vec![],
    );
    assert_bound_to(
        &by_mtls(&env, &renewed, "victim").await,
        &renewed,
        "renewed",
    );
    // The same subject, self-signed: not from the authority's CA.
    let self_signed = mint(
        None,
        &[
            (DnType::CommonName, "victim-app"),
            (DnType::OrganizationName, "Contoso"),
            (DnType::CountryName, "DE"),
        ],
        vec![],
    );
    assert_invalid_client(&by_mtls(&env, &self_signed, "victim").await, "self-signed");
}

#[tokio::test]
async fn subject_dns_registered_as_text_match_structurally() {
    let env = start().await;
    for (id, dn) in [
        ("lower", "cn=VICTIM"),
        ("escaped", "CN=a\\,b,O=x"),
        ("oid", "2.5.4.3=a\\,b, 2.5.4.10=x"),
        ("hex", "CN=#0C03612C62,O=x"),
    ] {
        env.running
            .register(ClientRegistration::with_tls_client_auth(
                id,
                TlsClientAuthSubject::SubjectDn(dn.into()),
            ))
            .unwrap();
    }
    let victim = mint(Some(ca(&env)), &[(DnType::CommonName, "victim")], vec![]);
    assert_bound_to(&by_mtls(&env, &victim, "lower").await, &victim, "cn=VICTIM");

    // `a,b` as one CN under O=x; and the two-RDN look-alike.
    let one = mint(
        Some(ca(&env)),
        &[(DnType::OrganizationName, "x"), (DnType::CommonName, "a,b")],
        vec![],
    );
    let two = mint(
        Some(ca(&env)),
        &[
            (DnType::OrganizationName, "x"),
            (DnType::OrganizationalUnitName, "b"),
            (DnType::CommonName, "a"),
        ],
        vec![],
    );
    for id in ["escaped", "oid", "hex"] {
        assert_bound_to(&by_mtls(&env, &one, id).await, &one, id);
        assert_invalid_client(&by_mtls(&env, &two, id).await, id);
    }

    // Bad syntax is refused at registration, naming the problem.
    for (dn, problem) in [
        ("CN=a;O=b", "`;` must be escaped"),
        ("CN=a,", "missing after the last `,`"),
        ("XY=a", "unknown attribute type `XY`"),
        ("", "the subject DN is empty"),
    ] {
        let e = env
            .running
            .register(ClientRegistration::with_tls_client_auth(
                "bad",
                TlsClientAuthSubject::SubjectDn(dn.into()),
            ))
            .unwrap_err()
            .to_string();
        assert!(e.contains("client `bad`"), "{e}");
        assert!(e.contains("tls_client_auth_subject_dn"), "{e}");
        assert!(e.contains(problem), "{dn}: {e}");
    }
}

#[tokio::test]
async fn san_registrations_match_only_the_exact_san() {
    let env = start().await;
    let reg = |id: &str, s: TlsClientAuthSubject| {
        env.running
            .register(ClientRegistration::with_tls_client_auth(id, s))
            .unwrap();
    };
    reg(
        "by-dns",
        TlsClientAuthSubject::SanDns("victim.example".into()),
    );
    reg(
        "by-ip",
        TlsClientAuthSubject::SanIp("0:0:0:0:0:0:0:1".into()),
    );
    reg(
        "by-uri",
        TlsClientAuthSubject::SanUri("spiffe://example.org/victim".into()),
    );
    reg(
        "by-email",
        TlsClientAuthSubject::SanEmail("victim@Example.org".into()),
    );
    let cn = |n: &'static str| [(DnType::CommonName, n)];

    // DNS: the exact name, any case; not a longer name, a parent, or the name as CN.
    let good = mint(Some(ca(&env)), &cn("x"), vec![dns("VICTIM.example")]);
    assert_bound_to(&by_mtls(&env, &good, "by-dns").await, &good, "dns");
    for (what, c) in [
        (
            "longer",
            mint(
                Some(ca(&env)),
                &cn("x"),
                vec![dns("victim.example.attacker")],
            ),
        ),
        (
            "parent",
            mint(Some(ca(&env)), &cn("x"), vec![dns("example")]),
        ),
        (
            "wildcard",
            mint(Some(ca(&env)), &cn("x"), vec![dns("*.example")]),
        ),
        ("cn", mint(Some(ca(&env)), &cn("victim.example"), vec![])),
        (
            "self-signed",
            mint(None, &cn("x"), vec![dns("victim.example")]),
        ),
    ] {
        assert_invalid_client(&by_mtls(&env, &c, "by-dns").await, what);
    }

    // IP: compared as addresses.
    let v6 = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![SanType::IpAddress("::1".parse::<IpAddr>().unwrap())],
    );
    assert_bound_to(&by_mtls(&env, &v6, "by-ip").await, &v6, "ip");
    let v4 = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![SanType::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap())],
    );
    assert_invalid_client(&by_mtls(&env, &v4, "by-ip").await, "other ip");

    // URI: exact; e-mail: domain case-insensitive, local part exact.
    let uri = |u: &str| SanType::URI(u.try_into().unwrap());
    let email = |e: &str| SanType::Rfc822Name(e.try_into().unwrap());
    let c = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![uri("spiffe://example.org/victim")],
    );
    assert_bound_to(&by_mtls(&env, &c, "by-uri").await, &c, "uri");
    let c = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![uri("spiffe://example.org/victim/x")],
    );
    assert_invalid_client(&by_mtls(&env, &c, "by-uri").await, "longer uri");
    let c = mint(Some(ca(&env)), &cn("x"), vec![email("victim@EXAMPLE.org")]);
    assert_bound_to(&by_mtls(&env, &c, "by-email").await, &c, "email");
    let c = mint(Some(ca(&env)), &cn("x"), vec![email("Victim@example.org")]);
    assert_invalid_client(&by_mtls(&env, &c, "by-email").await, "other local part");
    let c = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![email("victim@example.org.attacker")],
    );
    assert_invalid_client(&by_mtls(&env, &c, "by-email").await, "other domain");
    // A SAN of another kind with the same text does not count.
    let c = mint(
        Some(ca(&env)),
        &cn("x"),
        vec![uri("victim.example"), email("x@victim.example")],
    );
    assert_invalid_client(&by_mtls(&env, &c, "by-dns").await, "other kinds");
}

/// Every pair of registered method A and attempted method B over real TLS.
#[tokio::test]
async fn clients_authenticate_only_by_their_registered_methods() {
    let env = start().await;
    let url = env.running.token_endpoint().to_owned();
    let r = &env.running;
    let ss = self_signed("ss", KeyKind::EcP256);
    let tls = mint(Some(ca(&env)), &[(DnType::CommonName, "tls-app")], vec![]);
    let pkj = self_signed("pkj", KeyKind::EcP256);
    let both = self_signed("both", KeyKind::EcP256);
    let stranger = self_signed("stranger", KeyKind::EcP256);
    r.register(ClientRegistration::with_certificate(
        "ss",
        ss.leaf().clone(),
        CertAuthMethod::SelfSignedTlsClientAuth,
    ))
    .unwrap();
    r.register(ClientRegistration::with_certificate(
        "tls",
        tls.leaf().clone(),
        CertAuthMethod::TlsClientAuth,
    ))
    .unwrap();
    r.register(ClientRegistration::with_certificate(
        "pkj",
        pkj.leaf().clone(),
        CertAuthMethod::PrivateKeyJwt,
    ))
    .unwrap();
    r.register(
        ClientRegistration::with_certificate(
            "both",
            both.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        )
        .auth_method(AuthMethod::PrivateKeyJwt),
    )
    .unwrap();
    r.register(
        ClientRegistration::with_secret("post", SECRET).auth_method(AuthMethod::ClientSecretPost),
    )
    .unwrap();
    r.register(
        ClientRegistration::with_secret("basic", SECRET).auth_method(AuthMethod::ClientSecretBasic),
    )
    .unwrap();

    let clients: [(&str, Option<&CertifiedKey>, &[AuthMethod]); 6] = [
        ("ss", Some(&ss), &[AuthMethod::SelfSignedTlsClientAuth]),
        ("tls", Some(&tls), &[AuthMethod::TlsClientAuth]),
        ("pkj", Some(&pkj), &[AuthMethod::PrivateKeyJwt]),
        (
            "both",
            Some(&both),
            &[
                AuthMethod::SelfSignedTlsClientAuth,
                AuthMethod::PrivateKeyJwt,
            ],
        ),
        ("post", None, &[AuthMethod::ClientSecretPost]),
        ("basic", None, &[AuthMethod::ClientSecretBasic]),
    ];
    let tried = [
        "mtls",
        "private_key_jwt",
        "client_secret_basic",
        "client_secret_post",
    ];
    let mut allowed_seen = 0;
    for (id, cert, registered) in clients {
        for how in tried {
            let base = [
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("scope", SCOPE),
            ];
            let basic = format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{id}:{SECRET}")
                )
            );
            // The client's own credential when it has one of that kind, else a stranger's.
            let key = cert.unwrap_or(&stranger);
            let reply = match how {
                "mtls" => env.post(&url, Some(key), &[], &base).await,
                "private_key_jwt" => {
                    let jwt = Assertion::new(id, &url, JwsAlgorithm::ES256).sign(key);
                    let mut form = base.to_vec();
                    form.push(("client_assertion_type", JWT_BEARER));
                    form.push(("client_assertion", &jwt));
                    env.post(&url, None, &[], &form).await
                }
                "client_secret_basic" => {
                    env.post(&url, None, &[("authorization", &basic)], &base)
                        .await
                }
                _ => {
                    let mut form = base.to_vec();
                    form.push(("client_secret", SECRET));
                    env.post(&url, None, &[], &form).await
                }
            };
            let allowed = registered.iter().any(|m| match how {
                "mtls" => m.is_mtls(),
                other => m.as_str() == other,
            });
            let what = format!("{id} registered for {registered:?}, authenticated by {how}");
            if allowed {
                allowed_seen += 1;
                assert_eq!(reply.status, 200, "{what}: {}", reply.text);
                if how == "mtls" {
                    assert_bound_to(&reply, key, &what);
                } else {
                    let c = claims(reply.body["access_token"].as_str().unwrap());
                    assert!(c.get("cnf").is_none(), "{what}");
                }
            } else {
                assert_invalid_client(&reply, &what);
                for m in registered {
                    assert!(
                        reply.description().contains(m.as_str()),
                        "{what}: the description names the registered method: {}",
                        reply.text
                    );
                }
                assert!(!reply.text.contains(SECRET), "{what}");
            }
        }
    }
    assert_eq!(allowed_seen, 7, "each client used each of its methods");
}

#[tokio::test]
async fn an_assertion_is_refused_after_a_restart_on_the_same_directory() {
    certbound_core::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let authority = DevAuthority::open_or_init(&state, AuthorityOptions::default()).unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = running.addr();
    let env = Env { dir, running };
    let app = env.register_self_signed_for("pkj", CertAuthMethod::PrivateKeyJwt, &[]);
    let url = env.running.token_endpoint().to_owned();
    let jwt = Assertion::new("pkj", &url, JwsAlgorithm::ES256).sign(&app);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "pkj"),
        ("scope", SCOPE),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt.as_str()),
    ];
    let first = env.post(&url, None, &[], &form).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let Env { dir, running } = env;
    running.shutdown().await;

    // The same directory, the same address (the assertion's aud), a new process state.
    let authority = DevAuthority::open_or_init(&state, AuthorityOptions::default()).unwrap();
    let running = authority.spawn(addr).await.unwrap();
    let env = Env { dir, running };
    assert_eq!(env.running.token_endpoint(), url);
    let replay = env.post(&url, None, &[], &form).await;
    assert_invalid_client(&replay, "replayed after restart");
    assert!(
        replay.description().contains("already used"),
        "{}",
        replay.text
    );
    // A fresh assertion is fine.
    let jwt2 = Assertion::new("pkj", &url, JwsAlgorithm::ES256).sign(&app);
    let fresh = [
        ("grant_type", "client_credentials"),
        ("client_id", "pkj"),
        ("scope", SCOPE),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt2.as_str()),
    ];
    assert_eq!(env.post(&url, None, &[], &fresh).await.status, 200);
}

#[tokio::test]
async fn the_jti_store_is_bounded_and_frees_expired_entries() {
    certbound_core::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Left by an earlier run: two entries that expired long ago.
    let authority = DevAuthority::open_or_init(&state, AuthorityOptions::default()).unwrap();
    let old = now_unix() - 3600;
    std::fs::write(
        state.join("assertion-jtis.log"),
        format!(
            "{old} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n{old} BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA\n"
        ),
    )
    .unwrap();
    let running = authority
        .with_assertion_jti_capacity(2)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = Env { dir, running };
    let app = env.register_self_signed_for("pkj", CertAuthMethod::PrivateKeyJwt, &[]);
    let url = env.running.token_endpoint().to_owned();
    let send = |jwt: String| {
        let env = &env;
        let url = url.clone();
        async move {
            env.post(
                &url,
                None,
                &[],
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "pkj"),
                    ("scope", SCOPE),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &jwt),
                ],
            )
            .await
        }
    };
    // The expired entries do not count: two new assertions fit.
    for i in 0..2 {
        let r = send(Assertion::new("pkj", &url, JwsAlgorithm::ES256).sign(&app)).await;
        assert_eq!(r.status, 200, "{i}: {}", r.text);
    }
    // Full of unexpired entries: the next new assertion is refused, clearly.
    let r = send(Assertion::new("pkj", &url, JwsAlgorithm::ES256).sign(&app)).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.error(), "temporarily_unavailable");
    assert!(r.description().contains("jti store is full"), "{}", r.text);
    // Requests without an assertion are not affected.
    env.running
        .register(ClientRegistration::with_secret("sec", SECRET))
        .unwrap();
    let r = env
        .post(
            &url,
            None,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sec"),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The log holds the two live entries only (the expired ones were dropped on open).
    let log =
        std::fs::read_to_string(env.running.authority().dir().join("assertion-jtis.log")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(!log.contains("AAAAAAAA"), "{log}");
}

/// Registry files written before the method list: one `token_endpoint_auth_method`, and
/// for `tls_client_auth` the certificate's display string (RDNs first to last).
#[tokio::test]
async fn old_single_method_registry_files_still_load() {
    let env = start().await;
    let url = env.running.token_endpoint().to_owned();
    let victim = mint(
        Some(ca(&env)),
        &[
            (DnType::CommonName, "victim-app"),
            (DnType::OrganizationName, "Contoso"),
            (DnType::CountryName, "DE"),
        ],
        vec![],
    );
    let ss = env.register_self_signed_for("ss", CertAuthMethod::SelfSignedTlsClientAuth, &[]);
    env.running
        .register(ClientRegistration::with_certificate(
            "victim",
            victim.leaf().clone(),
            CertAuthMethod::TlsClientAuth,
        ))
        .unwrap();
    env.running
        .register(ClientRegistration::with_secret("sec", SECRET))
        .unwrap();
    // Rewrite the file as the previous version wrote it.
    let path = env.running.authority().dir().join("authority.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for c in file["clients"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        c.remove("token_endpoint_auth_methods");
        if c["client_id"] == "victim" {
            c.insert(
                "tls_client_auth_subject_dn".into(),
                "CN=victim-app, O=Contoso, C=DE".into(),
            );
        }
        if c["client_id"] == "sec" {
            c.insert(
                "token_endpoint_auth_method".into(),
                "client_secret_post".into(),
            );
        }
    }
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, serde_json::to_vec(&file).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();

    assert_bound_to(&by_mtls(&env, &victim, "victim").await, &victim, "old DN");
    let spoof = mint(
        Some(ca(&env)),
        &[(DnType::CommonName, "victim-app, O=Contoso, C=DE")],
        vec![],
    );
    assert_invalid_client(&by_mtls(&env, &spoof, "victim").await, "spoof vs old DN");
    // The single method is enforced.
    assert_bound_to(&by_mtls(&env, &ss, "ss").await, &ss, "old self-signed");
    let jwt = Assertion::new("ss", &url, JwsAlgorithm::ES256).sign(&ss);
    let r = env
        .post(
            &url,
            None,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "ss"),
                ("scope", SCOPE),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &jwt),
            ],
        )
        .await;
    assert_invalid_client(&r, "old self-signed by private_key_jwt");
    // An old secret client keeps both secret methods, as before.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("sec:{SECRET}")
        )
    );
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", "sec"),
        ("scope", SCOPE),
    ];
    assert_eq!(
        env.post(&url, None, &[("authorization", &basic)], &base)
            .await
            .status,
        200
    );
    let mut post = base.to_vec();
    post.push(("client_secret", SECRET));
    assert_eq!(env.post(&url, None, &[], &post).await.status, 200);
}
