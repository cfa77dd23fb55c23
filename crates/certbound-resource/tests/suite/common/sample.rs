//! The sample API of `certbound api serve` as a test fixture (the CLI's own copy lives in the
//! root crate's `src/cli/sample.rs`; the resource library has no demo router).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use certbound_resource::{
    CertboundLayer, ClientCertificate, RequireClientCertificate, ValidatedToken, Validator,
};

/// The sample API: `GET /whoami` behind [`CertboundLayer`], and `GET /certificate` behind
/// [`RequireClientCertificate::new`] (any currently valid client certificate, no token).
pub fn router(validator: Validator) -> Router {
    router_with(validator, RequireClientCertificate::new())
}

/// The sample API with `certificate` guarding `GET /certificate` (an allow-list of
/// thumbprints and/or trust anchors).
///
/// `GET /certificate` is the plain `MTLS` scheme: the TLS client certificate alone
/// authenticates the caller, no token is read. It answers 200 with
/// `{"x5t#S256","subject","issuer","not_before","not_after"}` (Unix seconds); without a
/// certificate 401, with a refused one 403 (see
/// [`CertificateRejection`](certbound_resource::CertificateRejection)). Every other path
/// stays behind the token layer.
pub fn router_with(validator: Validator, certificate: RequireClientCertificate) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(CertboundLayer::new(validator))
        // Added after the token layer, so it is not behind it.
        .route("/certificate", get(certificate_route).layer(certificate))
}

/// Serves the sample API on `listener` over TLS with `identity`, asking for (not requiring)
/// a client certificate, until `shutdown` completes — what `certbound api serve` runs, for
/// embedding (e.g. `certbound demo`). Refuses to start (`InvalidInput`) when DPoP and PoP
/// proofs would have no origin: a wildcard listen address without an external URL
/// ([`Validator::proof_origins`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    identity: &certbound_core::CertifiedKey,
    validator: Validator,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    validator
        .proof_origins(listen)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let tls =
        certbound_core::tls::server_config(identity, certbound_core::tls::ClientAuth::Optional)
            .map_err(|e| {
                std::io::Error::other(format!("TLS configuration for the sample API: {e}"))
            })?;
    certbound_resource::transport::TlsServer::new(listener, tls)
        .serve(router(validator), shutdown)
        .await
}

/// The `/whoami` body for a validated token.
pub fn whoami_body(token: &ValidatedToken) -> Value {
    let mut body = token.claims().all().clone();
    body.insert(
        "scheme".into(),
        Value::String(token.scheme().header_scheme().unwrap_or_default().into()),
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

async fn certificate_route(cert: ClientCertificate) -> Json<Value> {
    Json(cert.to_json())
}
