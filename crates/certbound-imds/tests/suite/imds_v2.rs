//! The IMDS v2 flow against the emulator: minting, the mTLS token request with the minted
//! certificate, per-identity certificates, re-minting, single-flight.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use certbound_imds::emulator::IdentityType;
use certbound_imds::{ManagedCertificateSource, ManagedIdentity};
use common::*;

#[tokio::test]
async fn end_to_end_mint_then_mtls_token_request() {
    let ca = Arc::new(certbound_core::ca::DevCa::generate("e2e CA").unwrap());
    let (mtls_base, _) = mtls_token_endpoint(&ca).await;
    let h = harness_with_ca(ca.clone(), &mtls_base, |c| c).await;
    let source = ManagedCertificateSource::new(h.imds(), ManagedIdentity::SystemAssigned);

    let minted = source.credential().await.unwrap();
    assert_eq!(minted.client_id(), SYSTEM_CLIENT_ID);
    assert_eq!(minted.tenant_id(), TENANT);
    assert_eq!(minted.identity_type(), "SystemAssigned");
    assert_eq!(
        minted.token_endpoint(),
        format!("{mtls_base}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        source.token_endpoint().await.unwrap(),
        minted.token_endpoint()
    );
    assert_eq!(source.client_id().await.unwrap(), SYSTEM_CLIENT_ID);
    let leaf = minted.certified_key().leaf();
    assert_eq!(leaf.issuer(), ca.cert().subject());
    assert!(
        leaf.subject().contains(SYSTEM_CLIENT_ID),
        "{}",
        leaf.subject()
    );
    assert_eq!(minted.certified_key().key().describe(), "RSA-2048");

    // The authority learnt exactly this certificate for this identity.
    let regs = h.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].client_id, SYSTEM_CLIENT_ID);
    assert_eq!(regs[0].object_id, h.system.object_id);
    assert_eq!(regs[0].tenant_id, TENANT);
    assert_eq!(regs[0].identity_type, IdentityType::SystemAssigned);
    assert_eq!(regs[0].thumbprint, minted.certified_key().thumbprint());

    // Step 4 of docs/wire-formats.md (IMDS v2): the client_credentials request over mTLS with the minted certificate.
    let http = mtls_client(&ca, minted.certified_key());
    let resp: serde_json::Value = http
        .post(minted.token_endpoint())
        .form(&minted.token_request_form("https://management.azure.com/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["tenant"], TENANT);
    assert_eq!(resp["x5t#S256"], regs[0].thumbprint.to_base64url());
    assert_eq!(resp["form"]["client_id"], SYSTEM_CLIENT_ID);
    assert_eq!(resp["form"]["token_type"], "mtls_pop");
    assert_eq!(resp["form"]["grant_type"], "client_credentials");
    assert_eq!(
        resp["form"]["scope"],
        "https://management.azure.com/.default"
    );
    let same_scope = minted.token_request_form("api://x/.default");
    assert_eq!(same_scope[2], ("scope", "api://x/.default".to_string()));

    // Second use: served from memory, no new mint.
    let again = source.credential().await.unwrap();
    assert_eq!(
        again.certified_key().thumbprint(),
        minted.certified_key().thumbprint()
    );
    assert_eq!(source.mints(), 1);
    assert_eq!(h.registrations().len(), 1);
}

#[tokio::test]
async fn system_and_user_assigned_identities_get_their_own_certificates() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let imds = h.imds();
    let system = imds.mint(&ManagedIdentity::SystemAssigned).await.unwrap();
    let by_client = imds
        .mint(&ManagedIdentity::ClientId(USER_CLIENT_ID.into()))
        .await
        .unwrap();
    let by_object = imds
        .mint(&ManagedIdentity::ObjectId(h.user.object_id.clone()))
        .await
        .unwrap();
    let by_resource = imds
        .mint(&ManagedIdentity::ResourceId(h.user.resource_id.clone()))
        .await
        .unwrap();

    assert_eq!(system.client_id(), SYSTEM_CLIENT_ID);
    assert_eq!(system.identity_type(), "SystemAssigned");
    for user in [&by_client, &by_object, &by_resource] {
        assert_eq!(user.client_id(), USER_CLIENT_ID);
        assert_eq!(user.identity_type(), "UserAssigned");
        assert!(
            user.certified_key()
                .leaf()
                .subject()
                .contains(USER_CLIENT_ID)
        );
    }
    let mut thumbs: Vec<_> = [&system, &by_client, &by_object, &by_resource]
        .iter()
        .map(|m| m.certified_key().thumbprint().to_base64url())
        .collect();
    thumbs.sort();
    thumbs.dedup();
    assert_eq!(thumbs.len(), 4, "every mint is a new key and certificate");

    let regs = h.registrations();
    assert_eq!(regs.len(), 4);
    assert_eq!(regs[0].identity_type, IdentityType::SystemAssigned);
    assert!(
        regs[1..]
            .iter()
            .all(|r| r.identity_type == IdentityType::UserAssigned
                && r.client_id == USER_CLIENT_ID
                && r.object_id == h.user.object_id)
    );

    // An identity the host does not have.
    let err = imds
        .platform_metadata(&ManagedIdentity::ClientId(
            "33333333-0000-0000-0000-000000000000".into(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, certbound_imds::ImdsError::Status { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn remints_when_the_certificate_nears_expiry() {
    let h = harness("https://127.0.0.1:1", |c| {
        c.with_certificate_lifetime(Duration::from_secs(20 * 60))
    })
    .await;
    let now = Arc::new(AtomicI64::new(certbound_core::now_unix()));
    let clock = now.clone();
    let imds = h
        .imds()
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    let source = ManagedCertificateSource::new(imds, ManagedIdentity::SystemAssigned);

    let first = source.credential().await.unwrap();
    assert!(
        !first.is_persistable(),
        "a 20-minute certificate is memory-only"
    );
    let refresh_at = first.refresh_at();
    assert!(refresh_at < first.not_after());
    assert!(first.not_after() - refresh_at <= 300);

    now.store(refresh_at - 1, Ordering::SeqCst);
    let same = source.credential().await.unwrap();
    assert_eq!(
        same.certified_key().thumbprint(),
        first.certified_key().thumbprint()
    );
    assert_eq!(source.mints(), 1);

    now.store(refresh_at, Ordering::SeqCst);
    let second = source.credential().await.unwrap();
    assert_ne!(
        second.certified_key().thumbprint(),
        first.certified_key().thumbprint()
    );
    assert_ne!(
        second.certified_key().key().public_key_bytes(),
        first.certified_key().key().public_key_bytes(),
        "re-minting makes a new key"
    );
    assert_eq!(source.mints(), 2);
    assert_eq!(h.registrations().len(), 2);
    assert_eq!(
        h.registrations()[1].thumbprint,
        second.certified_key().thumbprint()
    );

    // invalidate() forces a new mint even before the refresh time.
    source.invalidate().await;
    let third = source.credential().await.unwrap();
    assert_ne!(
        third.certified_key().thumbprint(),
        second.certified_key().thumbprint()
    );
    assert_eq!(source.mints(), 3);
}

#[tokio::test]
async fn long_lived_certificates_are_persistable() {
    let h = harness("https://127.0.0.1:1", |c| {
        c.with_certificate_lifetime(Duration::from_secs(48 * 3600))
    })
    .await;
    let minted = h
        .imds()
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap();
    assert!(minted.is_persistable());
    assert_eq!(minted.not_after() - minted.refresh_at(), 300);
}

#[tokio::test]
async fn concurrent_callers_share_one_mint() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let source = Arc::new(ManagedCertificateSource::new(
        h.imds(),
        ManagedIdentity::ClientId(USER_CLIENT_ID.into()),
    ));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = source.clone();
            tokio::spawn(async move { s.credential().await.unwrap() })
        })
        .collect();
    let mut thumbs = Vec::new();
    for t in tasks {
        thumbs.push(t.await.unwrap().certified_key().thumbprint());
    }
    assert!(thumbs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(source.mints(), 1);
    assert_eq!(h.registrations().len(), 1);
}

#[tokio::test]
async fn imds_address_honours_the_azure_sdk_override() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let base = h.emu.imds_base();
    let from_env = certbound_imds::ImdsClient::from_env_with(|k| {
        (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| base.clone())
    })
    .unwrap();
    assert_eq!(from_env.base_url().as_str(), format!("{base}/"));
    assert!(
        from_env
            .mint(&ManagedIdentity::SystemAssigned)
            .await
            .is_ok()
    );
    // Host:port without a scheme, as some SDKs accept.
    let bare = certbound_imds::ImdsClient::from_env_with(|_| Some(h.emu.addr.to_string())).unwrap();
    assert_eq!(bare.base_url().scheme(), "http");
    let default = certbound_imds::ImdsClient::from_env_with(|_| None).unwrap();
    assert_eq!(default.base_url().as_str(), "http://169.254.169.254/");
}

#[tokio::test]
async fn keeps_the_current_certificate_when_re_minting_fails_until_it_expires() {
    let h = harness("https://127.0.0.1:1", |c| {
        c.with_certificate_lifetime(Duration::from_secs(20 * 60))
    })
    .await;
    let now = Arc::new(AtomicI64::new(certbound_core::now_unix()));
    let clock = now.clone();
    let imds = h
        .imds()
        .with_retry_delay(Duration::from_millis(10))
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    let source = ManagedCertificateSource::new(imds, ManagedIdentity::SystemAssigned);
    let first = source.credential().await.unwrap();

    let Harness { emu, .. } = h;
    emu.shutdown().await;

    // Past the refresh point, IMDS gone: the still-valid certificate is kept.
    now.store(first.refresh_at(), Ordering::SeqCst);
    let kept = source.credential().await.unwrap();
    assert_eq!(
        kept.certified_key().thumbprint(),
        first.certified_key().thumbprint()
    );
    assert_eq!(source.mints(), 1);

    // Too close to expiry: the failure surfaces.
    now.store(first.not_after() - 10, Ordering::SeqCst);
    let err = source.credential().await.unwrap_err();
    assert!(
        matches!(err, certbound_imds::ImdsError::Unreachable { .. }),
        "{err}"
    );
}
