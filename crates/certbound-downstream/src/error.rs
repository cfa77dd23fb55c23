//! Errors from downstream calls.

/// What went wrong calling a downstream API. Never contains a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownstreamError {
    /// No API of that name in `DownstreamApis`.
    #[error("no downstream API named `{0}` in the configuration's DownstreamApis")]
    UnknownApi(String),
    /// The API's configuration cannot be used.
    #[error("DownstreamApis.{api}: {problem}")]
    Config {
        /// The API name.
        api: String,
        /// What is wrong.
        problem: String,
    },
    /// Getting the authorization header failed.
    #[error("cannot get a token for the call: {0}")]
    Token(#[source] certbound_client::ClientError),
    /// Building the client (TLS configuration, client certificate) failed.
    #[error("transport: {0}")]
    Transport(#[source] certbound_client::ClientError),
    /// The request failed before a response arrived (connect, TLS, timeout).
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The URL, without query string.
        url: String,
        /// Why.
        reason: String,
    },
    /// The API answered with a non-success status.
    #[error("{url} answered {status}{}{}", www_authenticate.as_deref().map(|w| format!(" (WWW-Authenticate: {w})")).unwrap_or_default(), if body_excerpt.is_empty() { String::new() } else { format!(": {body_excerpt}") })]
    Status {
        /// The URL, without query string.
        url: String,
        /// HTTP status.
        status: u16,
        /// The `WWW-Authenticate` header, when present.
        www_authenticate: Option<String>,
        /// The first bytes of the body (lossy UTF-8, control characters removed).
        body_excerpt: String,
    },
    /// The API answered with a redirect certbound does not follow: any redirect of a call that
    /// presents the client certificate or carries a bound token or proof, and for Bearer calls
    /// one to another origin, to `http://`, or past the hop limit.
    #[error("{url} answered {status} redirecting to {location}; not followed: {reason}")]
    Redirect {
        /// The URL that answered, without query string.
        url: String,
        /// The 3xx status.
        status: u16,
        /// Where it redirects (without query string or user name/password).
        location: String,
        /// Why it was not followed.
        reason: String,
    },
    /// The response body exceeded the configured limit.
    #[error("{url}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not the JSON the caller asked for.
    #[error("{url}: response is not the expected JSON: {source}")]
    Json {
        /// The URL (`(request body)` when serialising the request body failed).
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
