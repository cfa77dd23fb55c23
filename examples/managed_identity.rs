//! A managed identity's binding certificate, minted through IMDS v2, and a token bound to it.
//!
//! ```sh
//! cargo run --example managed_identity
//! ```
//!
//! On an Azure host the app has no certificate of its own: it asks the instance metadata
//! service (IMDS) for one. This example runs the IMDS v2 emulator next to the development
//! authority and walks the same path: platform metadata (the identity's client and tenant
//! id), an RSA key and a CSR sent to `issuecredential`, a certificate from the authority's
//! CA, and then an `MTLS_POP` token bound to that certificate. Everything runs on loopback
//! with fresh state (`certbound::local::LocalStack`); no cloud account involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use certbound::client::managed::{ImdsClient, ManagedIdentity, ManagedIdentityCredential};
use certbound::local::LocalStack;
use certbound::{App, HeaderOptions};

const SCOPE: &str = "api://orders/.default";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The authority, and the IMDS emulator wired to it: the emulator issues certificates
    // from the authority's CA and registers each minted identity with the authority.
    let stack = LocalStack::builder().imds().start().await?;
    let emulator = stack.imds()?;
    println!("IMDS emulator at {}", emulator.imds_base());

    // Step 1 of IMDS v2: who am I? (On Azure the base URL is http://169.254.169.254.)
    let imds = ImdsClient::new(&emulator.imds_base())?;
    let meta = imds
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .context("getplatformmetadata failed")?;
    println!(
        "platform metadata: clientId {}, tenantId {}",
        meta.client_id, meta.tenant_id
    );

    // Step 2: the credential makes a key and CSR and calls `issuecredential`. It keeps
    // the certificate in memory and mints a new one before this one expires.
    let credential = Arc::new(ManagedIdentityCredential::new(
        imds,
        ManagedIdentity::SystemAssigned,
    ));
    let minted = credential.minted().await.context("minting failed")?;
    let leaf = minted.certified_key().leaf();
    let x5t = minted.certified_key().thumbprint();
    println!(
        "minted certificate: {} ({}), issuer {}, x5t#S256 {x5t}, valid until {}",
        leaf.subject(),
        minted.certified_key().key().describe(),
        leaf.issuer(),
        certbound::core::fmt_unix(leaf.not_after())
    );
    ensure!(
        leaf.issuer() == stack.ca_cert().subject(),
        "the certificate should come from the authority's CA"
    );

    // Step 3: the app uses the managed identity as its credential. The token request goes
    // to the endpoint IMDS named, with the identity's client id, over mTLS with the
    // minted certificate. (The client id given here only names the app in logs.)
    let app = App::builder()
        .client_id("orders-worker")
        .authority(stack.issuer())
        .credential(credential)
        .trust_anchors(stack.trust_anchors().clone())
        .build()?;
    let token = app
        .acquire_token_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await?;
    let (_, claims) = certbound::core::jose::decode_unverified(token.access_token.expose())
        .context("the access token is not a JWT")?;
    let cnf = claims["cnf"]["x5t#S256"].as_str().unwrap_or("none");
    let client = claims["client_id"].as_str().unwrap_or("?");
    println!(
        "token: type {}, expires in {} s, client_id {client}, cnf.x5t#S256 {cnf}",
        token.token_type,
        token.expires_on - certbound::core::now_unix(),
    );
    ensure!(
        token.token_type.eq_ignore_ascii_case("mtls_pop") && cnf == x5t.to_base64url(),
        "the token should be bound to the minted certificate"
    );
    ensure!(
        client == meta.client_id,
        "the token should be issued to the managed identity"
    );

    stack.shutdown().await;
    Ok(())
}
