//! The sample protected API behind `certbound api serve` (and the in-process API of
//! `certbound demo`).
//!
//! `GET /whoami` answers 200 with the validated claims (every payload member, `cnf`
//! included) plus `scheme` (`Bearer` or `mtls_pop`), `cert_thumbprint` (the presented client
//! certificate's `x5t#S256`, or `null`) and `bound`. Failures are RFC 6750 401s.
//!
//! ```no_run
//! use certbound_resource::{sample, transport::TlsServer, Validator};
//! # async fn run(validator: Validator, tls: rustls::ServerConfig) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! TlsServer::new(listener, tls).serve(sample::router(validator), std::future::pending()).await
//! # }
//! ```

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::layer::CertboundLayer;
use crate::validate::{ValidatedToken, Validator};

/// The sample API: `GET /whoami` behind [`CertboundLayer`].
pub fn router(validator: Validator) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(CertboundLayer::new(validator))
}

/// Serves the sample API on `listener` over TLS with `identity`, asking for (not requiring)
/// a client certificate, until `shutdown` completes — what `certbound api serve` runs, for
/// embedding (e.g. `certbound demo`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    identity: &certbound_core::CertifiedKey,
    validator: Validator,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let tls =
        certbound_core::tls::server_config(identity, certbound_core::tls::ClientAuth::Optional)
            .map_err(|e| {
                std::io::Error::other(format!("TLS configuration for the sample API: {e}"))
            })?;
    crate::transport::TlsServer::new(listener, tls)
        .serve(router(validator), shutdown)
        .await
}

/// The `/whoami` body for a validated token.
pub fn whoami_body(token: &ValidatedToken) -> Value {
    let mut body = token.claims().all().clone();
    body.insert(
        "scheme".into(),
        Value::String(token.scheme().as_str().into()),
    );
    body.insert(
        "cert_thumbprint".into(),
        token
            .peer_thumbprint()
            .map_or(Value::Null, |t| Value::String(t.to_base64url())),
    );
    body.insert("bound".into(), Value::Bool(token.is_bound()));
    Value::Object(body)
}

async fn whoami(token: ValidatedToken) -> Json<Value> {
    Json(whoami_body(&token))
}
