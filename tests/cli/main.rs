//! The integration tests of the `certbound` crate, one binary for all of them (one link of
//! the crate graph instead of one per file). This file and `flows`, `output`, `proofs`,
//! `register` drive the `certbound` binary exactly as docs/command-line.md describes (the
//! stable contract); the other modules are the end-to-end, hardening, interop, managed
//! identity, Redis and secrecy tests of the facade and the binary.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use certbound_test::process::ServerProcess;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certbound"));
    c.env_remove("RUST_LOG");
    c
}

/// A `certbound … serve` process (`certbound_test::process::ServerProcess`: killed on drop)
/// whose ready line's `addr` is on loopback.
struct Server(ServerProcess);

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut command = bin();
        command.args(args);
        let server = ServerProcess::start(command);
        let ready = &server.ready;
        assert!(
            ready["addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:")),
            "{ready}"
        );
        Server(server)
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(self) -> std::process::ExitStatus {
        self.0.terminate()
    }
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
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

mod authority_tokens;
mod cli_unicode;
mod e2e;
mod faults;
mod flows;
mod hardening;
mod interop_dpop;
mod managed_identity;
mod output;
mod proofs;
mod redis_cli;
mod register;
mod secrets;
