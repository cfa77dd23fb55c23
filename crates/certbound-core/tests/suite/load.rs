//! Loading credentials from every supported form, and refusing bad input with an error
//! that names the source and the problem — never a panic, never key material.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::{
    CertErrorKind, Certificate, CertifiedKey, KeyKind, PrivateKey, b64, now_unix,
};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn fresh(kind: KeyKind) -> (Certificate, PrivateKey) {
    let key = PrivateKey::generate(kind).unwrap();
    let cert = ca::self_signed(&IssueSpec::client("app"), &key).unwrap();
    (cert, key)
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pem_with_cert_and_key_in_one_file_for_every_key_kind() {
    let fx = Fixture::new();
    for kind in [KeyKind::Rsa2048, KeyKind::EcP256, KeyKind::EcP384] {
        let (cert, key) = fresh(kind);
        let p = fx.write(
            "both.pem",
            format!("{}{}", cert.to_pem(), key.to_pkcs8_pem().as_str()),
        );
        let cred = CertifiedKey::load_path(&p, None).unwrap();
        assert_eq!(cred.thumbprint(), cert.thumbprint());
        assert_eq!(cred.leaf().subject(), "CN=app");
    }
}

#[test]
fn pem_with_sibling_key_file() {
    let fx = Fixture::new();
    let (cert, key) = fresh(KeyKind::EcP256);
    let p = fx.write("app.pem", cert.to_pem());
    fx.write("app.key", key.to_pkcs8_pem().as_bytes());
    let cred = CertifiedKey::load_path(&p, None).unwrap();
    assert_eq!(cred.thumbprint(), cert.thumbprint());
    let cred2 = CertifiedKey::load_pem_files(&p, &fx.path("app.key")).unwrap();
    assert_eq!(cred2.thumbprint(), cert.thumbprint());
}

#[test]
fn pkcs1_and_sec1_keys_load() {
    if !openssl_available() {
        eprintln!("skipping: openssl binary not found");
        return;
    }
    let fx = Fixture::new();
    for (kind, flag) in [(KeyKind::Rsa2048, "-traditional"), (KeyKind::EcP256, "")] {
        let (cert, key) = fresh(kind);
        let pk8 = fx.write("k8.pem", key.to_pkcs8_pem().as_bytes());
        let trad = fx.path("trad.pem");
        let sub = if kind == KeyKind::Rsa2048 {
            "rsa"
        } else {
            "ec"
        };
        let mut args = vec![
            sub,
            "-in",
            pk8.to_str().unwrap(),
            "-out",
            trad.to_str().unwrap(),
        ];
        if !flag.is_empty() {
            args.push(flag);
        }
        openssl(&args);
        let text = std::fs::read_to_string(&trad).unwrap();
        let label = if kind == KeyKind::Rsa2048 {
            "BEGIN RSA PRIVATE KEY"
        } else {
            "BEGIN EC PRIVATE KEY"
        };
        assert!(text.contains(label), "{text:.40}");
        let certp = fx.write("c.pem", cert.to_pem());
        let cred = CertifiedKey::load_pem_files(&certp, &trad).unwrap();
        assert_eq!(cred.thumbprint(), cert.thumbprint());
    }
}

#[test]
fn pfx_roundtrip_and_wrong_password() {
    let fx = Fixture::new();
    let ca = DevCa::generate("test CA").unwrap();
    let cred = ca
        .issue_certified_key(&IssueSpec::client("pfx-app"), KeyKind::Rsa2048)
        .unwrap();
    let pfx = cred.to_pkcs12("s3cret-pass").unwrap();
    let p = fx.write("app.pfx", &pfx);
    let loaded = CertifiedKey::load_path(&p, Some("s3cret-pass")).unwrap();
    assert_eq!(loaded.thumbprint(), cred.thumbprint());
    assert_eq!(loaded.chain().len(), 2, "leaf and CA");

    let err = CertifiedKey::load_path(&p, Some("wrong")).unwrap_err();
    assert!(matches!(err.kind, CertErrorKind::Pkcs12), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("app.pfx") && msg.contains("wrong password"),
        "{msg}"
    );
    assert!(
        !msg.contains("s3cret-pass") && !msg.contains("wrong\""),
        "{msg}"
    );

    // base64 of the PFX
    let b = b64::encode_std(&pfx);
    let from_b64 =
        CertifiedKey::from_base64(&b, Some("s3cret-pass"), "AzureAd.ClientCredentials[0]").unwrap();
    assert_eq!(from_b64.thumbprint(), cred.thumbprint());
}

#[test]
fn pfx_made_by_openssl_loads() {
    if !openssl_available() {
        eprintln!("skipping: openssl binary not found");
        return;
    }
    let fx = Fixture::new();
    let (cert, key) = fresh(KeyKind::EcP256);
    let c = fx.write("c.pem", cert.to_pem());
    let k = fx.write("k.pem", key.to_pkcs8_pem().as_bytes());
    let out = fx.path("o.pfx");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        c.to_str().unwrap(),
        "-inkey",
        k.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
        "-passout",
        "pass:pw",
    ]);
    let cred = CertifiedKey::load_path(&out, Some("pw")).unwrap();
    assert_eq!(cred.thumbprint(), cert.thumbprint());
}

#[test]
fn thumbprint_matches_openssl() {
    if !openssl_available() {
        eprintln!("skipping: openssl binary not found");
        return;
    }
    let fx = Fixture::new();
    let (cert, _) = fresh(KeyKind::EcP256);
    let p = fx.write("c.pem", cert.to_pem());
    let der = Command::new("openssl")
        .args(["x509", "-in", p.to_str().unwrap(), "-outform", "der"])
        .output()
        .unwrap()
        .stdout;
    let hash = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -outform der | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='",
            p.display()
        ))
        .output()
        .unwrap()
        .stdout;
    assert_eq!(der, cert.der().as_ref());
    assert_eq!(
        String::from_utf8(hash).unwrap().trim(),
        cert.thumbprint().to_base64url()
    );
}

fn expect(
    kind_ok: impl Fn(&CertErrorKind) -> bool,
    r: Result<CertifiedKey, certbound_core::CertError>,
    source: &str,
) {
    let err = r.expect_err("must fail");
    assert!(kind_ok(&err.kind), "unexpected error kind: {err}");
    assert!(
        err.to_string().contains(source),
        "error must name {source}: {err}"
    );
    assert!(
        !err.to_string().contains("PRIVATE KEY-----"),
        "no key material: {err}"
    );
}

#[test]
fn bad_inputs_are_named_errors() {
    let fx = Fixture::new();
    let (cert, key) = fresh(KeyKind::EcP256);
    let (_, other_key) = fresh(KeyKind::EcP256);

    let empty = fx.write("empty.pem", "");
    expect(
        |k| matches!(k, CertErrorKind::Empty),
        CertifiedKey::load_path(&empty, None),
        "empty.pem",
    );

    let blank = fx.write("blank.pem", "  \n\n ");
    expect(
        |k| matches!(k, CertErrorKind::Empty),
        CertifiedKey::load_path(&blank, None),
        "blank.pem",
    );

    expect(
        |k| matches!(k, CertErrorKind::IsDirectory),
        CertifiedKey::load_path(fx.dir.path(), None),
        fx.dir.path().to_str().unwrap(),
    );

    let missing = fx.path("missing.pem");
    expect(
        |k| matches!(k, CertErrorKind::Io(_)),
        CertifiedKey::load_path(&missing, None),
        "missing.pem",
    );

    let nokey = fx.write("nokey.pem", cert.to_pem());
    expect(
        |k| matches!(k, CertErrorKind::NoPrivateKey),
        CertifiedKey::load_path(&nokey, None),
        "nokey.pem",
    );

    let nocert = fx.write("nocert.pem", key.to_pkcs8_pem().as_bytes());
    expect(
        |k| matches!(k, CertErrorKind::NoCertificate),
        CertifiedKey::load_path(&nocert, None),
        "nocert.pem",
    );

    let mismatch = fx.write(
        "mismatch.pem",
        format!("{}{}", cert.to_pem(), other_key.to_pkcs8_pem().as_str()),
    );
    expect(
        |k| matches!(k, CertErrorKind::KeyMismatch),
        CertifiedKey::load_path(&mismatch, None),
        "mismatch.pem",
    );

    let garbage = fx.write("garbage.pfx", b"\x30\x82\x01\x00garbage garbage");
    expect(
        |k| matches!(k, CertErrorKind::Pkcs12),
        CertifiedKey::load_path(&garbage, Some("x")),
        "garbage.pfx",
    );

    let bad_pem = fx.write(
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    expect(
        |k| matches!(k, CertErrorKind::Pem(_) | CertErrorKind::X509(..)),
        CertifiedKey::load_path(&bad_pem, None),
        "bad.pem",
    );

    let not_x509 = fx.write(
        "notx509.pem",
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n{}",
            b64::encode_std(b"hello world"),
            key.to_pkcs8_pem().as_str()
        ),
    );
    expect(
        |k| matches!(k, CertErrorKind::X509(..)),
        CertifiedKey::load_path(&not_x509, None),
        "notx509.pem",
    );
    // The parser's typed error is kept as the cause, under the same message.
    let e = CertifiedKey::load_path(&not_x509, None).unwrap_err();
    let kind = std::error::Error::source(&e).expect("the kind is the source");
    let parser = kind.source().expect("the X.509 parser's error is kept");
    assert!(
        e.to_string().contains(&parser.to_string()),
        "{e} / {parser}"
    );

    // Truncated PFX
    let ca = DevCa::generate("t").unwrap();
    let cred = ca
        .issue_certified_key(&IssueSpec::client("x"), KeyKind::EcP256)
        .unwrap();
    let pfx = cred.to_pkcs12("pw").unwrap();
    let trunc = fx.write("trunc.pfx", &pfx[..pfx.len() / 2]);
    expect(
        |k| matches!(k, CertErrorKind::Pkcs12),
        CertifiedKey::load_path(&trunc, Some("pw")),
        "trunc.pfx",
    );

    // Expired and not-yet-valid certificates
    let now = now_unix();
    let old = ca::self_signed(
        &IssueSpec::client("old").valid_between(now - 10 * 86400, now - 86400),
        &key,
    )
    .unwrap();
    let expired = fx.write(
        "expired.pem",
        format!("{}{}", old.to_pem(), key.to_pkcs8_pem().as_str()),
    );
    expect(
        |k| matches!(k, CertErrorKind::Expired(_)),
        CertifiedKey::load_path(&expired, None),
        "expired.pem",
    );
    let future = ca::self_signed(
        &IssueSpec::client("future").valid_between(now + 86400, now + 10 * 86400),
        &key,
    )
    .unwrap();
    let fut = fx.write(
        "future.pem",
        format!("{}{}", future.to_pem(), key.to_pkcs8_pem().as_str()),
    );
    expect(
        |k| matches!(k, CertErrorKind::NotYetValid(_)),
        CertifiedKey::load_path(&fut, None),
        "future.pem",
    );

    // base64: invalid, empty, a bare DER certificate (no key)
    expect(
        |k| matches!(k, CertErrorKind::Base64(_)),
        CertifiedKey::from_base64("***", None, "AzureAd.X"),
        "AzureAd.X",
    );
    expect(
        |k| matches!(k, CertErrorKind::Empty),
        CertifiedKey::from_base64("  ", None, "AzureAd.X"),
        "AzureAd.X",
    );
    let der_b64 = b64::encode_std(cert.der());
    expect(
        |k| matches!(k, CertErrorKind::NoPrivateKey),
        CertifiedKey::from_base64(&der_b64, None, "AzureAd.Y"),
        "AzureAd.Y",
    );
}

#[test]
fn small_rsa_key_is_refused_with_a_reason() {
    if !openssl_available() {
        eprintln!("skipping: openssl binary not found");
        return;
    }
    let fx = Fixture::new();
    let k = fx.path("small.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        k.to_str().unwrap(),
    ]);
    let err = PrivateKey::from_pem(&std::fs::read(&k).unwrap()).unwrap_err();
    assert!(err.contains("2048") || err.contains("RSA"), "{err}");
}

#[test]
fn debug_output_never_shows_key_material() {
    let ca = DevCa::generate("t").unwrap();
    let cred = ca
        .issue_certified_key(&IssueSpec::client("dbg"), KeyKind::Rsa2048)
        .unwrap();
    let pem = cred.key().to_pkcs8_pem();
    let body: String = pem.lines().nth(2).unwrap().to_string();
    for text in [
        format!("{cred:?}"),
        format!("{:?}", cred.key()),
        format!("{ca:?}"),
    ] {
        assert!(!text.contains(&body), "{text}");
        assert!(!text.contains("PRIVATE"), "{text}");
    }
}

#[test]
fn chain_and_sans_are_exposed() {
    let ca = DevCa::generate("dev CA").unwrap();
    let cred = ca
        .issue_certified_key(
            &IssueSpec::server("srv", &["localhost", "127.0.0.1"]),
            KeyKind::EcP256,
        )
        .unwrap();
    assert_eq!(cred.leaf().sans(), ["DNS:localhost", "IP:127.0.0.1"]);
    assert_eq!(cred.leaf().issuer(), "CN=dev CA");
    assert!(ca.cert().is_ca());
    assert!(!cred.leaf().is_ca());
    assert_eq!(cred.x5c().len(), 2);
    let _ = Path::new("unused");
}
