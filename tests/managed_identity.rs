//! Managed identity through the `certbound` binary: `authority serve --imds-addr` (the IMDS
//! emulator next to the authority) and the managed-identity demo.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

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
        Server { child, ready }
    }

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
