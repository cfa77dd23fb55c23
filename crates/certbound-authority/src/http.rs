//! The HTTP surface: discovery, JWKS and the token endpoint (axum).
//!
//! Each request carries the connection's TLS client certificate as a
//! [`TlsInfo`] extension (inserted by
//! `certbound_core::tls::server::TlsServer`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use certbound_core::tls::server::{PeerCertificate, TlsInfo};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::client_auth::{AuthInput, Verifier};
use crate::error::{ErrorCode, OAuthError};
use crate::issue::{Cnf, KeyBinding, Subject, TokenIssuer, resolve_audience};
use crate::pop::{DpopEndpoint, Requested, requested_binding};
use crate::registry::Registry;

/// Largest accepted token-request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The URLs of one running authority.
#[derive(Debug, Clone)]
pub struct AuthorityEndpoints {
    /// `https://HOST:PORT`.
    pub base: String,
    /// `{base}/{tenant}/v2.0`.
    pub issuer: String,
    /// `{base}/{tenant}/oauth2/v2.0/token`.
    pub token_endpoint: String,
    /// `{base}/{tenant}/discovery/v2.0/keys`.
    pub jwks_uri: String,
}

impl AuthorityEndpoints {
    pub(crate) fn new(base: &str, tenant: &str) -> Self {
        Self {
            base: base.to_owned(),
            issuer: format!("{base}/{tenant}/v2.0"),
            token_endpoint: format!("{base}/{tenant}/oauth2/v2.0/token"),
            jwks_uri: format!("{base}/{tenant}/discovery/v2.0/keys"),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct Service {
    pub issuer: Arc<TokenIssuer>,
    pub verifier: Verifier,
    pub registry: Arc<Registry>,
    pub dpop: DpopEndpoint,
    pub discovery: Value,
    pub jwks: Value,
}

impl Service {
    pub(crate) fn discovery_document(endpoints: &AuthorityEndpoints, alg: &str) -> Value {
        let methods = [
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
            "self_signed_tls_client_auth",
            "tls_client_auth",
        ];
        json!({
            "issuer": endpoints.issuer,
            "token_endpoint": endpoints.token_endpoint,
            "jwks_uri": endpoints.jwks_uri,
            "authorization_endpoint": format!("{}/oauth2/v2.0/authorize", endpoints.issuer.trim_end_matches("/v2.0")),
            "mtls_endpoint_aliases": { "token_endpoint": endpoints.token_endpoint },
            "tls_client_certificate_bound_access_tokens": true,
            "token_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
            "scopes_supported": [],
            "claims_supported": ["iss", "aud", "sub", "oid", "client_id", "azp", "appid", "tid", "iat", "nbf", "exp", "jti", "cnf", "scp"],
            "token_types_supported": ["Bearer", "mtls_pop", "pop", "DPoP"],
            "dpop_signing_alg_values_supported": certbound_core::pop::PROOF_ALGORITHMS
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        })
    }
}

/// Builds the router for `tenant`.
pub(crate) fn router(svc: Arc<Service>, tenant: &str) -> Router {
    Router::new()
        .route(
            &format!("/{tenant}/v2.0/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(
            &format!("/{tenant}/v2.0/.well-known/oauth-authorization-server"),
            get(discovery),
        )
        .route(
            &format!("/.well-known/oauth-authorization-server/{tenant}/v2.0"),
            get(discovery),
        )
        .route(&format!("/{tenant}/discovery/v2.0/keys"), get(jwks))
        .route(&format!("/{tenant}/oauth2/v2.0/token"), post(token))
        .route(
            &format!("/{tenant}/oauth2/v2.0/authorize"),
            get(authorize).post(authorize),
        )
        .fallback(not_found)
        .with_state(svc)
}

async fn discovery(State(svc): State<Arc<Service>>) -> Response {
    cacheable(Json(svc.discovery.clone()).into_response())
}

async fn jwks(State(svc): State<Arc<Service>>) -> Response {
    cacheable(Json(svc.jwks.clone()).into_response())
}

fn cacheable(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

async fn authorize() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": "unsupported_response_type",
            "error_description": "this development authority issues app tokens only (client_credentials at the token endpoint)",
        })),
    )
        .into_response()
}

async fn not_found(State(svc): State<Arc<Service>>) -> Response {
    let issuer = svc.discovery["issuer"].as_str().unwrap_or_default();
    let tenant = issuer
        .trim_end_matches("/v2.0")
        .rsplit_once('/')
        .map_or("", |(_, t)| t);
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "error": "not_found",
            "error_description": format!(
                "no such endpoint: this authority serves tenant `{tenant}` only (issuer \
                 {issuer}, discovery at {issuer}/.well-known/openid-configuration); \
                 `common` and `organizations` are refused for MTLS_POP: name the tenant"
            ),
            "issuer": issuer,
            "tenant": tenant,
        })),
    )
        .into_response()
}

async fn token(
    State(svc): State<Arc<Service>>,
    tls: Option<Extension<TlsInfo>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = tls.as_ref().and_then(|t| t.peer.as_ref());
    let request = TokenHttpRequest {
        peer,
        method: &method,
        uri: &uri,
        headers: &headers,
    };
    match handle_token(&svc, &request, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = e.code.as_str(), description = %e.description, "token request refused");
            e.into_response()
        }
    }
}

/// The token request parameters this endpoint reads; others are ignored (RFC 6749 §3.2).
const KNOWN: [&str; 9] = [
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
    "scope",
    "resource",
    "token_type",
    "req_cnf",
];

#[derive(Default)]
struct Params {
    values: [Option<String>; KNOWN.len()],
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        let i = KNOWN.iter().position(|k| *k == name)?;
        self.values[i].as_deref()
    }
}

impl Drop for Params {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for v in self.values.iter_mut().flatten() {
            v.zeroize();
        }
    }
}

fn parse_form(bytes: &[u8]) -> Result<Params, OAuthError> {
    let malformed = || {
        OAuthError::invalid_request("the body is not valid application/x-www-form-urlencoded UTF-8")
    };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = crate::client_auth::form_decode(k).ok_or_else(malformed)?;
        let v = crate::client_auth::form_decode(v).ok_or_else(malformed)?;
        pairs.push((k, v));
    }
    let mut p = Params::default();
    for (k, v) in pairs {
        if let Some(i) = KNOWN.iter().position(|n| *n == k) {
            if p.values[i].is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated (RFC 6749 §3.2)",
                    KNOWN[i]
                )));
            }
            p.values[i] = Some(v);
        }
    }
    Ok(p)
}

/// What the token endpoint reads from the HTTP request besides the body.
struct TokenHttpRequest<'a> {
    peer: Option<&'a PeerCertificate>,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

async fn handle_token(
    svc: &Service,
    request: &TokenHttpRequest<'_>,
    body: Body,
) -> Result<Response, OAuthError> {
    let (peer, headers) = (request.peer, request.headers);
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        OAuthError::invalid_request("the request body is larger than 64 KiB")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    let bytes = zeroize::Zeroizing::new(bytes.to_vec());
    let p = parse_form(&bytes)?;

    match p.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "only grant_type=client_credentials is supported",
            ));
        }
    }
    // Other token_type values (bearer …) are ignored: an unbound or RFC 8705 token follows.
    let requested = requested_binding(p.get("token_type"), p.get("req_cnf"), headers)?;
    let wants_pop = requested == Requested::MtlsPop;
    if wants_pop && peer.is_none() {
        return Err(OAuthError::invalid_client(
            "token_type=mtls_pop needs a TLS client certificate that authenticates the client; none was presented",
        ));
    }

    // The DPoP proof before client authentication: a use_dpop_nonce round trip must not
    // consume the client's assertion.
    let proof_key = match requested {
        Requested::Dpop => Some(KeyBinding::Dpop(
            svc.dpop.check(request.method, request.uri, headers)?.jkt,
        )),
        Requested::Pop(ref kid) => Some(KeyBinding::Pop(kid.clone())),
        Requested::Default | Requested::MtlsPop => None,
    };

    let clients = svc.registry.clients();
    let input = AuthInput {
        client_id: p.get("client_id"),
        client_secret: p.get("client_secret"),
        client_assertion_type: p.get("client_assertion_type"),
        client_assertion: p.get("client_assertion"),
        authorization: headers.get(header::AUTHORIZATION),
        peer,
    };
    let auth = svc.verifier.authenticate(&input, &clients)?;

    // Binding: a proof key (DPoP, PoP), or the certificate (RFC 8705 §3, Entra mTLS PoP).
    let (token_type, cnf) = if let Some(k) = &proof_key {
        (k.token_type(), Cnf::Key(k))
    } else if wants_pop {
        match peer {
            Some(p) if auth.peer_authenticates => ("mtls_pop", Cnf::Certificate(p.thumbprint)),
            _ => {
                return Err(OAuthError::invalid_client(
                    "token_type=mtls_pop: the TLS client certificate does not authenticate this client",
                ));
            }
        }
    } else if auth.method.is_mtls()
        && auth.client.bound_tokens
        && let Some(p) = peer
    {
        ("Bearer", Cnf::Certificate(p.thumbprint))
    } else {
        ("Bearer", Cnf::None)
    };

    let audience = resolve_audience(p.get("scope"), p.get("resource"), &auth.client.audiences)?;
    if !auth.client.allows_audience(&audience.aud) {
        return Err(OAuthError::invalid_scope(
            "this client is not allowed to request tokens for that resource",
        ));
    }
    let subject = Subject {
        client_id: &auth.client.client_id,
        azpacr: auth.method.azpacr(),
        object_id: Some(&auth.client.object_id),
    };
    let issued = svc.issuer.issue(&subject, &audience, cnf)?;
    tracing::info!(
        client_id = %auth.client.client_id,
        method = ?auth.method,
        token_type,
        bound = cnf.is_bound(),
        binding = cnf.kind(),
        aud = %audience.aud,
        "token issued"
    );
    let mut resp = Json(json!({
        "token_type": token_type,
        "expires_in": issued.expires_in,
        "ext_expires_in": issued.expires_in,
        "access_token": issued.access_token,
    }))
    .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // RFC 9449 §8.2: a fresh nonce for the client's next request.
    if matches!(proof_key, Some(KeyBinding::Dpop(_)))
        && let Some(n) = svc.dpop.current_nonce()
        && let Ok(v) = HeaderValue::from_str(&n)
    {
        h.insert("dpop-nonce", v);
    }
    Ok(resp)
}
