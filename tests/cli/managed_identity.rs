//! Managed identity through the `certbound` binary: `authority serve --imds-addr` (the IMDS
//! emulator next to the authority) and the managed-identity demo.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::process::Command;

use certbound_test::process::ServerProcess;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certbound"));
    c.env_remove("RUST_LOG");
    for v in [
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
    ] {
        c.env_remove(v);
    }
    c
}

/// A server process (`certbound_test::process::ServerProcess`: killed on drop).
struct Server(ServerProcess);

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut command = bin();
        command.args(args);
        Server(ServerProcess::start(command))
    }

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

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("plain HTTP client")
}

#[tokio::test]
async fn authority_serve_with_imds_addr_adds_the_emulator_to_the_ready_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("authority");
    let server = Server::start(&[
        "authority",
        "serve",
        "--dir",
        state.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--imds-addr",
        "127.0.0.1:0",
    ]);
    let ready = server.ready.clone();
    let imds_addr = ready["imds_addr"].as_str().expect("imds_addr").to_owned();
    assert!(imds_addr.starts_with("127.0.0.1:"), "{ready}");
    assert_ne!(ready["imds_addr"], ready["addr"]);
    let identity_endpoint = ready["identity_endpoint"]
        .as_str()
        .expect("identity_endpoint");
    assert_eq!(identity_endpoint, format!("http://{imds_addr}/msi/token"));
    let identity_header = ready["identity_header"].as_str().expect("identity_header");
    assert!(identity_header.len() >= 16, "{ready}");
    let tenant = ready["tenant"].as_str().unwrap();
    let system = ready["managed_identities"]["system_assigned"]["client_id"]
        .as_str()
        .expect("system-assigned identity");

    // getplatformmetadata: the system identity, the authority's tenant, a `server` header.
    let r = http()
        .get(format!(
            "http://{imds_addr}/metadata/identity/getplatformmetadata?cred-api-version=2.0"
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("server").is_some());
    let meta: Value = r.json().await.unwrap();
    assert_eq!(
        (meta["clientId"].as_str(), meta["tenantId"].as_str()),
        (Some(system), Some(tenant))
    );

    // App Service: the secret header from the ready line works, a wrong one does not.
    let resource = "https://management.azure.com/";
    let ask = |header: &str| {
        http()
            .get(identity_endpoint)
            .query(&[("api-version", "2019-08-01"), ("resource", resource)])
            .header("X-IDENTITY-HEADER", header)
            .send()
    };
    let r = ask(identity_header).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let (_, claims) = certbound_core::jose::decode_unverified(token).unwrap();
    assert_eq!(claims["iss"], ready["issuer"]);
    assert_eq!(claims["aud"], resource);
    assert_eq!(claims["client_id"], system);
    assert!(claims.get("cnf").is_none());
    assert_eq!(
        ask("wrong-secret-wrong-secret")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    // The same state directory keeps its identities across restarts.
    assert!(server.terminate().success());
    let again = Server::start(&[
        "authority",
        "serve",
        "--dir",
        state.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--imds-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(
        again.ready["managed_identities"]["system_assigned"]["client_id"],
        system
    );
    assert!(again.terminate().success());
}

/// An address where nothing listens (a port bound and released again).
fn closed_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run certbound");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_with_managed_identity_mints_through_imds_and_behaves() {
    let (ok, stdout, stderr) = run(bin().args(["demo", "--managed-identity", "--json"]));
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(ok, "{stderr}\n{report}");
    assert_eq!(report["ok"], true, "{report}");
    let steps = report["steps"].as_array().unwrap();
    let step = |n: &str| {
        steps
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("no step {n}: {report}"))
    };
    for name in [
        "authority",
        "api",
        "imds",
        "platform_metadata",
        "csr",
        "issued_certificate",
        "client_certificate",
        "token",
        "cache",
        "bound_call",
        "another_certificate",
        "no_certificate",
        "bearer_no_certificate",
    ] {
        assert_eq!(step(name)["ok"], true, "{name}: {report}");
    }
    // The token is bound to the certificate IMDS issued, for the identity IMDS named.
    let issued = &step("issued_certificate")["data"];
    let thumb = issued["x5t#S256"].as_str().unwrap();
    assert_eq!(step("token")["data"]["cnf"], thumb);
    assert_eq!(step("client_certificate")["data"]["x5t#S256"], thumb);
    assert_eq!(
        issued["client_id"],
        step("platform_metadata")["data"]["clientId"]
    );
    assert_eq!(step("csr")["data"]["key"], "RSA-2048");
    assert_eq!(step("bound_call")["status"], 200);
    assert_eq!(step("another_certificate")["status"], 401);
    assert_eq!(step("no_certificate")["status"], 401);
    // Never a token on stdout.
    assert!(!stdout.contains("eyJ"), "{stdout}");
}

#[test]
fn demo_with_managed_identity_narrates_the_imds_steps() {
    let (ok, stdout, stderr) = run(bin().args(["demo", "--managed-identity"]));
    assert!(ok, "{stderr}\n{stdout}");
    for text in [
        "getplatformmetadata",
        "RSASSA-PSS",
        "issuecredential",
        "x5t#S256",
        "all 13 steps behaved",
    ] {
        assert!(stdout.contains(text), "{text} missing:\n{stdout}");
    }
}

#[tokio::test]
async fn token_command_with_a_managed_certificate_credential() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("authority");
    let server = Server::start(&[
        "authority",
        "serve",
        "--dir",
        state.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--imds-addr",
        "127.0.0.1:0",
    ]);
    let ready = server.ready.clone();
    let config = dir.path().join("appsettings.json");
    std::fs::write(
        &config,
        serde_json::to_vec_pretty(&serde_json::json!({
            "AzureAd": {
                "Authority": ready["issuer"],
                "ClientCredentials": [{ "SourceType": "ManagedCertificate" }]
            }
        }))
        .unwrap(),
    )
    .unwrap();
    let system = ready["managed_identities"]["system_assigned"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = |scheme: &str, env: &[(&str, &str)]| {
        let mut c = bin();
        c.args([
            "token",
            "--config",
            config.to_str().unwrap(),
            "--scope",
            "api://orders/.default",
            "--scheme",
            scheme,
            "--ca-cert",
            ready["ca_cert"].as_str().unwrap(),
            "--json",
        ]);
        for (k, v) in env {
            c.env(k, v);
        }
        run(&mut c)
    };
    let imds = [(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ready["imds_base"].as_str().unwrap(),
    )];

    // Bound: a certificate minted through IMDS v2, the identity's client id.
    let (ok, stdout, stderr) = token("mtls_pop", &imds);
    assert!(ok, "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["token_type"], "mtls_pop");
    let thumb = out["binding_thumbprint"].as_str().expect("bound");
    let (_, claims) =
        certbound_core::jose::decode_unverified(out["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], thumb);
    assert_eq!(claims["client_id"], system.as_str());

    // Unbound: IMDS v1, then App Service when its variables are set.
    let (ok, stdout, stderr) = token("bearer", &imds);
    assert!(ok, "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["binding_thumbprint"], Value::Null);
    let nowhere = closed_address();
    let app_service = [
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", nowhere.as_str()),
        (
            "IDENTITY_ENDPOINT",
            ready["identity_endpoint"].as_str().unwrap(),
        ),
        (
            "IDENTITY_HEADER",
            ready["identity_header"].as_str().unwrap(),
        ),
    ];
    let (ok, stdout, stderr) = token("bearer", &app_service);
    assert!(ok, "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    let (_, claims) =
        certbound_core::jose::decode_unverified(out["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["client_id"], system.as_str());
    assert!(claims.get("cnf").is_none());

    // No IMDS where the configuration points: one clear line, non-zero exit.
    let (ok, _, stderr) = token(
        "mtls_pop",
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", nowhere.as_str())],
    );
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("managed"), "{stderr}");
    assert!(server.terminate().success());
}

#[test]
fn demo_with_managed_identity_at_trace_level_prints_no_token_or_key() {
    let out = bin()
        .args(["demo", "--managed-identity", "--json"])
        .env("RUST_LOG", "trace")
        .output()
        .expect("run certbound");
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The trace is not empty (the IMDS and token steps were logged) …
    assert!(all.contains("managed-identity certificate"), "no MI logs");
    // … and carries no JWT, private key or CSR body.
    assert!(!all.contains("eyJ"), "a JWT was logged");
    assert!(!all.contains("PRIVATE KEY"), "a private key was logged");
    assert!(!all.contains("\"csr\":\""), "the CSR body was logged");
}
