//! `TokenCache.Redis` in the configuration file reaches the CLI: two separate `certbound
//! token` processes share one token through the encrypted Redis L2 cache.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::process::Command;

use certbound_test::redis::{RedisServer, redis_available};

use certbound::authority::{AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority};
use certbound::core::KeyKind;
use certbound::core::ca::{self, IssueSpec};
use serde_json::Value;

/// A private redis-server (killed on drop), or `None` (skip) when it is not installed and
/// `CI` is unset.
fn start_redis() -> Option<RedisServer> {
    redis_available().then(RedisServer::start)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_cli_processes_share_a_token_through_redis() {
    let Some(redis) = start_redis() else { return };
    certbound::core::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let authority =
        DevAuthority::open_or_init(dir.path().join("a"), AuthorityOptions::default()).unwrap();
    let running = authority
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cert = ca::self_signed_certified_key(&IssueSpec::client("redis-cli-app"), KeyKind::EcP256)
        .unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "redis-cli-app",
            cert.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        ))
        .unwrap();
    let pem = dir.path().join("app.pem");
    std::fs::write(
        &pem,
        format!(
            "{}{}",
            cert.leaf().to_pem(),
            cert.key().to_pkcs8_pem().as_str()
        ),
    )
    .unwrap();
    let config = dir.path().join("appsettings.json");
    let doc = serde_json::json!({
        "AzureAd": { "Authority": running.issuer(), "ClientId": "redis-cli-app",
                     "ClientCredentials": [{ "SourceType": "Path", "CertificateDiskPath": pem }] },
        "TokenCache": { "Redis": { "ConnectionString": format!("redis://127.0.0.1:{}", redis.port),
                                   "KeyPrefix": "cbtest:",
                                   "EncryptionKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } }
    });
    std::fs::write(&config, serde_json::to_vec(&doc).unwrap()).unwrap();
    let ca = running.ca_cert_path();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args([
                "token",
                "--config",
                config.to_str().unwrap(),
                "--scope",
                "api://r/.default",
                "--scheme",
                "mtls_pop",
            ])
            .args(["--ca-cert", ca.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run();
    let second = run();
    assert_eq!(first["source"], "identity_provider");
    assert_eq!(
        second["source"], "cache",
        "the second process found the first one's token in Redis"
    );
    assert_eq!(first["access_token"], second["access_token"]);
    assert_eq!(
        second["binding_thumbprint"],
        cert.thumbprint().to_base64url()
    );

    // Redis holds the entry, encrypted: neither its key nor its value shows the token.
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = cli(&["--scan", "--pattern", "cbtest:*"]);
    let key = keys
        .lines()
        .next()
        .expect("one entry in Redis")
        .trim()
        .to_string();
    let value = cli(&["GET", &key]);
    let token = first["access_token"].as_str().unwrap();
    for text in [&keys, &value] {
        assert!(
            !text.contains(&token[..40]) && !text.contains("eyJ"),
            "token text visible in Redis"
        );
        assert!(
            !text.contains("redis-cli-app"),
            "client id visible in Redis"
        );
    }
    running.shutdown().await;
}
