//! An unmodified Azure SDK client (PyPI `azure-identity`, `ManagedIdentityCredential`)
//! obtains tokens from the emulator's App Service endpoint.
//!
//! Skipped with a printed reason when `python3 -c "import azure.identity"` fails and `CI` is
//! unset; fails in CI. Install with `python3 -m pip install azure-identity`.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::process::Command;

use certbound_imds::emulator::TokenChannel;
use common::*;

fn azure_identity_available() -> bool {
    Command::new("python3")
        .args(["-c", "import azure.identity"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn driver(endpoint: &str, header: &str, scope: &str, client_id: &str) -> std::process::Output {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/azure_identity_mi.py"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(scope).arg(client_id).env_clear();
    // Keep what Python needs to find its packages; drop any Azure/proxy configuration.
    for var in ["PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV", "LANG"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.env("IDENTITY_ENDPOINT", endpoint)
        .env("IDENTITY_HEADER", header)
        .env("NO_PROXY", "*")
        .output()
        .unwrap()
}

fn run_driver(endpoint: &str, header: &str, scope: &str, client_id: &str) -> serde_json::Value {
    let out = driver(endpoint, header, scope, client_id);
    assert!(
        out.status.success(),
        "azure-identity failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_identity_managed_identity_credential_gets_a_token() {
    if !azure_identity_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have azure-identity: python3 -m pip install azure-identity"
        );
        eprintln!(
            "SKIPPED: python3 cannot import azure.identity (python3 -m pip install azure-identity)"
        );
        return;
    }
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let endpoint = h.emu.identity_endpoint.clone();
    let header = h.emu.identity_header.to_string();

    let (e, hd) = (endpoint.clone(), header.clone());
    let sys = tokio::task::spawn_blocking(move || {
        run_driver(&e, &hd, "https://management.azure.com/.default", "")
    })
    .await
    .unwrap();
    let (e, hd) = (endpoint.clone(), header.clone());
    let user = tokio::task::spawn_blocking(move || {
        run_driver(&e, &hd, "https://vault.azure.net/.default", USER_CLIENT_ID)
    })
    .await
    .unwrap();

    let seen = h.issuer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(sys["token"], seen[0].1);
    assert_eq!(seen[0].0.channel, TokenChannel::AppService);
    assert_eq!(seen[0].0.client_id, SYSTEM_CLIENT_ID);
    assert_eq!(seen[0].0.resource, "https://management.azure.com");
    assert_eq!(user["token"], seen[1].1);
    assert_eq!(seen[1].0.client_id, USER_CLIENT_ID);
    assert_eq!(seen[1].0.resource, "https://vault.azure.net");
    let now = certbound_core::now_unix();
    assert!(sys["expires_on"].as_i64().unwrap() > now);

    // With the wrong secret header the SDK gets no token (and says why).
    let e = endpoint.clone();
    let out = tokio::task::spawn_blocking(move || {
        driver(
            &e,
            "not-the-secret",
            "https://management.azure.com/.default",
            "",
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("ModuleNotFoundError"), "{stderr}");
    assert!(
        stderr.contains("401") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
    assert_eq!(h.issuer.seen.lock().unwrap().len(), 2);
}
