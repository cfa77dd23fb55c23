//! Unbound managed-identity tokens: IMDS v1 and App Service, and secrets kept out of Debug.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_imds::ImdsError;
use certbound_imds::emulator::{IdentityType, TokenChannel};
use certbound_imds::{AppServiceClient, ManagedIdentity};
use common::*;

#[tokio::test]
async fn imds_v1_tokens_for_system_and_user_assigned() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let imds = h.imds();
    let before = certbound_core::now_unix();
    let sys = imds
        .imds_v1_token(&ManagedIdentity::SystemAssigned, "https://vault.azure.net")
        .await
        .unwrap();
    let user = imds
        .imds_v1_token(
            &ManagedIdentity::ResourceId(h.user.resource_id.clone()),
            "https://storage.azure.com",
        )
        .await
        .unwrap();
    let seen = h.issuer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(sys.access_token(), seen[0].1);
    assert_eq!(seen[0].0.client_id, SYSTEM_CLIENT_ID);
    assert_eq!(seen[0].0.identity_type, IdentityType::SystemAssigned);
    assert_eq!(seen[0].0.channel, TokenChannel::ImdsV1);
    assert_eq!(seen[0].0.resource, "https://vault.azure.net");
    assert_eq!(user.access_token(), seen[1].1);
    assert_eq!(seen[1].0.client_id, USER_CLIENT_ID);
    assert_eq!(seen[1].0.identity_type, IdentityType::UserAssigned);
    assert_eq!(sys.token_type, "Bearer");
    assert_eq!(sys.resource.as_deref(), Some("https://vault.azure.net"));
    assert!(sys.expires_on >= before + 3600);
    assert!(
        h.registrations().is_empty(),
        "unbound tokens mint no certificate"
    );

    // The issuer's refusal surfaces as a 400 with its message.
    let err = imds
        .imds_v1_token(&ManagedIdentity::SystemAssigned, "https://refused.example")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("resource not allowed"), "{err}");
}

#[tokio::test]
async fn app_service_tokens_need_the_identity_header() {
    let h = harness("https://127.0.0.1:1", |c| {
        c.with_identity_header("s3cret-header-value")
    })
    .await;
    assert_eq!(h.emu.identity_header.as_str(), "s3cret-header-value");
    let endpoint = h.emu.identity_endpoint.clone();
    let header = h.emu.identity_header.to_string();
    let app = AppServiceClient::from_env_with(|k| match k {
        "IDENTITY_ENDPOINT" => Some(endpoint.clone()),
        "IDENTITY_HEADER" => Some(header.clone()),
        _ => None,
    })
    .unwrap();
    let token = app
        .token(
            &ManagedIdentity::SystemAssigned,
            "https://management.azure.com",
        )
        .await
        .unwrap();
    let user = app
        .token(
            &ManagedIdentity::ObjectId(h.user.object_id.clone()),
            "https://management.azure.com",
        )
        .await
        .unwrap();
    {
        let seen = h.issuer.seen.lock().unwrap();
        assert_eq!(token.access_token(), seen[0].1);
        assert_eq!(seen[0].0.channel, TokenChannel::AppService);
        assert_eq!(seen[0].0.client_id, SYSTEM_CLIENT_ID);
        assert_eq!(user.access_token(), seen[1].1);
        assert_eq!(seen[1].0.client_id, USER_CLIENT_ID);
    }

    // Wrong or missing secret header: 401, and no token is issued.
    let wrong = AppServiceClient::new(&h.emu.identity_endpoint, "guess").unwrap();
    let err = wrong
        .token(
            &ManagedIdentity::SystemAssigned,
            "https://management.azure.com",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::Status { status: 401, .. }),
        "{err}"
    );
    let resp = reqwest::Client::new()
        .get(&h.emu.identity_endpoint)
        .query(&[("api-version", "2019-08-01"), ("resource", "https://x")])
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A wrong api-version is refused.
    let resp = reqwest::Client::new()
        .get(&h.emu.identity_endpoint)
        .query(&[("api-version", "2017-09-01"), ("resource", "https://x")])
        .header("X-IDENTITY-HEADER", "s3cret-header-value")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(h.issuer.seen.lock().unwrap().len(), 2);

    // Missing configuration names what is missing.
    let err =
        AppServiceClient::from_env_with(|k| (k == "IDENTITY_ENDPOINT").then(|| "http://x".into()))
            .unwrap_err();
    assert!(
        err.to_string().contains("missing: IDENTITY_HEADER"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    let h = harness("https://127.0.0.1:1", |c| {
        c.with_identity_header("hdr-0123456789abcdef")
    })
    .await;
    let dbg = format!("{:?}", h.emu);
    assert!(!dbg.contains("hdr-0123456789abcdef"), "{dbg}");

    let imds = h.imds();
    let token = imds
        .imds_v1_token(&ManagedIdentity::SystemAssigned, "https://vault.azure.net")
        .await
        .unwrap();
    let dbg = format!("{token:?}");
    assert!(!dbg.contains(token.access_token()), "{dbg}");
    assert!(dbg.contains("redacted"));

    let minted = imds.mint(&ManagedIdentity::SystemAssigned).await.unwrap();
    let pem = minted.certified_key().key().to_pkcs8_pem();
    let body: String = pem.lines().nth(3).unwrap().to_string();
    let dbg = format!("{minted:?}");
    assert!(!dbg.contains(&body), "{dbg}");
    let source =
        certbound_imds::ManagedCertificateSource::new(imds, ManagedIdentity::SystemAssigned);
    assert!(!format!("{source:?}").contains(&body));

    let app = AppServiceClient::new(&h.emu.identity_endpoint, "hdr-0123456789abcdef").unwrap();
    assert!(!format!("{app:?}").contains("hdr-0123456789abcdef"));
    // An error from the App Service endpoint does not echo the header either.
    let bad = AppServiceClient::new(&h.emu.identity_endpoint, "hdr-wrong-value-xyz").unwrap();
    let err = bad
        .token(&ManagedIdentity::SystemAssigned, "https://x")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hdr-wrong-value-xyz"), "{err}");
    assert!(
        !format!("{err:?}").contains("hdr-wrong-value-xyz"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_short_app_service_secret_is_refused_at_startup() {
    let ca = std::sync::Arc::new(certbound_core::ca::DevCa::generate("CA").unwrap());
    let config = certbound_imds::emulator::EmulatorConfig::new(
        ca,
        TENANT,
        "https://127.0.0.1:1",
        std::sync::Arc::new(RecordingIssuer::default()),
        std::sync::Arc::new(|_| {}),
    );
    // The default secret is random and long enough.
    assert!(config.identity_header.len() >= 32);
    let err = certbound_imds::emulator::spawn(
        "127.0.0.1:0".parse().unwrap(),
        config.with_identity_header("short"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
