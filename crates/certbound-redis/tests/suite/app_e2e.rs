//! End to end with the real client (`certbound_client::App`) and the development authority:
//! two replicas, each with its own L1, share one certificate-bound token through Redis.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::sync::Arc;

use certbound_authority::{AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority};
use certbound_client::{App, AppBuilder, AppConfig, HeaderOptions, TokenSource};
use certbound_core::KeyKind;
use certbound_core::ca::{self, IssueSpec};
use certbound_redis::TieredCache;
use common::*;

const SCOPE: &str = "api://resource/.default";
const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// What the facade does for `App::from_config_file`: the client's own configuration, plus
/// the `TokenCache:Redis` section turned into a tiered cache.
fn replica(path: &std::path::Path, ca_path: &std::path::Path) -> App {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read config")).expect("json");
    let cache = TieredCache::from_json_lazy(&doc, std::iter::empty(), 1000)
        .expect("redis config")
        .expect("TokenCache:Redis present");
    AppBuilder::from_config(
        AppConfig::from_file_with_env(path, std::iter::empty()).expect("app config"),
    )
    .add_ca_cert_file(ca_path)
    .token_cache(Arc::new(cache))
    .build()
    .expect("app")
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_bound_token_through_redis() {
    if !redis_available() {
        return;
    }
    certbound_core::tls::install_default_provider();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let running =
        DevAuthority::open_or_init(dir.path().join("authority"), AuthorityOptions::default())
            .unwrap()
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let cert = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
    running
        .register(ClientRegistration::with_certificate(
            "app-redis",
            cert.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        ))
        .unwrap();
    let pem_path = dir.path().join("app.pem");
    std::fs::write(
        &pem_path,
        format!(
            "{}{}",
            cert.leaf().to_pem(),
            cert.key().to_pkcs8_pem().as_str()
        ),
    )
    .unwrap();
    let base = running
        .issuer()
        .trim_end_matches("/v2.0")
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    let config = serde_json::json!({
        "AzureAd": { "Instance": format!("{base}/"), "TenantId": running.tenant(), "ClientId": "app-redis",
            "ClientCredentials": [{"SourceType": "Path", "CertificateDiskPath": pem_path.display().to_string()}] },
        "TokenCache": { "Redis": { "ConnectionString": server.url(), "KeyPrefix": "e2e:", "EncryptionKey": KEY_B64 } }
    });
    let cfg_path = dir.path().join("appsettings.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let a = replica(&cfg_path, &running.ca_cert_path());
    // Single-flight still holds inside a process with the L2 in place.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move {
                a.authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
                    .await
                    .map(|h| h.value().to_owned())
            })
        })
        .collect();
    let mut values = Vec::new();
    for c in calls {
        values.push(c.await.unwrap().unwrap());
    }
    assert!(values.iter().all(|v| v == &values[0]));
    assert_eq!(a.token_requests_sent(), 1);
    let header_a = &values[0];
    assert!(header_a.starts_with("mtls_pop "), "bound token");

    // A second replica (fresh L1) finds the first one's token in Redis: no request.
    let b = replica(&cfg_path, &running.ca_cert_path());
    let t = b
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(b.token_requests_sent(), 0, "served from L2");
    assert_eq!(t.source, TokenSource::Cache);
    assert_eq!(format!("mtls_pop {}", t.access_token.expose()), *header_a);
    assert_eq!(t.binding_thumbprint, Some(cert.thumbprint()));

    // Redis holds no token text, no client id, no scope.
    let token_text = header_a.strip_prefix("mtls_pop ").unwrap();
    let keys = server.cli(&["KEYS", "*"]);
    let names: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(names.len(), 1, "{keys}");
    assert!(names[0].starts_with("e2e:") && names[0].len() == 4 + 64);
    let value = server.cli(&["GET", names[0]]);
    for needle in [&token_text[..20], "app-redis", "resource", "mtls_pop"] {
        assert!(
            !value.contains(needle) && !keys.contains(needle),
            "{needle} visible in Redis"
        );
    }
    running.shutdown().await;
}
