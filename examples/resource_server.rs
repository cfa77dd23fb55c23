//! A resource server: an axum API whose `/orders` route accepts only certificate-bound
//! tokens presented over mutual TLS by the certificate they are bound to.
//!
//! ```sh
//! cargo run --example resource_server
//! ```
//!
//! The API is an ordinary axum `Router`: `CertboundLayer` validates every request to the
//! routes it wraps (signature, issuer, audience, expiry, and `cnf."x5t#S256"` against the
//! connection's client certificate), and the `ValidatedToken` extractor hands the result to
//! the handler. `TlsServer` terminates TLS and attaches the client certificate to each
//! request. A client app then calls `/orders` with its bound token (200), and an attacker
//! replays the same token from another certificate (401, with the RFC 6750 challenge).
//! Everything runs on loopback with fresh state: `certbound::local::LocalStack` provides
//! the issuer and the registered client app; the API is served here. No cloud account
//! involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use anyhow::ensure;
use axum::routing::get;
use axum::{Json, Router};
use certbound::HeaderOptions;
use certbound::core::KeyKind;
use certbound::core::ca::{self, IssueSpec};
use certbound::core::tls::{ClientAuth, server_config};
use certbound::local::LocalStack;
use certbound::resource::{CertboundLayer, TlsServer, ValidatedToken, Validator};
use serde_json::{Value, json};

const AUDIENCE: &str = "api://orders";
const CLIENT_ID: &str = "orders-client";

/// The protected handler: it runs only after the layer has validated the token and its
/// binding, so it can trust what the extractor gives it.
async fn orders(token: ValidatedToken) -> Json<Value> {
    Json(json!({
        "caller": token.claims().client_id(),
        "scheme": token.scheme().header_scheme(),
        "bound_to": token.peer_thumbprint().map(|t| t.to_base64url()),
        "orders": ["o-1001", "o-1002"],
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An issuer for the API to trust (the development authority on loopback), with the
    // client app registered for the API's audience.
    let stack = LocalStack::builder()
        .audience(AUDIENCE)
        .client(CLIENT_ID)
        .start()
        .await?;

    // The validator fetches the issuer's signing keys through discovery; `require_binding`
    // refuses unbound (plain Bearer) tokens outright.
    let validator = Validator::builder()
        .issuer(stack.issuer())
        .audience(AUDIENCE)
        .require_binding(true)
        // The issuer's discovery document is served over TLS by the development CA.
        .trust_anchors(stack.trust_anchors().clone())
        .build()
        .await?;
    let api = Router::new()
        .route("/orders", get(orders))
        // Every route added before the layer is behind it …
        .layer(CertboundLayer::new(validator))
        // … and routes added after it are not: a health check needs no token.
        .route("/health", get(|| async { "ok" }));

    // TLS that asks for (but does not require) a client certificate: the binding check,
    // not the handshake, decides whether a certificate is the right one.
    let tls_identity = stack.authority().authority().ca().issue_certified_key(
        &IssueSpec::server("orders-api", &["127.0.0.1"]),
        KeyKind::EcP256,
    )?;
    let tls = server_config(&tls_identity, ClientAuth::Optional)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    // Served until the example exits (a real server would pass a shutdown signal).
    tokio::spawn(TlsServer::new(listener, tls).serve(api, std::future::pending()));
    println!("orders API at {base} (GET /orders needs a bound token, GET /health does not)");

    // The client app: its registered certificate, and a token bound to it.
    let cert = stack.certificate(CLIENT_ID)?;
    let app = stack.app(CLIENT_ID)?;
    let header = app
        .authorization_header_for_app(
            &[format!("{AUDIENCE}/.default")],
            &HeaderOptions::mtls_pop(),
        )
        .await?;
    // `apply` sets `Authorization` as a sensitive header value (kept out of debug output).
    let mut headers = http::HeaderMap::new();
    header.apply(&mut headers)?;
    println!(
        "client token: scheme {}, bound to x5t#S256 {}",
        header.scheme(),
        cert.thumbprint()
    );

    // HTTP clients that trust the API's CA, one per client certificate.
    let pool = stack.transport_pool()?;
    let url = format!("{base}/orders");

    let health = pool
        .client_for(None)?
        .get(format!("{base}/health"))
        .send()
        .await?;
    println!(
        "GET /health, no certificate, no token      → {}",
        health.status()
    );
    ensure!(health.status() == 200, "the health check should be public");

    // The legitimate call: the token over TLS from the certificate it is bound to.
    let ok = pool
        .client_for(Some(cert))?
        .get(&url)
        .headers(headers.clone())
        .send()
        .await?;
    let status = ok.status();
    let body: Value = ok.json().await.unwrap_or_default();
    println!("GET /orders, bound certificate             → {status} {body}");
    ensure!(status == 200, "the bound call should succeed");

    // The stolen token: same header, presented from the attacker's own certificate.
    let attacker = ca::self_signed_certified_key(&IssueSpec::client("attacker"), KeyKind::EcP256)?;
    let stolen = pool
        .client_for(Some(&attacker))?
        .get(&url)
        .headers(headers)
        .send()
        .await?;
    let challenge = stolen
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    println!(
        "GET /orders, same token, other certificate → {}",
        stolen.status()
    );
    println!("  WWW-Authenticate: {challenge}");
    ensure!(
        stolen.status() == 401 && challenge.contains("invalid_token"),
        "the stolen token should be refused with invalid_token"
    );

    stack.shutdown().await;
    Ok(())
}
