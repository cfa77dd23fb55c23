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
//! fresh state; no cloud account involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use anyhow::ensure;
use certbound::AppConfig;
use certbound::authority::{AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority};
use certbound::cli::sample;
use certbound::core::KeyKind;
use certbound::core::ca::{self, IssueSpec};
use certbound::core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound::downstream::{CallOptions, Downstream, TransportPool};
use certbound::resource::{TlsServer, Validator};
use serde_json::Value;

const AUDIENCE: &str = "api://orders";
const CLIENT_ID: &str = "orders-caller";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    certbound::core::tls::install_default_provider();
    let state = tempfile::tempdir()?;

    // The authority and its CA, which both sides trust on loopback.
    let authority =
        DevAuthority::open_or_init(state.path().join("authority"), AuthorityOptions::default())?;
    let running = authority.spawn("127.0.0.1:0".parse()?).await?;
    let mut anchors = TrustAnchors::default();
    anchors.add(&running.ca_cert());

    // The downstream API: the sample API (`GET /whoami` echoes the validated token),
    // requiring certificate-bound tokens.
    let validator = Validator::builder()
        .issuer(running.issuer())
        .audience(AUDIENCE)
        .require_binding(true)
        .trust_anchors(anchors.clone())
        .build()
        .await?;
    let tls_identity = authority.ca().issue_certified_key(
        &IssueSpec::server("orders-api", &["127.0.0.1"]),
        KeyKind::EcP256,
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let tls = server_config(&tls_identity, ClientAuth::Optional)?;
    tokio::spawn(
        TlsServer::new(listener, tls).serve(sample::router(validator), std::future::pending()),
    );

    // The calling app's certificate, registered with the authority and kept in a file.
    let cert = ca::self_signed_certified_key(&IssueSpec::client(CLIENT_ID), KeyKind::EcP256)?;
    running.register(
        ClientRegistration::with_certificate(
            CLIENT_ID,
            cert.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        )
        .audience(AUDIENCE),
    )?;
    let pem = state.path().join("app.pem");
    std::fs::write(
        &pem,
        format!(
            "{}{}",
            cert.leaf().to_pem(),
            cert.key().to_pkcs8_pem().as_str()
        ),
    )?;

    // The configuration: who the app is, and the downstream API it calls.
    let settings = serde_json::json!({
        "AzureAd": {
            "Authority": running.issuer(),
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
    let file = state.path().join("appsettings.json");
    std::fs::write(&file, serde_json::to_string_pretty(&settings)?)?;

    // The development CA is not a system root: trust it explicitly, for the token
    // endpoint (the app) and for the API (the transport pool).
    let app = certbound::app_builder(AppConfig::from_file(&file)?)?
        .add_ca_cert_file(running.ca_cert_path())
        .build()?;
    let downstream = Downstream::new(
        app.clone(),
        TransportPool::builder().trust(anchors).build()?,
    );

    // Two calls by name. Both reuse one token and one mTLS client (and its connection).
    for n in 1..=2 {
        let resp = downstream.call("Orders", CallOptions::default()).await?;
        let status = resp.status();
        let body: Value = resp.json()?;
        println!(
            "call {n}: GET {base}/whoami → {status}: sub {}, scheme {}, presented x5t#S256 {}",
            body["sub"], body["scheme"], body["cert_thumbprint"]
        );
        ensure!(
            body["cert_thumbprint"].as_str() == Some(cert.thumbprint().to_base64url().as_str()),
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

    running.shutdown().await;
    Ok(())
}
