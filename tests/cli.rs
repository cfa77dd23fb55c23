//! Drives the `certbound` binary exactly as docs/command-line.md describes (the stable contract).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certbound"));
    c.env_remove("RUST_LOG");
    c
}

/// A server process; killed (SIGTERM first) on drop.
struct Server {
    child: Child,
    ready: Value,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn certbound");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line:?}"));
        assert!(
            ready["addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:")),
            "{ready}"
        );
        Server { child, ready }
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run certbound");
    assert!(
        out.status.success(),
        "certbound {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs certbound with stdout a pipe whose reading end is already closed: its first write
/// to stdout fails with EPIPE (what `certbound … | head -1` does once `head` has exited).
fn run_with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run certbound")
}

/// A closed stdout is a normal exit: status 0, no panic, nothing on stderr.
fn assert_quiet_exit(what: &str, out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(out.status.success(), "{what}: {:?}: {err}", out.status);
    assert!(
        err.trim().is_empty(),
        "{what}: stderr should be empty: {err}"
    );
}

/// An unsigned JWT with `header` and `claims` (for `inspect`, which does not verify).
fn unsigned_jwt(header: &str, claims: &str) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.c2ln", b.encode(header), b.encode(claims))
}

fn write_config(path: &Path, issuer: &str, cert: &Path, api_url: &str, scheme: &str) {
    let cfg = serde_json::json!({
        "AzureAd": {
            "Authority": issuer,
            "ClientId": "cli-app",
            "ClientCredentials": [
                { "SourceType": "Path", "CertificateDiskPath": cert }
            ]
        },
        "DownstreamApis": {
            "Whoami": {
                "BaseUrl": api_url,
                "RelativePath": "/whoami",
                "ProtocolScheme": scheme,
                "RequestAppToken": true,
                "Scopes": ["api://cli-api/.default"]
            }
        }
    });
    std::fs::write(path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

/// `certbound api serve` for `api://cli-api` requiring binding, with `extra` flags.
fn binding_api(issuer: &str, ca: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "api",
        "serve",
        "--authority",
        issuer,
        "--audience",
        "api://cli-api",
        "--ca-cert",
        ca,
        "--require-binding",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `certbound cert new` of `dir/app.pem` + `dir/app.key`, registered as `cli-app`.
fn new_registered_cert(dir: &Path, auth_dir: &str) -> PathBuf {
    let prefix = dir.join("app");
    run_ok(&[
        "cert",
        "new",
        "--cn",
        "cli-app",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let cert = dir.join("app.pem");
    register(auth_dir, &cert);
    cert
}

/// `certbound authority register` of `cert` as `cli-app` for `api://cli-api`.
fn register(auth_dir: &str, cert: &Path) {
    run_ok(&[
        "authority",
        "register",
        "--dir",
        auth_dir,
        "--client-id",
        "cli-app",
        "--cert",
        cert.to_str().unwrap(),
        // mTLS for the bound schemes, private_key_jwt for bearer, DPoP and PoP.
        "--auth",
        "self_signed_tls_client_auth",
        "--auth",
        "private_key_jwt",
        "--audience",
        "api://cli-api",
    ]);
}

#[test]
fn demo_json_reports_every_step() {
    let out = bin().args(["demo", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["ok"], true, "{report}");
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for expected in [
        "token",
        "bound_call",
        "another_certificate",
        "no_certificate",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let status = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap()["status"].as_u64();
    assert_eq!(status("bound_call"), Some(200));
    assert_eq!(status("another_certificate"), Some(401));
    assert_eq!(status("no_certificate"), Some(401));
    // The demo never prints a token.
    assert!(!stdout.contains("eyJ"), "a JWT leaked into the demo output");
}

#[test]
fn full_cli_flow_authority_token_api_call_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();

    let authority = Server::start(&[
        "authority",
        "serve",
        "--dir",
        auth_dir_s,
        "--addr",
        "127.0.0.1:0",
    ]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    assert!(Path::new(&ca).is_file(), "ca_cert path {ca}");
    assert!(authority.ready["tenant"].as_str().is_some());

    // A client certificate, registered while the authority runs.
    let cert = new_registered_cert(dir.path(), auth_dir_s);
    assert!(cert.is_file() && d("app.key").is_file());

    // The protected API, requiring binding.
    let api = binding_api(&issuer, &ca, &["--addr", "127.0.0.1:0"]);
    let api_url = format!("https://{}", api.ready["addr"].as_str().unwrap());
    let api_ca = api.ready["tls_cert"].as_str().map(str::to_owned);

    // A bound token.
    let config = d("appsettings.json");
    write_config(&config, &issuer, &cert, &api_url, "MTLS_POP");
    let out = run_ok(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "mtls_pop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    let token: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        token["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("mtls_pop")
    );
    assert_eq!(token["source"], "identity_provider");
    let thumb = token["binding_thumbprint"]
        .as_str()
        .expect("bound")
        .to_string();
    assert_eq!(thumb.len(), 43);
    let access = token["access_token"].as_str().unwrap().to_string();

    // Nobody reading stdout: token (from the cache now) and register end quietly.
    let out = run_with_closed_stdout(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "mtls_pop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    assert_quiet_exit("token | (closed)", &out);
    let out = run_with_closed_stdout(&[
        "authority",
        "register",
        "--dir",
        auth_dir_s,
        "--client-id",
        "cli-app",
        "--cert",
        cert.to_str().unwrap(),
        "--audience",
        "api://cli-api",
    ]);
    assert_quiet_exit("authority register | (closed)", &out);

    // inspect: the binding matches the certificate; another certificate does not.
    let out = bin()
        .args(["inspect", "-", "--cert", cert.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(access.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase()
        + &String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("not verified") || text.contains("not verify"),
        "{text}"
    );
    assert!(text.contains(&thumb.to_lowercase()), "{text}");

    // call: the API answers 200 over mTLS with the bound token (trusting the API's cert).
    let mut call_args = vec![
        "call".to_string(),
        "--config".into(),
        config.to_str().unwrap().into(),
        "--api".into(),
        "Whoami".into(),
    ];
    let api_trust = api_ca.clone().unwrap_or_else(|| ca.clone());
    call_args.extend(["--ca-cert".to_string(), api_trust.clone()]);
    // The authority's CA must be trusted too: point SSL_CERT_FILE at a bundle of both.
    let bundle = d("bundle.pem");
    let mut pem = std::fs::read_to_string(&ca).unwrap();
    pem.push_str(&std::fs::read_to_string(&api_trust).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let out = bin()
        .args(&call_args)
        .env("SSL_CERT_FILE", &bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["cnf"]["x5t#S256"], thumb.as_str());
    let closed: Vec<&str> = call_args.iter().map(String::as_str).collect();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(&closed)
        .env("SSL_CERT_FILE", &bundle)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_quiet_exit("call | (closed)", &out);

    // call with the Bearer scheme (unbound token) on the binding-required API: 401, non-zero exit.
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    let out = bin()
        .args(&call_args)
        .env("SSL_CERT_FILE", &bundle)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("invalid_token"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(!err.contains("eyJ"), "no token in errors: {err}");

    // Servers stop cleanly on SIGTERM.
    assert!(api.terminate().success());
    assert!(authority.terminate().success());
}

/// `certbound call` and `certbound token` with every protocol scheme, against the
/// development authority and the sample API (binding required, certificate allow-list).
#[test]
fn call_and_token_support_every_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir_s]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    let cert = new_registered_cert(dir.path(), auth_dir_s);
    let thumb = certbound_core::Certificate::load_file(&cert)
        .unwrap()
        .thumbprint()
        .to_base64url();
    let api = binding_api(&issuer, &ca, &["--allow-cert-thumbprint", &thumb]);
    let api_url = format!("https://{}", api.ready["addr"].as_str().unwrap());
    let api_trust = api.ready["tls_cert"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| ca.clone());
    let bundle = d("bundle.pem");
    let mut pem = std::fs::read_to_string(&ca).unwrap();
    pem.push_str(&std::fs::read_to_string(&api_trust).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let config = d("appsettings.json");
    let call = |scheme_flag: Option<&str>| {
        let mut args = vec![
            "call",
            "--config",
            config.to_str().unwrap(),
            "--api",
            "Whoami",
        ];
        if let Some(s) = scheme_flag {
            args.extend(["--scheme", s]);
        }
        bin()
            .args(&args)
            .env("SSL_CERT_FILE", &bundle)
            .output()
            .unwrap()
    };

    // Token schemes, named in the configuration (any case) or with --scheme.
    for (configured, member) in [("MTLS_POP", "x5t#S256"), ("dpop", "jkt"), ("POP", "kid")] {
        write_config(&config, &issuer, &cert, &api_url, configured);
        let out = call(None);
        assert!(
            out.status.success(),
            "{configured}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            body["cnf"][member].as_str().is_some_and(|t| t.len() == 43),
            "{configured}: {body}"
        );
        if member == "x5t#S256" {
            assert_eq!(body["cnf"][member], thumb.as_str());
        }
    }
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    for flag in ["DPoP", "pop", "mtls-pop"] {
        let out = call(Some(flag));
        assert!(
            out.status.success(),
            "--scheme {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // MTLS: the certificate alone, on the API's /certificate route.
    let cfg = serde_json::json!({
        "AzureAd": {
            "Authority": issuer, "ClientId": "cli-app",
            "ClientCredentials": [{ "SourceType": "Path", "CertificateDiskPath": cert }]
        },
        "DownstreamApis": { "Whoami": {
            "BaseUrl": api_url, "RelativePath": "/certificate", "ProtocolScheme": "MTLS"
        } }
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let out = call(None);
    assert!(
        out.status.success(),
        "MTLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["x5t#S256"], thumb.as_str());
    // Without the certificate (Bearer, no token is even asked for on this route): 401.
    let out = call(Some("bearer"));
    assert!(!out.status.success());

    // An API demanding DPoP nonces: `call` answers its use_dpop_nonce challenge once.
    let nonce_api = binding_api(&issuer, &ca, &["--dpop-nonce"]);
    assert_eq!(nonce_api.ready["dpop_nonce"], true);
    let nonce_url = format!("https://{}", nonce_api.ready["addr"].as_str().unwrap());
    let mut pem = std::fs::read_to_string(&bundle).unwrap();
    pem.push_str(&std::fs::read_to_string(nonce_api.ready["tls_cert"].as_str().unwrap()).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    write_config(&config, &issuer, &cert, &nonce_url, "DPoP");
    let out = call(None);
    assert!(
        out.status.success(),
        "DPoP with nonces: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["scheme"], "DPoP");
    assert!(nonce_api.terminate().success());

    // certbound token --scheme dpop: a DPoP-bound token; presented as Bearer it is refused.
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    let out = run_ok(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "dpop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    let token: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(token["token_type"], "DPoP");
    assert_eq!(token["binding_thumbprint"].as_str().map(str::len), Some(43));
    let access = token["access_token"].as_str().unwrap();
    let (_, claims) = certbound_core::jose::decode_unverified(access).unwrap();
    assert_eq!(claims["cnf"]["jkt"], token["binding_thumbprint"]);
    let err = bin()
        .args([
            "token",
            "--config",
            config.to_str().unwrap(),
            "--scheme",
            "mtls",
            "--ca-cert",
            &ca,
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(text.contains("no token"), "{text}");
    assert!(api.terminate().success());
    assert!(authority.terminate().success());
}

#[test]
fn demo_json_for_every_other_scheme() {
    for (scheme, steps) in [
        (
            "dpop",
            &[
                "token",
                "bound_call",
                "another_key",
                "replayed_proof",
                "bearer_no_proof",
            ][..],
        ),
        (
            "pop",
            &[
                "token",
                "bound_call",
                "another_key",
                "other_request",
                "bearer_no_proof",
            ][..],
        ),
        (
            "mtls",
            &["bound_call", "another_certificate", "no_certificate"][..],
        ),
        (
            "bearer",
            &["token", "bound_call", "another_certificate"][..],
        ),
    ] {
        let out = bin()
            .args(["demo", "--json", "--scheme", scheme])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{scheme}: {e}: {stdout}"));
        assert!(out.status.success(), "{scheme}: {report}");
        assert_eq!(report["ok"], true, "{report}");
        let names: Vec<_> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for s in steps {
            assert!(names.contains(s), "{scheme}: {names:?}");
        }
        let status = |n: &str| {
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == n)
                .unwrap()["status"]
                .as_u64()
        };
        assert_eq!(status("bound_call"), Some(200), "{scheme}");
        match scheme {
            "mtls" => {
                assert_eq!(status("another_certificate"), Some(403));
                assert_eq!(status("no_certificate"), Some(401));
            }
            "bearer" => assert_eq!(status("another_certificate"), Some(200)),
            _ => {
                for s in &steps[2..] {
                    assert_eq!(status(s), Some(401), "{scheme} {s}");
                }
            }
        }
        assert!(
            !stdout.contains("eyJ"),
            "{scheme}: a JWT leaked into the demo output"
        );
    }
    let out = bin()
        .args(["demo", "--managed-identity", "--scheme", "dpop"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--managed-identity works with"), "{err}");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = bin()
        .args(["token", "--config", missing.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.json"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let out = bin()
        .args(["call", "--config", bad.to_str().unwrap(), "--api", "X"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");

    let out = bin().args(["inspect", "not-a-token"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn bench_drives_many_mtls_connections_without_errors() {
    for target in ["api", "authority"] {
        let out = run_ok(&[
            "bench",
            "--target",
            target,
            "--connections",
            "24",
            "--duration",
            "1",
            "--json",
        ]);
        let r: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["target"], target);
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["connections"], 24);
        assert!(r["requests"].as_u64().unwrap() >= 24, "{r}");
        assert!(
            r["latency_ms"]["p99"].as_f64().unwrap() >= r["latency_ms"]["p50"].as_f64().unwrap()
        );
    }
}

/// A process that may refuse to start: its first stdout line (empty when it exited without
/// one). Killed on drop.
struct Spawned {
    child: Child,
    first_line: String,
}

impl Spawned {
    fn start(args: &[&str]) -> Spawned {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn certbound");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first_line)
            .expect("read stdout");
        Spawned { child, first_line }
    }

    /// Waits for the exit (after EOF on stdout) and returns the status and stderr.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Re-signs a compact JWS (SHR) with `key` after `edit` changed its payload.
fn resign(jws: &str, key: &certbound_core::PrivateKey, edit: impl FnOnce(&mut Value)) -> String {
    use certbound_core::b64;
    let (h, mut p) = certbound_core::jose::decode_unverified(jws).unwrap();
    edit(&mut p);
    let input = format!(
        "{}.{}",
        b64::encode(h.to_string()),
        b64::encode(p.to_string())
    );
    let sig = key
        .sign(key.default_jws_algorithm(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64::encode(sig))
}

/// One answer of the API: status and `WWW-Authenticate`.
struct Answer {
    status: u16,
    challenge: String,
}

/// docs/resource-server.md (proof origin) against `certbound api serve`: DPoP `htu` and SHR `u`/`p` must name the API's
/// own origin (`https://<--addr>` by default, else one of the repeatable `--external-url`s,
/// the one `Host` names); what the request claims is never trusted; a wildcard `--addr`
/// without `--external-url` refuses to start; every SHR is replay-protected; methods
/// compare case-sensitively. Tokens come from `certbound authority serve`, requests over
/// HTTP/1.1 with the `Host` a replayer or attacker would send.
#[test]
fn api_serve_checks_proofs_against_its_own_origins() {
    use certbound_core::pop::ProofKey;
    use certbound_core::{KeyKind, PrivateKey};

    const SECRET: &str = "origin-app-secret-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let auth_dir = dir.path().join("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir_s]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    run_ok(&[
        "authority",
        "register",
        "--dir",
        auth_dir_s,
        "--client-id",
        "origin-app",
        "--secret",
        SECRET,
        "--audience",
        "api://cli-api",
    ]);
    let api = |extra: &[&str]| {
        let mut args = vec![
            "api",
            "serve",
            "--authority",
            &issuer,
            "--audience",
            "api://cli-api",
            "--ca-cert",
            &ca,
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    };
    let first = api(&[]);
    let second = api(&[]);
    let gateway = api(&[
        "--external-url",
        "https://api.example.com",
        "--external-url",
        "https://gw.example.com/orders-api/",
    ]);
    let addr = |s: &Server| s.ready["addr"].as_str().unwrap().to_owned();
    let (a, b, g) = (addr(&first), addr(&second), addr(&gateway));
    // (c) A specific address without --external-url: the origin is https://IP:PORT.
    assert_eq!(first.ready["external_url"], Value::Null);
    assert_eq!(
        first.ready["proof_origins"],
        serde_json::json!([format!("https://{a}")])
    );
    assert_eq!(gateway.ready["external_url"], "https://api.example.com");
    assert_eq!(
        gateway.ready["external_urls"],
        serde_json::json!([
            "https://api.example.com",
            "https://gw.example.com/orders-api/"
        ])
    );
    assert_eq!(
        gateway.ready["proof_origins"],
        serde_json::json!([
            "https://api.example.com",
            "https://gw.example.com/orders-api"
        ])
    );

    let mut anchors = certbound_core::tls::TrustAnchors {
        extra: Vec::new(),
        system: false,
    };
    anchors.add_pem_file(Path::new(&ca)).unwrap();
    for s in [&first, &second, &gateway] {
        anchors
            .add_pem_file(Path::new(s.ready["tls_cert"].as_str().unwrap()))
            .unwrap();
    }
    let mut tls = certbound_core::tls::client_config(&anchors, None).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .build()
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let disco: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token_endpoint = disco["token_endpoint"].as_str().unwrap().to_owned();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "origin-app"),
            ("client_secret", SECRET),
            ("scope", "api://cli-api/.default"),
        ];
        let dpop_key = ProofKey::generate().unwrap();
        let proof = dpop_key
            .dpop_proof("POST", &token_endpoint, None, None)
            .unwrap();
        let r: Value = http
            .post(&token_endpoint)
            .header("DPoP", proof)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["token_type"], "DPoP", "{r}");
        let dpop_token = r["access_token"].as_str().unwrap().to_owned();
        let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let copy = PrivateKey::from_der(&signer.to_pkcs8_der()).unwrap();
        let pop_key = ProofKey::from_private_key(copy, signer.default_jws_algorithm()).unwrap();
        let mut pop_form = form.to_vec();
        let req_cnf = pop_key.req_cnf();
        pop_form.extend([("token_type", "pop"), ("req_cnf", req_cnf.as_str())]);
        let r: Value = http
            .post(&token_endpoint)
            .form(&pop_form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["token_type"], "pop", "{r}");
        let pop_token = r["access_token"].as_str().unwrap().to_owned();

        // GET https://{to}/whoami with `Host: host`.
        let call = |to: &str, host: &str, authorization: String, dpop: Option<String>| {
            let mut req = http
                .get(format!("https://{to}/whoami"))
                .header("host", host)
                .header("authorization", authorization);
            if let Some(p) = dpop {
                req = req.header("dpop", p);
            }
            async move {
                let resp = req.send().await.unwrap();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                Answer {
                    status: resp.status().as_u16(),
                    challenge,
                }
            }
        };
        let dpop = |method: &str, url: &str| {
            Some(
                dpop_key
                    .dpop_proof(method, url, Some(&dpop_token), None)
                    .unwrap(),
            )
        };
        let dpop_auth = || format!("DPoP {dpop_token}");
        let shr = |method: &str, url: &str| {
            format!(
                "PoP {}",
                pop_key
                    .signed_http_request(&pop_token, method, url)
                    .unwrap()
            )
        };
        let refused = |r: &Answer, scheme: &str, error: &str| {
            assert_eq!(r.status, 401, "{}", r.challenge);
            assert!(
                r.challenge.starts_with(scheme)
                    && r.challenge.contains(&format!("error=\"{error}\"")),
                "{}",
                r.challenge
            );
        };
        let not_origin = "the request's Host is not an origin of this server";
        let first_url = format!("https://{a}/whoami");

        // (a) A pair made for the first API, replayed to the second with Host forged.
        let p = dpop("GET", &first_url);
        let r = call(&b, &a, dpop_auth(), p.clone()).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        assert!(r.challenge.contains(not_origin), "{}", r.challenge);
        assert_eq!(call(&a, &a, dpop_auth(), p).await.status, 200);
        let s = shr("GET", &first_url);
        let r = call(&b, &a, s.clone(), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(r.challenge.contains(not_origin), "{}", r.challenge);
        assert_eq!(call(&a, &a, s, None).await.status, 200);

        // (b) A proof naming the attacker's host, with that Host.
        let evil = "https://attacker.example/whoami";
        let r = call(&a, "attacker.example", dpop_auth(), dpop("GET", evil)).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        let r = call(&a, "attacker.example", shr("GET", evil), None).await;
        refused(&r, "PoP", "invalid_token");
        // Each configured origin with its own Host (one with a path prefix) is accepted...
        for (url, host) in [
            ("https://api.example.com/whoami", "api.example.com"),
            ("https://gw.example.com/orders-api/whoami", "gw.example.com"),
        ] {
            let r = call(&g, host, dpop_auth(), dpop("GET", url)).await;
            assert_eq!(r.status, 200, "{url}: {}", r.challenge);
            let r = call(&g, host, shr("GET", url), None).await;
            assert_eq!(r.status, 200, "{url}: {}", r.challenge);
        }
        // ...another configured origin than the one Host names is not, nor the listen address.
        let r = call(
            &g,
            "gw.example.com",
            dpop_auth(),
            dpop("GET", "https://api.example.com/whoami"),
        )
        .await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        let r = call(
            &g,
            &g,
            dpop_auth(),
            dpop("GET", &format!("https://{g}/whoami")),
        )
        .await;
        refused(&r, "DPoP", "invalid_dpop_proof");

        // (d) An SHR without nonce is accepted once, its replay refused.
        let bare = pop_key
            .signed_http_request(&pop_token, "GET", &first_url)
            .unwrap();
        let bare = resign(&bare, &signer, |p| {
            p.as_object_mut().unwrap().remove("nonce");
        });
        assert_eq!(call(&a, &a, format!("PoP {bare}"), None).await.status, 200);
        let r = call(&a, &a, format!("PoP {bare}"), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(r.challenge.contains("replayed"), "{}", r.challenge);

        // (e) Methods are case-sensitive: m="get" and htm="get" are not GET.
        let r = call(&a, &a, shr("get", &first_url), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(
            r.challenge.contains("another HTTP method"),
            "{}",
            r.challenge
        );
        let r = call(&a, &a, dpop_auth(), dpop("get", &first_url)).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
    });

    // (c) A wildcard --addr without --external-url refuses to start, naming the flag.
    for wildcard in ["0.0.0.0:0", "[::]:0"] {
        let s = Spawned::start(&[
            "api",
            "serve",
            "--authority",
            &issuer,
            "--audience",
            "api://cli-api",
            "--ca-cert",
            &ca,
            "--addr",
            wildcard,
        ]);
        assert_eq!(s.first_line, "", "started on {wildcard}");
        let (status, err) = s.exit();
        assert!(!status.success());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("--external-url"), "{err}");
    }
    // With --external-url it serves there.
    let s = Spawned::start(&[
        "api",
        "serve",
        "--authority",
        &issuer,
        "--audience",
        "api://cli-api",
        "--ca-cert",
        &ca,
        "--addr",
        "0.0.0.0:0",
        "--external-url",
        "https://api.example.com",
    ]);
    let ready: Value = serde_json::from_str(s.first_line.trim()).unwrap();
    assert!(
        ready["addr"].as_str().unwrap().starts_with("0.0.0.0:"),
        "{ready}"
    );
    assert_eq!(
        ready["proof_origins"],
        serde_json::json!(["https://api.example.com"])
    );
    drop(s);

    for s in [first, second, gateway, authority] {
        assert!(s.terminate().success());
    }
}

/// `authority register`: repeatable `--auth`, `--subject-dn` and `--san-*`, what it
/// prints, what it refuses, and that the registered methods are the only ones accepted.
#[test]
fn register_methods_and_tls_client_auth_subjects() {
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
    let out = json(&token_as("cli-mtls-only", "mtls_pop"));
    assert!(out["binding_thumbprint"].is_string(), "{out}");
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
fn closed_stdout_is_a_quiet_exit() {
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
fn cert_new_refuses_to_overwrite_without_force() {
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
fn register_and_cert_new_refuse_a_directory_that_is_no_authority() {
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
fn authority_serve_that_cannot_listen_leaves_no_directory() {
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

#[test]
fn inspect_saturates_extreme_exp_and_takes_any_text() {
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
fn misspelt_configuration_keys_are_warned_about() {
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
fn free_port() -> u16 {
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
fn readme_quick_start_reaches_a_bound_call() {
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
            servers.push(Server { child, ready });
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
fn run_err(args: &[&str]) -> String {
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
fn errors_name_the_fix() {
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
fn output_for_people() {
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
fn help_and_errors_say_what_is_implicit() {
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
