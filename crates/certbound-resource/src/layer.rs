//! Tower and axum integration: [`CertboundLayer`] validates every request and inserts the
//! [`ValidatedToken`] into its extensions (refusing with RFC 6750 responses otherwise), and
//! [`ValidatedToken`] is an axum extractor — it takes the layer's result, or validates on its
//! own when the router carries the [`Validator`] as an `Extension`.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use certbound_resource::{CertboundLayer, ValidatedToken, Validator};
//! # async fn app(validator: Validator) -> Router {
//! async fn whoami(token: ValidatedToken) -> String {
//!     format!("hello {}", token.claims().sub().unwrap_or("?"))
//! }
//! // Every route behind the layer:
//! let protected = Router::new()
//!     .route("/whoami", get(whoami))
//!     .layer(CertboundLayer::new(validator.clone()));
//! // Or per handler, with the validator as an extension:
//! let per_handler = Router::new()
//!     .route("/me", get(whoami))
//!     .layer(axum::Extension(validator));
//! protected.merge(per_handler)
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::IntoResponse as _;
use http::request::Parts;
use http::{Request, Response};

use crate::reject::Rejection;
use crate::validate::{Presented, ValidatedToken, Validator};

/// A `tower::Layer` that admits only requests with a valid (and, when bound, correctly
/// bound) token.
#[derive(Clone, Debug)]
pub struct CertboundLayer {
    validator: Validator,
}

impl CertboundLayer {
    /// A layer using `validator`.
    pub fn new(validator: Validator) -> Self {
        Self { validator }
    }
}

impl<S> tower_layer::Layer<S> for CertboundLayer {
    type Service = CertboundService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CertboundService {
            inner,
            validator: self.validator.clone(),
        }
    }
}

/// The service produced by [`CertboundLayer`].
#[derive(Clone, Debug)]
pub struct CertboundService<S> {
    inner: S,
    validator: Validator,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for CertboundService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let validator = self.validator.clone();
        Box::pin(async move {
            let validated = validator.validate(&Presented::request(&req)).await;
            match validated {
                Ok(token) => {
                    // RFC 9449 §9: keep DPoP clients supplied with the current nonce.
                    let nonce = (token.scheme() == crate::ProtocolScheme::DPoP)
                        .then(|| validator.current_dpop_nonce())
                        .flatten();
                    req.extensions_mut().insert(token);
                    let mut resp = inner.call(req).await?.map(Body::new);
                    if let Some(v) = nonce.and_then(|n| http::HeaderValue::from_str(&n).ok()) {
                        resp.headers_mut().insert("dpop-nonce", v);
                    }
                    Ok(resp)
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ValidatedToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        if let Some(t) = parts.extensions.get::<ValidatedToken>() {
            return Ok(t.clone());
        }
        let Some(validator) = parts.extensions.get::<Validator>().cloned() else {
            return Err(Rejection::Misconfigured(
                "ValidatedToken needs CertboundLayer or an Extension(Validator) on the router",
            ));
        };
        let token = validator.validate(&Presented::parts(parts)).await?;
        parts.extensions.insert(token.clone());
        Ok(token)
    }
}
