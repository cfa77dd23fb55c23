//! Registration, certificates and the authority's state directory.

use super::*;

/// `authority register`: repeatable `--auth`, `--subject-dn` and `--san-*`, what it
/// prints, what it refuses, and that the registered methods are the only ones accepted.
#[test]
pub(super) fn register_methods_and_tls_client_auth_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir_s]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    let register = |args: &[&str]| {
        let mut all = vec!["authority", "register", "--dir", auth_dir_s];
        all.extend_from_slice(args);
        bin().args(&all).output().unwrap()
    };
    let json = |out: &std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // tls_client_auth by subject DN, stored in RFC 4514 form.
    let out = json(&register(&[
        "--client-id",
        "cli-app",
        "--subject-dn",
        "cn=CLI-APP",
    ]));
    assert_eq!(out["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["tls_client_auth"])
    );
    assert_eq!(out["tls_client_auth_subject_dn"], "CN=CLI-APP");
    assert_eq!(out["x5t#S256"], Value::Null);

    // A certificate from the authority's CA with that subject: mtls_pop works, and
    // private_key_jwt (what `token --scheme bearer` uses) is refused.
    let prefix = d("app");
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "cli-app",
        "--out",
        prefix.to_str().unwrap(),
        "--ca-dir",
        auth_dir_s,
    ]);
    let config = d("appsettings.json");
    write_config(
        &config,
        &issuer,
        &d("app.pem"),
        "https://127.0.0.1:9",
        "MTLS_POP",
    );
    let token = |scheme: &str| {
        bin()
            .args(["token", "--config", config.to_str().unwrap()])
            .args(["--scheme", scheme, "--ca-cert", &ca, "--json"])
            .output()
            .unwrap()
    };
    let out = json(&token("mtls_pop"));
    assert!(out["binding_thumbprint"].is_string(), "{out}");
    let out = token("bearer");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(err.contains("tls_client_auth"), "{err}");

    // Several methods for one certificate.
    let out = json(&register(&[
        "--client-id",
        "cli-both",
        "--cert",
        d("app.pem").to_str().unwrap(),
        "--auth",
        "self_signed_tls_client_auth",
        "--auth",
        "private_key_jwt",
    ]));
    assert_eq!(
        out["token_endpoint_auth_method"],
        "self_signed_tls_client_auth"
    );
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["self_signed_tls_client_auth", "private_key_jwt"])
    );
    assert!(out["x5t#S256"].is_string());
    // The default with --cert is what Entra accepts for a certificate credential: the
    // handshake and an assertion it signs; an explicit --auth narrows it to that method.
    let out = json(&register(&[
        "--client-id",
        "cli-default",
        "--cert",
        d("app.pem").to_str().unwrap(),
    ]));
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["self_signed_tls_client_auth", "private_key_jwt"])
    );
    let out = json(&register(&[
        "--client-id",
        "cli-mtls-only",
        "--cert",
        d("app.pem").to_str().unwrap(),
        "--auth",
        "self_signed_tls_client_auth",
    ]));
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["self_signed_tls_client_auth"])
    );
    // Over the wire: the default client gets a Bearer token by private_key_jwt, the
    // explicitly mTLS-only one is refused it and still gets its bound token.
    let token_as = |client_id: &str, scheme: &str| {
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"cli-app\"", &format!("\"{client_id}\""));
        let cfg = d(&format!("{client_id}.json"));
        std::fs::write(&cfg, text).unwrap();
        bin()
            .args(["token", "--config", cfg.to_str().unwrap()])
            .args(["--scheme", scheme, "--ca-cert", &ca, "--json"])
            .output()
            .unwrap()
    };
    let out = json(&token_as("cli-default", "bearer"));
    assert_eq!(out["binding_thumbprint"], Value::Null, "{out}");
    assert_eq!(out["binding_strength"], Value::Null, "{out}");
    let out = json(&token_as("cli-mtls-only", "mtls_pop"));
    assert!(out["binding_thumbprint"].is_string(), "{out}");
    assert_eq!(out["binding_strength"], "software", "{out}");
    let out = token_as("cli-mtls-only", "bearer");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(err.contains("self_signed_tls_client_auth"), "{err}");
    // SANs, compared as parsed values.
    let out = json(&register(&[
        "--client-id",
        "cli-ip",
        "--san-ip",
        "0:0:0:0:0:0:0:1",
    ]));
    assert_eq!(out["tls_client_auth_san_ip"], "::1");
    let out = json(&register(&[
        "--client-id",
        "cli-dns",
        "--san-dns",
        "App.Example",
    ]));
    assert_eq!(out["tls_client_auth_san_dns"], "app.example");
    // Secrets: both secret methods by default, or the ones named.
    let out = json(&register(&[
        "--client-id",
        "cli-sec",
        "--secret",
        "long-enough-secret",
    ]));
    assert_eq!(out["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["client_secret_post", "client_secret_basic"])
    );
    let out = json(&register(&[
        "--client-id",
        "cli-sec-basic",
        "--secret",
        "long-enough-secret",
        "--auth",
        "client_secret_basic",
    ]));
    assert_eq!(
        out["token_endpoint_auth_methods"],
        serde_json::json!(["client_secret_basic"])
    );

    // Refusals: one clear line naming the problem.
    for (args, needle) in [
        (
            vec!["--client-id", "x", "--subject-dn", "CN=a;b"],
            "`;` must be escaped",
        ),
        (
            vec!["--client-id", "x", "--subject-dn", "CN=a,"],
            "subject DN",
        ),
        (
            vec![
                "--client-id",
                "x",
                "--san-dns",
                "a.example",
                "--san-ip",
                "::1",
            ],
            "cannot be used with",
        ),
        (
            vec!["--client-id", "x", "--san-dns", "*.example"],
            "wildcards",
        ),
        (
            vec![
                "--client-id",
                "x",
                "--secret",
                "long-enough-secret",
                "--auth",
                "private_key_jwt",
            ],
            "client_secret_basic or client_secret_post",
        ),
        (
            vec![
                "--client-id",
                "x",
                "--subject-dn",
                "CN=x",
                "--auth",
                "private_key_jwt",
            ],
            "private_key_jwt needs a registered certificate",
        ),
        (
            vec!["--client-id", "x", "--auth", "magic", "--san-ip", "::1"],
            "unknown authentication method",
        ),
    ] {
        let out = register(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        if !needle.contains("cannot be used") {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    drop(authority);
}

#[test]
pub(super) fn closed_stdout_is_a_quiet_exit() {
    // demo: the narration stops, the scenario still runs and decides the status.
    assert_quiet_exit("demo", &run_with_closed_stdout(&["demo"]));
    assert_quiet_exit("demo --json", &run_with_closed_stdout(&["demo", "--json"]));
    let token = unsigned_jwt(r#"{"alg":"ES256"}"#, r#"{"exp":4102444800,"sub":"x"}"#);
    assert_quiet_exit("inspect", &run_with_closed_stdout(&["inspect", &token]));
    assert_quiet_exit(
        "inspect --json",
        &run_with_closed_stdout(&["inspect", "--json", &token]),
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("app");
    let out = run_with_closed_stdout(&[
        "cert",
        "new",
        "--cn",
        "app",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_quiet_exit("cert new", &out);
    assert!(dir.path().join("app.pem").is_file() && dir.path().join("app.key").is_file());

    // A closed stderr loses the error line; the status is still a plain failure, not a
    // panic's 101.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = bin()
        .args(["inspect", "not-a-token"])
        .stdout(Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

#[test]
pub(super) fn cert_new_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("app");
    let p = prefix.to_str().unwrap();
    let (pem, key) = (dir.path().join("app.pem"), dir.path().join("app.key"));
    run_ok(&["cert", "new", "--cn", "app", "--out", p]);
    let (pem1, key1) = (std::fs::read(&pem).unwrap(), std::fs::read(&key).unwrap());

    let out = bin()
        .args(["cert", "new", "--cn", "other", "--out", p])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app.pem") && err.contains("--force"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        pem1,
        "the certificate was replaced"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key1,
        "the private key was replaced"
    );

    // Only the key is left: still refused, and no new certificate is left behind.
    std::fs::remove_file(&pem).unwrap();
    let out = bin()
        .args(["cert", "new", "--cn", "other", "--out", p])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app.key") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key1,
        "the private key was replaced"
    );
    assert!(!pem.exists(), "a half-written identity was left behind");

    // A PFX in the way is refused too.
    std::fs::write(dir.path().join("new.pfx"), b"keep").unwrap();
    let new_prefix = dir.path().join("new");
    let out = bin()
        .args([
            "cert",
            "new",
            "--cn",
            "n",
            "--out",
            new_prefix.to_str().unwrap(),
            "--pfx",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read(dir.path().join("new.pfx")).unwrap(), b"keep");
    assert!(!dir.path().join("new.pem").exists() && !dir.path().join("new.key").exists());

    // --force replaces both, the key private again.
    run_ok(&["cert", "new", "--cn", "other", "--out", p, "--force"]);
    assert_ne!(std::fs::read(&key).unwrap(), key1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
pub(super) fn register_and_cert_new_refuse_a_directory_that_is_no_authority() {
    let dir = tempfile::tempdir().unwrap();
    let cert_prefix = dir.path().join("app");
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "app",
        "--out",
        cert_prefix.to_str().unwrap(),
    ]);
    let cert = dir.path().join("app.pem");
    let missing = dir.path().join("no-such-authority");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for d in [&missing, &empty] {
        let ds = d.to_str().unwrap();
        for args in [
            vec![
                "authority",
                "register",
                "--dir",
                ds,
                "--client-id",
                "x",
                "--cert",
                cert.to_str().unwrap(),
            ],
            vec![
                "authority",
                "register",
                "--dir",
                ds,
                "--client-id",
                "x",
                "--secret",
                "s3cr3t-value",
            ],
        ] {
            let out = bin().args(&args).output().unwrap();
            assert!(!out.status.success(), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(ds) && err.contains("authority serve"), "{err}");
            assert!(!err.contains("s3cr3t-value"), "{err}");
        }
        let out_prefix = dir.path().join("issued");
        let out = bin()
            .args([
                "cert",
                "new",
                "--cn",
                "c",
                "--out",
                out_prefix.to_str().unwrap(),
                "--ca-dir",
                ds,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(ds) && err.contains("--ca-dir"), "{err}");
        assert!(!dir.path().join("issued.pem").exists());
    }
    assert!(!missing.exists(), "a new authority directory was created");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "a new authority was initialised"
    );
}

#[test]
pub(super) fn authority_serve_that_cannot_listen_leaves_no_directory() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("new").join("authority");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"mine").unwrap();
    for d in [&nested, &empty] {
        let out = bin()
            .args([
                "authority",
                "serve",
                "--dir",
                d.to_str().unwrap(),
                "--addr",
                &addr,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&addr), "{err}");
    }
    assert!(
        !dir.path().join("new").exists(),
        "the directory it created was left behind"
    );
    let left: Vec<_> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["notes.txt"], "authority files were left behind");
}
