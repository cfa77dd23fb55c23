//! What people read: inspect, warnings, errors that name the fix, help, the README quick start.

use super::*;

#[test]
pub(super) fn inspect_saturates_extreme_exp_and_takes_any_text() {
    let header = r#"{"alg":"ES256","typ":"JWT"}"#;
    for (exp, expires_at, far_future) in [
        ("9223372036854775807", i64::MAX, true),
        ("18446744073709551615", i64::MAX, true),
        ("123456789012345678901234567890", i64::MAX, true),
        ("1e308", i64::MAX, true),
        ("-9223372036854775808", i64::MIN, false),
        ("-1e308", i64::MIN, false),
    ] {
        let token = unsigned_jwt(header, &format!(r#"{{"exp":{exp}}}"#));
        let out = bin().args(["inspect", "--json", &token]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panicked"),
            "exp {exp}: {err}"
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["expires_at"].as_i64(), Some(expires_at), "exp {exp}: {v}");
        let expires_in = v["expires_in"]
            .as_i64()
            .unwrap_or_else(|| panic!("exp {exp}: {v}"));
        if far_future {
            assert!(expires_in > i64::MAX / 2, "exp {exp}: wrapped around: {v}");
            assert_eq!(v["expired"], false, "exp {exp}: {v}");
        } else {
            assert_eq!(expires_in, i64::MIN, "exp {exp}: {v}");
            assert_eq!(v["expired"], true, "exp {exp}: {v}");
        }
        let out = bin().args(["inspect", &token]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panicked"),
            "exp {exp}: {err}"
        );
    }

    // A claim is untrusted text: no raw control characters reach the terminal.
    let token = unsigned_jwt(
        header,
        r#"{"cnf":{"x5t#S256":"\u001b]0;owned\u0007\u001b[2J"}}"#,
    );
    let out = bin().args(["inspect", &token]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );

    // Non-ASCII anywhere: in a pasted scheme, in header and claims, in a certificate file.
    let dir = tempfile::tempdir().unwrap();
    let odd_pem = dir.path().join("odd.pem");
    std::fs::write(
        &odd_pem,
        "ünïcødé €\n-----BEGIN CERTIFICATE-----\n€€€\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let odd_der = dir.path().join("odd.der");
    std::fs::write(&odd_der, "€€€€€€€€€€€€€€€€€€€€".as_bytes()).unwrap();
    let nice = unsigned_jwt(
        r#"{"alg":"ES256","kid":"clé-€"}"#,
        r#"{"sub":"ünï","cnf":{"x5t#S256":"€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€"}}"#,
    );
    let inputs = [
        format!("bearer€ {nice}"),
        format!("mtls_po€ {nice}"),
        format!("Bearer {nice}"),
        "€€€€€€€€€€€€€€€€".to_string(),
        "é.é.é".to_string(),
        nice.clone(),
    ];
    for input in &inputs {
        for extra in [
            &[][..],
            &["--json"][..],
            &["--cert", odd_pem.to_str().unwrap()][..],
            &["--cert", odd_der.to_str().unwrap()][..],
        ] {
            let out = bin()
                .arg("inspect")
                .arg(input)
                .args(extra)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !err.contains("panicked"),
                "inspect {input:?} {extra:?}: {err}"
            );
            assert!(err.trim().lines().count() <= 1, "{err}");
        }
        // And on standard input.
        let out = bin()
            .arg("inspect")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(input.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "inspect - {input:?}: {err}");
    }
}

#[test]
pub(super) fn misspelt_configuration_keys_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("app");
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "app",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let config = dir.path().join("appsettings.json");
    let cfg = serde_json::json!({
        "AzureAd": {
            // Nothing listens on port 9: the token request fails after the warnings.
            "Authority": "https://127.0.0.1:9/tenant/v2.0",
            "ClientId": "cli-app",
            "ClientCredentials": [{
                "SourceType": "Path",
                "CertificateDiskPath": dir.path().join("app.pem"),
                "CertificatePasword": "hunter2-do-not-print"
            }]
        },
        "DownstreamApis": { "Whoami": {
            "BaseUrl": "https://127.0.0.1:9/", "Scopes": ["api://cli-api/.default"], "RequestAppToken": true
        } },
        "Logging": { "LogLevel": { "Default": "Information" } }
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    for command in ["token", "call"] {
        let mut args = vec![command, "--config", config.to_str().unwrap()];
        if command == "call" {
            args.extend(["--api", "Whoami"]);
        }
        let out = bin()
            .args(&args)
            .env("AzureAd__TenantIdd", "secret-looking-env-value")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
        assert_eq!(warnings.len(), 2, "{command}: once each: {err}");
        assert!(
            warnings.iter().any(|l| l
                .contains("`AzureAd.ClientCredentials[0].CertificatePasword`")
                && l.contains("did you mean `CertificatePassword`?")
                && l.contains("appsettings.json")),
            "{command}: {err}"
        );
        assert!(
            warnings.iter().any(|l| l.contains("`AzureAd__TenantIdd`")
                && l.contains("`AzureAd.TenantIdd`")
                && l.contains("`TenantId`")),
            "{command}: {err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains("secret-looking"),
            "{command}: {err}"
        );
        assert!(
            !err.contains("Logging"),
            "{command}: other sections are not warned about: {err}"
        );
    }
}

/// A loopback port free right now (bound, then released).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The README's quick start, literally: the commands of the `sh` block(s) of its "Quick
/// start" section run in order in a fresh directory (`cargo run --release --` is the built
/// binary; a command ending in `&` is a server whose ready line is awaited; only the fixed
/// ports 5443/5444 are replaced by free ones, as the README says to when they are taken).
/// It must end in a bound `certbound call` → 200.
#[test]
pub(super) fn readme_quick_start_reaches_a_bound_call() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split_once("\n## Quick start\n")
        .map(|(_, rest)| rest.split_once("\n## ").map_or(rest, |(s, _)| s))
        .expect("README has a Quick start section");
    let mut commands: Vec<String> = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in section.lines() {
        let t = line.trim();
        if !in_sh {
            in_sh = t == "```sh";
            continue;
        }
        if t == "```" {
            in_sh = false;
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        commands.push(std::mem::take(&mut pending));
    }
    assert!(commands.len() >= 5, "{commands:?}");
    assert!(
        section.contains("127.0.0.1:5443") && section.contains("127.0.0.1:5444"),
        "the quick start uses fixed addresses"
    );
    let (auth_port, api_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut last_stdout = String::new();
    for command in &commands {
        let command = command
            .replace("127.0.0.1:5443", &format!("127.0.0.1:{auth_port}"))
            .replace("127.0.0.1:5444", &format!("127.0.0.1:{api_port}"));
        assert!(
            !command.contains(['\'', '"', '$', '|', ';', '>']),
            "the quick start's commands stay plain (no quoting, variables or pipes): {command}"
        );
        let rest = command
            .strip_prefix("cargo run --release -- ")
            .unwrap_or_else(|| panic!("each command runs certbound: {command}"));
        let (rest, background) = match rest.strip_suffix('&') {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let args: Vec<&str> = rest.split_whitespace().collect();
        let mut cmd = bin();
        cmd.args(&args).current_dir(dir.path());
        if background {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let ready: Value = serde_json::from_str(line.trim())
                .unwrap_or_else(|e| panic!("{command}: no ready line ({e}): {line:?}"));
            assert!(ready["addr"].is_string(), "{ready}");
            servers.push(Server(ServerProcess::adopt(child, ready)));
        } else {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{command} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            last_stdout = String::from_utf8(out.stdout).unwrap();
        }
    }
    assert!(
        commands.last().unwrap().contains(" call "),
        "the quick start ends with a call"
    );
    let body: Value = serde_json::from_str(last_stdout.trim())
        .unwrap_or_else(|e| panic!("call printed no JSON ({e}): {last_stdout}"));
    let bound = body["cnf"]["x5t#S256"].as_str().expect("a bound token");
    let cert = certbound_core::Certificate::load_file(&dir.path().join("my-app.pem")).unwrap();
    assert_eq!(bound, cert.thumbprint().to_base64url(), "{body}");
    assert_eq!(body["scheme"], "mtls_pop", "{body}");
    drop(servers);
}

/// Runs certbound expecting failure; returns stderr (asserting it is one line without a
/// raw rustls rendering).
pub(super) fn run_err(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run certbound");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "certbound {args:?} succeeded: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for raw in ["signature_algorithm_id", "UnknownIssuer", "{ ", "Context {"] {
        assert!(!err.contains(raw), "raw rustls text {raw:?} in: {err}");
    }
    err
}

/// Issue 23's errors name the fix: an untrusted API certificate on the downstream path, an
/// untrusted authority for `api serve`, a base URL as `api serve --authority`, a tenant the
/// authority does not serve (`common`), a PFX without `CertificatePassword`, and one prefix
/// per credential error.
#[test]
pub(super) fn errors_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let authority = Server::start(&[
        "authority",
        "serve",
        "--dir",
        auth_dir.to_str().unwrap(),
        "--tenant",
        "dev",
    ]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    let base = issuer.trim_end_matches("/dev/v2.0").to_string();
    let cert = new_registered_cert(dir.path(), auth_dir.to_str().unwrap());

    // The API's own self-signed certificate is not trusted by the authority's CA alone.
    let api = binding_api(&issuer, &ca, &[]);
    let api_url = format!("https://{}", api.ready["addr"].as_str().unwrap());
    let config = d("appsettings.json");
    write_config(&config, &issuer, &cert, &api_url, "MTLS_POP");
    let cfg = config.to_str().unwrap();
    let err = run_err(&["call", "--config", cfg, "--api", "Whoami", "--ca-cert", &ca]);
    assert!(
        err.contains("TLS certificate is not trusted") && err.contains("--ca-cert"),
        "{err}"
    );
    // Both anchors, --ca-cert repeated: 200.
    let api_cert = api.ready["tls_cert"].as_str().unwrap();
    let out = run_ok(&[
        "call",
        "--config",
        cfg,
        "--api",
        "Whoami",
        "--ca-cert",
        &ca,
        "--ca-cert",
        api_cert,
    ]);
    assert!(out.contains("x5t#S256"), "{out}");

    // api serve: the authority's CA missing; then its base URL instead of the issuer.
    let err = run_err(&["api", "serve", "--authority", &issuer, "--audience", "a"]);
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );
    let err = run_err(&[
        "api",
        "serve",
        "--authority",
        &base,
        "--audience",
        "a",
        "--ca-cert",
        &ca,
    ]);
    assert!(
        err.contains("issuer URL") && err.contains(&format!("{base}/<tenant>/v2.0")),
        "{err}"
    );

    // A tenant the authority does not serve: it says which one it serves.
    let common = d("common.json");
    write_config(
        &common,
        &format!("{base}/common/v2.0"),
        &cert,
        &api_url,
        "MTLS_POP",
    );
    let err = run_err(&[
        "token",
        "--config",
        common.to_str().unwrap(),
        "--ca-cert",
        &ca,
    ]);
    assert!(
        err.contains("tenant `dev`") && err.contains("`common`") && err.contains(&issuer),
        "{err}"
    );

    // A password-protected PFX without CertificatePassword; one prefix per error.
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "p",
        "--out",
        d("p").to_str().unwrap(),
        "--pfx",
        "pw-123",
    ]);
    let pfx = d("pfx.json");
    write_config(&pfx, &issuer, &d("p.pfx"), &api_url, "MTLS_POP");
    let err = run_err(&["token", "--config", pfx.to_str().unwrap(), "--ca-cert", &ca]);
    assert!(
        err.contains("no CertificatePassword") && !err.contains("wrong password"),
        "{err}"
    );
    assert!(!err.contains("pw-123"), "{err}");
    assert_eq!(
        err.matches("AzureAd.ClientCredentials[0] (Path)").count(),
        1,
        "one prefix: {err}"
    );
}

/// Output for people: the bearer demo marks the stolen token's success as the expected
/// weakness (not `[ok]`), every demo ends with what it proved, the DPoP demo shows the proof
/// key's thumbprint (what `cnf.jkt` holds) rather than the certificate's, and log lines on a
/// stderr that is not a terminal carry no ANSI colour codes.
#[test]
pub(super) fn output_for_people() {
    let out = run_ok(&["demo", "--scheme", "bearer"]);
    let stolen: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("another certificate") || l.contains("no certificate"))
        .collect();
    assert!(!stolen.is_empty(), "{out}");
    for l in stolen {
        assert!(l.starts_with("[weak]") && l.contains("expected"), "{l}");
    }
    assert!(
        out.trim_end().lines().last().unwrap().contains("Proven:"),
        "{out}"
    );

    let out = run_ok(&["demo", "--scheme", "dpop"]);
    assert!(
        out.trim_end().lines().last().unwrap().contains("Proven:"),
        "{out}"
    );
    assert!(
        !out.contains("x5t#S256 ="),
        "no certificate thumbprint: {out}"
    );
    let shown = out
        .split_once("proof key thumbprint (RFC 7638) = ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("proof key thumbprint shown: {out}"));
    assert!(out.contains(&format!("cnf.jkt = {shown}")), "{out}");

    // A tracing warning (a credential loaded after an earlier one failed), stderr a pipe.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("app");
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "a",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let config = dir.path().join("c.json");
    let cfg = serde_json::json!({"AzureAd": {
    "Authority": "https://127.0.0.1:1/t/v2.0", "ClientId": "a",
    "ClientCredentials": [
        {"SourceType": "Path", "CertificateDiskPath": dir.path().join("missing.pem")},
        {"SourceType": "Path", "CertificateDiskPath": dir.path().join("app.pem")}
    ]}});
    std::fs::write(&config, cfg.to_string()).unwrap();
    let out = bin()
        .args([
            "token",
            "--config",
            config.to_str().unwrap(),
            "--scope",
            "x",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARN"), "{err}");
    assert!(!err.contains('\u{1b}'), "ANSI codes on a pipe: {err:?}");
}

/// What is implicit is said: every subcommand's `--help` ends with an example; `token`'s help
/// names its default scheme; `register` without a credential names both `--cert` and
/// `--secret`; `--signing-alg`'s help and error list the same algorithms; `--scheme` is
/// spelled the same in help and errors.
#[test]
pub(super) fn help_and_errors_say_what_is_implicit() {
    let commands: [&[&str]; 9] = [
        &["demo"],
        &["authority", "serve"],
        &["authority", "register"],
        &["cert", "new"],
        &["token"],
        &["call"],
        &["api", "serve"],
        &["inspect"],
        &["bench"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let help = run_ok(&args);
        // The last paragraph (however the terminal width wraps it) is the example.
        let last = help.trim_end().rsplit("\n\n").next().unwrap_or_default();
        assert!(
            last.starts_with("Example") && last.contains("\n  certbound "),
            "{c:?} --help ends with an example: {help}"
        );
    }
    let help = run_ok(&["token", "--help"]);
    assert!(
        help.contains("Default: the first DownstreamApis entry's ProtocolScheme, else bearer"),
        "{help}"
    );
    assert!(help.contains("bearer, mtls_pop, pop or dpop"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let auth_dir = dir.path().join("authority");
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir.to_str().unwrap()]);
    let err = run_err(&[
        "authority",
        "register",
        "--dir",
        auth_dir.to_str().unwrap(),
        "--client-id",
        "x",
    ]);
    assert!(err.contains("--cert") && err.contains("--secret"), "{err}");
    drop(authority);

    let help = run_ok(&["authority", "serve", "--help"]);
    assert!(help.contains("ES256, RS256 or PS256"), "{help}");
    for alg in ["HS256", "ES384"] {
        let err = run_err(&[
            "authority",
            "serve",
            "--dir",
            dir.path().join(alg).to_str().unwrap(),
            "--signing-alg",
            alg,
        ]);
        assert!(err.contains("use ES256, RS256 or PS256"), "{alg}: {err}");
        assert!(!dir.path().join(alg).exists(), "nothing created for {alg}");
    }

    let help = run_ok(&["demo", "--help"]);
    assert!(
        help.contains("mtls_pop (default), bearer, dpop, pop or mtls"),
        "{help}"
    );
    let err = run_err(&["demo", "--scheme", "nope"]);
    assert!(err.contains("bearer, mtls_pop, dpop, pop or mtls"), "{err}");
    assert!(!err.contains("MTLS_POP"), "one spelling: {err}");
}
