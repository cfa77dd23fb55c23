//! Every protocol scheme against an in-process development authority and protected API.
//!
//! ```sh
//! cargo run --example protocol_schemes
//! ```
//!
//! One client app (a self-signed certificate registered with the authority) calls the same
//! sample API five ways — `Bearer`, `MTLS_POP`, `Pop`, `DPoP` and `MTLS` — and prints what the
//! API saw. The API requires bound tokens, so the unbound `Bearer` call is refused (401).
//! Everything runs on loopback with fresh state (`certbound::local::LocalStack`); no cloud
//! account involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound::ProtocolScheme;
use certbound::cli::sample;
use certbound::client::config::DownstreamApiConfig;
use certbound::core::KeyKind;
use certbound::core::ca::{self, IssueSpec};
use certbound::downstream::{CallOptions, Downstream};
use certbound::local::{LocalClient, LocalStack};
use certbound::resource::RequireClientCertificate;

const AUDIENCE: &str = "api://example-api";
const CLIENT_ID: &str = "example-app";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The client app's certificate: registered with the authority, and the one certificate
    // the API's `/certificate` route admits (the `MTLS` scheme: no token at all).
    let cert = ca::self_signed_certified_key(&IssueSpec::client(CLIENT_ID), KeyKind::EcP256)?;
    let certificate_only = RequireClientCertificate::new().allow_thumbprint(cert.thumbprint());

    // The development authority, the registered app, and the sample API, whose validator
    // requires bound tokens (certificate or proof key).
    let stack = LocalStack::builder()
        .audience(AUDIENCE)
        .client(LocalClient::new(CLIENT_ID).certificate(cert))
        .api(move |validator| sample::router_with(validator, certificate_only))
        .start()
        .await?;

    // The client side: one app, one pooled downstream client, five schemes.
    let app = stack.app(CLIENT_ID)?;
    let downstream = Downstream::new(app.clone(), stack.transport_pool()?);
    for scheme in ProtocolScheme::ALL {
        let path = if scheme == ProtocolScheme::Mtls {
            "/certificate"
        } else {
            "/whoami"
        };
        let api = DownstreamApiConfig {
            base_url: Some(stack.api_url()?.to_owned()),
            relative_path: Some(path.into()),
            protocol_scheme: scheme,
            request_app_token: scheme.uses_token(),
            scopes: vec![stack.scope()],
            ..Default::default()
        };
        let resp = downstream
            .call_api("example", &api, CallOptions::default())
            .await?;
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
        let seen = match (resp.status().is_success(), scheme) {
            (false, _) => format!(
                "refused: {}",
                resp.www_authenticate().unwrap_or("no challenge")
            ),
            (true, ProtocolScheme::Mtls) => format!("certificate {}", body["subject"]),
            (true, _) => format!("scheme {}, cnf {}", body["scheme"], body["cnf"]),
        };
        println!(
            "{:<9} GET {path:<13} → {} ({seen})",
            scheme.as_str(),
            resp.status()
        );
    }
    println!(
        "proof key (cnf.jkt / cnf.kid): {}",
        app.proof_key().thumbprint()
    );
    stack.shutdown().await;
    Ok(())
}
