//! Client credentials with a certificate-bound (`MTLS_POP`) token, configured from an
//! `appsettings.json` file.
//!
//! ```sh
//! cargo run --example client_credentials
//! ```
//!
//! The example starts the development authority on loopback with a registered client
//! certificate (`certbound::local::LocalStack`), writes the certificate and an
//! `appsettings.json` naming it to a temporary directory, and builds the app from that
//! file. It then asks for a token twice: the first comes from the authority and is bound to
//! the certificate (`cnf."x5t#S256"`), the second comes from the in-memory cache. No cloud
//! account involved; the token itself is never printed.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use anyhow::{Context as _, ensure};
use certbound::client::TokenSource;
use certbound::local::LocalStack;
use certbound::{AppConfig, HeaderOptions};

const CLIENT_ID: &str = "example-daemon";
const SCOPE: &str = "api://example-api/.default";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The development authority (an HTTPS token endpoint on a free loopback port, its CA
    // and registry in a temporary directory) and the app's identity: a self-signed
    // certificate the authority knows by its thumbprint (`self_signed_tls_client_auth`),
    // so the TLS handshake itself authenticates the app.
    let stack = LocalStack::builder()
        .audience("api://example-api")
        .client(CLIENT_ID)
        .start()
        .await?;

    // A deployment keeps the certificate (and its key) in a file the configuration names.
    let pem = stack.write_client_pem(CLIENT_ID)?;
    let settings = serde_json::json!({
        "AzureAd": {
            "Authority": stack.issuer(),
            "ClientId": CLIENT_ID,
            "ClientCredentials": [
                { "SourceType": "Path", "CertificateDiskPath": pem.display().to_string() }
            ]
        }
    });
    let file = stack.state_dir().join("appsettings.json");
    std::fs::write(&file, serde_json::to_string_pretty(&settings)?)?;
    println!("{}:\n{}", file.display(), std::fs::read_to_string(&file)?);

    // With a publicly trusted authority this is one line:
    //     let app = certbound::app_from_config_file(&file)?;
    // The development authority's TLS certificate comes from its own CA, so the example
    // takes the same path through `app_builder` and adds that CA as a trust anchor.
    let app = certbound::app_builder(AppConfig::from_file(&file)?)?
        .add_ca_cert_file(stack.ca_cert_path())
        .build()?;

    // First request: over mutual TLS with the certificate; the authority binds the token
    // to the certificate it saw in the handshake.
    let options = HeaderOptions::mtls_pop();
    let token = app.acquire_token_for_app(&[SCOPE], &options).await?;
    let (_, claims) = certbound::core::jose::decode_unverified(token.access_token.expose())
        .context("the access token is not a JWT")?;
    let cnf = claims["cnf"]["x5t#S256"].as_str().unwrap_or("none");
    let x5t = stack.certificate(CLIENT_ID)?.thumbprint().to_base64url();
    println!(
        "token: type {}, expires in {} s, from {:?}",
        token.token_type,
        token.expires_on - certbound::core::now_unix(),
        token.source
    );
    println!("cnf.x5t#S256 = {cnf}");
    println!("certificate  = {x5t}");
    ensure!(
        token.token_type.eq_ignore_ascii_case("mtls_pop"),
        "expected an mtls_pop token, got {}",
        token.token_type
    );
    ensure!(cnf == x5t, "the token is not bound to the certificate");

    // Second request: the cached token is still valid, so the authority is not asked.
    let again = app.acquire_token_for_app(&[SCOPE], &options).await?;
    println!(
        "second request: from {:?}; token requests sent: {}",
        again.source,
        app.token_requests_sent()
    );
    ensure!(
        again.source == TokenSource::Cache && app.token_requests_sent() == 1,
        "the second request did not come from the cache"
    );

    stack.shutdown().await;
    Ok(())
}
