//! Calling a configured downstream API over mutual TLS with the binding certificate.
//!
//! ```sh
//! cargo run --example downstream_call
//! ```
//!
//! `appsettings.json` describes the API once (`DownstreamApis.Orders`: URL, scopes,
//! `ProtocolScheme: MTLS_POP`); code then calls it by name. For each call `Downstream`
//! gets the token (from the cache after the first), picks the pooled HTTP client that
//! presents the certificate the token is bound to, and sends the request. The API is the
//! sample protected API, which echoes what it validated. Everything runs on loopback with
//! fresh state (`certbound::local::LocalStack`); no cloud account involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use anyhow::ensure;
use certbound::AppConfig;
use certbound::cli::sample;
use certbound::downstream::{CallOptions, Downstream};
use certbound::local::LocalStack;
use serde_json::Value;

const AUDIENCE: &str = "api://orders";
const CLIENT_ID: &str = "orders-caller";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The authority, the calling app's registered certificate, and the downstream API: the
    // sample API (`GET /whoami` echoes the validated token), requiring certificate-bound
    // tokens. Both sides trust the authority's CA on loopback.
    let stack = LocalStack::builder()
        .audience(AUDIENCE)
        .client(CLIENT_ID)
        .api(sample::router)
        .start()
        .await?;
    let base = stack.api_url()?;

    // The configuration: who the app is (its certificate kept in a file), and the
    // downstream API it calls.
    let pem = stack.write_client_pem(CLIENT_ID)?;
    let settings = serde_json::json!({
        "AzureAd": {
            "Authority": stack.issuer(),
            "ClientId": CLIENT_ID,
            "ClientCredentials": [
                { "SourceType": "Path", "CertificateDiskPath": pem.display().to_string() }
            ]
        },
        "DownstreamApis": {
            "Orders": {
                "BaseUrl": base,
                "RelativePath": "/whoami",
                "ProtocolScheme": "MTLS_POP",
                "RequestAppToken": true,
                "Scopes": [format!("{AUDIENCE}/.default")]
            }
        }
    });
    let file = stack.state_dir().join("appsettings.json");
    std::fs::write(&file, serde_json::to_string_pretty(&settings)?)?;

    // The development CA is not a system root: trust it explicitly, for the token
    // endpoint (the app) and for the API (the transport pool).
    let app = certbound::app_builder(AppConfig::from_file(&file)?)?
        .add_ca_cert_file(stack.ca_cert_path())
        .build()?;
    let downstream = Downstream::new(app.clone(), stack.transport_pool()?);

    // Two calls by name. Both reuse one token and one mTLS client (and its connection).
    let x5t = stack.certificate(CLIENT_ID)?.thumbprint().to_base64url();
    for n in 1..=2 {
        let resp = downstream.call("Orders", CallOptions::default()).await?;
        let status = resp.status();
        let body: Value = resp.json()?;
        println!(
            "call {n}: GET {base}/whoami → {status}: sub {}, scheme {}, presented x5t#S256 {}",
            body["sub"], body["scheme"], body["cert_thumbprint"]
        );
        ensure!(
            body["cert_thumbprint"].as_str() == Some(x5t.as_str()),
            "the API did not see the binding certificate"
        );
    }
    println!(
        "token requests sent: {}, pooled mTLS clients: {}",
        app.token_requests_sent(),
        downstream.pool().bound_clients()
    );
    ensure!(
        app.token_requests_sent() == 1 && downstream.pool().bound_clients() == 1,
        "expected one token and one pooled client for both calls"
    );

    stack.shutdown().await;
    Ok(())
}
