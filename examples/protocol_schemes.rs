//! Every protocol scheme against an in-process development authority and protected API.
//!
//! ```sh
//! cargo run --example protocol_schemes
//! ```
//!
//! One client app (a self-signed certificate registered with the authority) calls the same
//! sample API five ways — `Bearer`, `MTLS_POP`, `Pop`, `DPoP` and `MTLS` — and prints what the
//! API saw. The API requires bound tokens, so the unbound `Bearer` call is refused (401).
//! Everything runs on loopback with fresh state; no cloud account involved.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use certbound::authority::{AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority};
use certbound::cli::sample;
use certbound::client::config::DownstreamApiConfig;
use certbound::core::KeyKind;
use certbound::core::ca::{self, IssueSpec};
use certbound::core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound::downstream::{CallOptions, Downstream, TransportPool};
use certbound::resource::{RequireClientCertificate, TlsServer, Validator};
use certbound::{App, ProtocolScheme};

const AUDIENCE: &str = "api://example-api";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    certbound::core::tls::install_default_provider();
    let state = tempfile::tempdir()?;

    // The development authority, and trust in its CA.
    let authority =
        DevAuthority::open_or_init(state.path().join("authority"), AuthorityOptions::default())?;
    let running = authority.spawn("127.0.0.1:0".parse()?).await?;
    let mut anchors = TrustAnchors::default();
    anchors.add(&running.ca_cert());

    // The client app: a self-signed certificate, registered for the API's audience.
    let cert = ca::self_signed_certified_key(&IssueSpec::client("example-app"), KeyKind::EcP256)?;
    running.register(
        ClientRegistration::with_certificate(
            "example-app",
            cert.leaf().clone(),
            CertAuthMethod::SelfSignedTlsClientAuth,
        )
        // The unbound and key-bound schemes authenticate with private_key_jwt.
        .auth_method(certbound::authority::AuthMethod::PrivateKeyJwt)
        .audience(AUDIENCE),
    )?;

    // The protected API: tokens must be bound (certificate or proof key); `/certificate`
    // admits the app's certificate alone.
    let validator = Validator::builder()
        .issuer(running.issuer())
        .audience(AUDIENCE)
        .require_binding(true)
        .trust_anchors(anchors.clone())
        .build()
        .await?;
    let tls_identity = authority.ca().issue_certified_key(
        &IssueSpec::server("example-api", &["127.0.0.1"]),
        KeyKind::EcP256,
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let router = sample::router_with(
        validator,
        RequireClientCertificate::new().allow_thumbprint(cert.thumbprint()),
    );
    let tls = server_config(&tls_identity, ClientAuth::Optional)?;
    tokio::spawn(TlsServer::new(listener, tls).serve(router, std::future::pending()));

    // The client side: one app, one pooled downstream client, five schemes.
    let app = App::builder()
        .client_id("example-app")
        .authority(running.issuer())
        .certificate(cert)
        .trust_anchors(anchors.clone())
        .build()?;
    let downstream = Downstream::new(
        app.clone(),
        TransportPool::builder().trust(anchors).build()?,
    );
    for scheme in ProtocolScheme::ALL {
        let path = if scheme == ProtocolScheme::Mtls {
            "/certificate"
        } else {
            "/whoami"
        };
        let api = DownstreamApiConfig {
            base_url: Some(base.clone()),
            relative_path: Some(path.into()),
            protocol_scheme: scheme,
            request_app_token: scheme.uses_token(),
            scopes: vec![format!("{AUDIENCE}/.default")],
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
    running.shutdown().await;
    Ok(())
}
