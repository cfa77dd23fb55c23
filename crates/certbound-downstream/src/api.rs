//! Named downstream APIs (`DownstreamApis` in the configuration) called for the app.
//!
//! For each call: resolve the API's URL, method, scopes and `ProtocolScheme`; get the
//! `Authorization` header from the app (cache hit in the common case); pick the transport
//! — for a bound token, the pooled mTLS client presenting the binding certificate; send;
//! read a size-limited body. A `401` with `error="invalid_token"` triggers exactly one
//! forced token refresh and one retry.
//!
//! Per scheme: `Bearer` and `MTLS_POP` send the cached header; `Pop` and `DPoP` sign each
//! request (method and URL) with the app's proof key — a `DPoP-Nonce` the API hands out is
//! remembered, and a `401` `use_dpop_nonce` challenge is answered once with a new proof;
//! `MTLS` presents the client certificate and sends no token.
//!
//! ```no_run
//! use certbound_client::App;
//! use certbound_downstream::{CallOptions, Downstream};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::from_config_file("appsettings.json")?;
//! let api = Downstream::for_app(app, certbound_core::tls::TrustAnchors::system())?;
//! let me: serde_json::Value = api.get_for_app("MyApi", "/whoami").await?;
//! let raw = api.call("MyApi", CallOptions::default().path("/orders")).await?;
//! println!("{} {}", raw.status(), raw.text_lossy());
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use certbound_client::config::DownstreamApiConfig;
use certbound_client::{App, HeaderOptions, ProtocolScheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DownstreamError;
use crate::pool::TransportPool;

/// Default limit on a response body.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// The most redirects followed for one Bearer call (same origin, https only).
pub const MAX_REDIRECTS: usize = 3;

/// Per-call overrides of a configured API.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Path relative to `BaseUrl` (overrides `RelativePath`).
    pub relative_path: Option<String>,
    /// HTTP method (overrides `HttpMethod`).
    pub method: Option<Method>,
    /// Protocol scheme (overrides `ProtocolScheme`).
    pub scheme: Option<ProtocolScheme>,
    /// Request body and its content type.
    pub body: Option<(Bytes, String)>,
    /// Extra headers, added after the configured ones.
    pub headers: Vec<(String, String)>,
    /// Extra query parameters, added after the configured ones.
    pub query: Vec<(String, String)>,
    /// Ask the authority for a fresh token first.
    pub force_refresh: bool,
}

impl CallOptions {
    /// Sets the relative path.
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.relative_path = Some(p.into());
        self
    }
    /// Sets the method.
    pub fn method(mut self, m: Method) -> Self {
        self.method = Some(m);
        self
    }
    /// Sets the protocol scheme.
    pub fn scheme(mut self, s: ProtocolScheme) -> Self {
        self.scheme = Some(s);
        self
    }
    /// Sets a JSON body.
    pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, DownstreamError> {
        let bytes = serde_json::to_vec(body).map_err(|e| DownstreamError::Json {
            url: "(request body)".into(),
            source: e,
        })?;
        self.body = Some((Bytes::from(bytes), "application/json".into()));
        Ok(self)
    }
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
}

/// A downstream response (any status). Bodies are size-limited.
#[derive(Debug, Clone)]
pub struct DownstreamResponse {
    url: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    retried: bool,
    /// The response carried a `DPoP-Nonce` (now remembered by the app).
    fresh_nonce: bool,
    /// The request presented a client certificate (a binding).
    presented_certificate: bool,
}

impl DownstreamResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The body as text (invalid UTF-8 replaced).
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `WWW-Authenticate` header, if any.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
    }
    /// Whether the call was retried (after a forced token refresh, or with the API's DPoP
    /// nonce).
    pub fn was_retried(&self) -> bool {
        self.retried
    }
    /// `Ok(self)` for 2xx, else [`DownstreamError::Status`] with a short body excerpt.
    pub fn error_for_status(self) -> Result<Self, DownstreamError> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(DownstreamError::Status {
            url: self.url.clone(),
            status: self.status.as_u16(),
            www_authenticate: self.www_authenticate().map(str::to_owned),
            body_excerpt: excerpt(&self.body),
        })
    }
    /// Deserialises a 2xx JSON body.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, DownstreamError> {
        let ok = self.error_for_status()?;
        serde_json::from_slice(&ok.body).map_err(|e| DownstreamError::Json {
            url: ok.url.clone(),
            source: e,
        })
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut s = clean.trim().to_string();
    if body.len() > 300 {
        s.push('…');
    }
    s
}

/// Calls configured downstream APIs for an app. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Downstream {
    app: App,
    pool: TransportPool,
    max_body: usize,
}

impl Downstream {
    /// Uses `pool` for the transport. Pass `app.transport().clone()` (or use
    /// [`Downstream::from_app`]) to share the app's clients with its token requests; another
    /// pool keeps clients of its own.
    pub fn new(app: App, pool: TransportPool) -> Self {
        Self {
            app,
            pool,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The app's transport pool ([`App::transport`]) trusting `anchors` for the APIs'
    /// server certificates, with the app's timeouts: for equal anchors, the downstream
    /// calls and the token requests for one certificate use the same HTTP client.
    pub fn for_app(
        app: App,
        anchors: certbound_core::tls::TrustAnchors,
    ) -> Result<Self, DownstreamError> {
        let pool = app.transport().with_trust(anchors);
        // Fail early on a bad TLS configuration, as before.
        pool.client_for(None).map_err(DownstreamError::Transport)?;
        Ok(Self::new(app, pool))
    }

    /// The app's own transport pool, trust anchors and timeouts ([`App::transport`]):
    /// token requests and downstream calls share one client per certificate.
    pub fn from_app(app: App) -> Self {
        let pool = app.transport().clone();
        Self::new(app, pool)
    }

    /// Sets the response-body limit.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The app.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The transport pool.
    pub fn pool(&self) -> &TransportPool {
        &self.pool
    }

    fn api(&self, name: &str) -> Result<DownstreamApiConfig, DownstreamError> {
        self.app
            .config()
            .and_then(|c| c.downstream_api(name))
            .cloned()
            .ok_or_else(|| DownstreamError::UnknownApi(name.into()))
    }

    /// Calls the API named `name` in `DownstreamApis`; returns the response whatever its
    /// status (see [`DownstreamResponse::error_for_status`]).
    pub async fn call(
        &self,
        name: &str,
        options: CallOptions,
    ) -> Result<DownstreamResponse, DownstreamError> {
        let api = self.api(name)?;
        self.call_api(name, &api, options).await
    }

    /// Calls an API described in code.
    pub async fn call_api(
        &self,
        name: &str,
        api: &DownstreamApiConfig,
        options: CallOptions,
    ) -> Result<DownstreamResponse, DownstreamError> {
        let url = build_url(name, api, &options)?;
        let method = match &options.method {
            Some(m) => m.clone(),
            None => parse_method(name, &api.http_method)?,
        };
        let span =
            tracing::debug_span!("downstream_call", api = name, %method, url = %redact_query(&url));
        let _enter = span.enter();
        let mut header_options = HeaderOptions::for_downstream_api(api);
        if let Some(s) = options.scheme {
            header_options.scheme = s;
        }
        if options.force_refresh {
            header_options.force_refresh = true;
        }
        let mut first = self
            .send_following(name, api, &options, &url, &method, &header_options)
            .await?;
        if header_options.scheme == ProtocolScheme::DPoP
            && first.status == StatusCode::UNAUTHORIZED
            && first.fresh_nonce
            && first
                .www_authenticate()
                .is_some_and(|w| w.contains("use_dpop_nonce"))
        {
            tracing::debug!(
                api = name,
                "401 use_dpop_nonce: retrying with the API's nonce"
            );
            first = self
                .send_following(name, api, &options, &url, &method, &header_options)
                .await?;
            first.retried = true;
        }
        if first.status == StatusCode::UNAUTHORIZED
            && first
                .www_authenticate()
                .is_some_and(|w| w.contains("error=\"invalid_token\""))
            && api.request_app_token
        {
            tracing::info!(
                api = name,
                "401 invalid_token: refreshing the token once and retrying"
            );
            let mut again = self
                .send_following(
                    name,
                    api,
                    &options,
                    &url,
                    &method,
                    &header_options.force_refresh(true),
                )
                .await?;
            again.retried = true;
            return Ok(again);
        }
        Ok(first)
    }

    /// [`Self::send_once`], following redirects only where that is safe: never for a call
    /// that presents the client certificate or carries a bound token or a proof (`MTLS_POP`,
    /// `MTLS`, `Pop`, `DPoP`) — the 3xx is an error naming its target; for `Bearer` (and
    /// token-less) calls only to the same origin over https, at most [`MAX_REDIRECTS`] hops,
    /// with the token re-attached by certbound for the new URL.
    async fn send_following(
        &self,
        name: &str,
        api: &DownstreamApiConfig,
        options: &CallOptions,
        url: &url::Url,
        method: &Method,
        header_options: &HeaderOptions,
    ) -> Result<DownstreamResponse, DownstreamError> {
        let mut url = url.clone();
        let mut method = method.clone();
        let mut with_body = true;
        let mut hops = 0;
        loop {
            let resp = self
                .send_once(name, api, options, &url, &method, header_options, with_body)
                .await?;
            if !is_redirect(resp.status) {
                return Ok(resp);
            }
            let Some(location) = resp
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(resp);
            };
            let refuse = |location: String, reason: String| DownstreamError::Redirect {
                url: resp.url.clone(),
                status: resp.status.as_u16(),
                location,
                reason,
            };
            let target = match url.join(location.trim()) {
                Ok(t) => t,
                Err(e) => {
                    return Err(refuse(
                        shown_location(location),
                        format!("the Location is not a URL ({e})"),
                    ));
                }
            };
            let shown = redact_query(&target);
            let scheme = header_options.scheme;
            if scheme != ProtocolScheme::Bearer || resp.presented_certificate {
                return Err(refuse(
                    shown,
                    format!(
                        "a {} call presents the client certificate or carries a bound token or proof, so it is never redirected",
                        scheme.as_str()
                    ),
                ));
            }
            if target.scheme() != "https" {
                return Err(refuse(
                    shown,
                    "a Bearer call is only redirected over https".into(),
                ));
            }
            if target.origin() != url.origin() {
                return Err(refuse(
                    shown,
                    "a Bearer call is only redirected to the same origin (scheme, host and port)"
                        .into(),
                ));
            }
            if certbound_imds::wire::has_userinfo(&target) {
                return Err(refuse(
                    shown,
                    "the Location carries a user name or password".into(),
                ));
            }
            if hops >= MAX_REDIRECTS {
                return Err(refuse(
                    shown,
                    format!("more than {MAX_REDIRECTS} redirects"),
                ));
            }
            hops += 1;
            // 303, and 301/302 after anything but GET/HEAD, continue as a GET without body
            // (what browsers and HTTP clients do); 307/308 repeat the request as it was.
            let status = resp.status.as_u16();
            if (status == 303 && method != Method::HEAD)
                || (matches!(status, 301 | 302) && method != Method::GET && method != Method::HEAD)
            {
                method = Method::GET;
                with_body = false;
            }
            tracing::debug!(api = name, status, to = %shown, "following a same-origin redirect");
            url = target;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        name: &str,
        api: &DownstreamApiConfig,
        options: &CallOptions,
        url: &url::Url,
        method: &Method,
        header_options: &HeaderOptions,
        with_body: bool,
    ) -> Result<DownstreamResponse, DownstreamError> {
        let mut auth = HeaderMap::new();
        // `MTLS` needs no token (and no scopes): the header provider gives its certificate.
        let scheme = header_options.scheme;
        let binding = if scheme == ProtocolScheme::Mtls || api.request_app_token {
            if scheme.uses_token() && api.scopes.is_empty() {
                return Err(DownstreamError::Config {
                    api: name.into(),
                    problem: "RequestAppToken is true but Scopes is empty".into(),
                });
            }
            let h = self
                .app
                .authorization_header_for_request(
                    &api.scopes,
                    header_options,
                    method.as_str(),
                    url.as_str(),
                )
                .await
                .map_err(DownstreamError::Token)?;
            h.apply(&mut auth).map_err(DownstreamError::Token)?;
            h.binding().cloned()
        } else {
            None
        };
        let presented_certificate = binding.is_some();
        let client = self
            .pool
            .client_for(binding.as_ref())
            .map_err(DownstreamError::Transport)?;
        let mut req = client.request(method.clone(), url.clone()).headers(auth);
        if let Some(accept) = &api.accept_header {
            req = req.header(http::header::ACCEPT, accept);
        }
        for (k, v) in api
            .extra_header_parameters
            .iter()
            .chain(options.headers.iter())
        {
            let name_h =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| DownstreamError::Config {
                    api: name.into(),
                    problem: format!("ExtraHeaderParameters: `{k}` is not a valid header name"),
                })?;
            let value = HeaderValue::from_str(v).map_err(|_| DownstreamError::Config {
                api: name.into(),
                problem: format!("ExtraHeaderParameters.{k}: not a valid header value"),
            })?;
            req = req.header(name_h, value);
        }
        if let Some((body, ct)) = options.body.as_ref().filter(|_| with_body) {
            req = req
                .header(http::header::CONTENT_TYPE, ct)
                .body(body.clone());
        }
        let shown = redact_query(url);
        let resp = req.send().await.map_err(|e| DownstreamError::Request {
            url: shown.clone(),
            reason: describe_reqwest(&e),
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut fresh_nonce = false;
        if header_options.scheme == ProtocolScheme::DPoP
            && let Some(n) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok())
        {
            fresh_nonce = self.app.note_dpop_nonce(url.as_str(), n);
        }
        let body = read_limited(resp, self.max_body, &shown).await?;
        Ok(DownstreamResponse {
            url: shown,
            status,
            headers,
            body,
            retried: false,
            fresh_nonce,
            presented_certificate,
        })
    }

    /// `GET` a JSON resource at `path` of the API.
    pub async fn get_for_app<T: DeserializeOwned>(
        &self,
        name: &str,
        path: &str,
    ) -> Result<T, DownstreamError> {
        self.call(name, CallOptions::default().method(Method::GET).path(path))
            .await?
            .json()
    }

    /// `POST` JSON to `path`, returning the JSON answer.
    pub async fn post_for_app<I: Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        path: &str,
        body: &I,
    ) -> Result<T, DownstreamError> {
        self.json_call(Method::POST, name, path, body).await
    }

    /// `PUT` JSON to `path`, returning the JSON answer.
    pub async fn put_for_app<I: Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        path: &str,
        body: &I,
    ) -> Result<T, DownstreamError> {
        self.json_call(Method::PUT, name, path, body).await
    }

    /// `PATCH` JSON to `path`, returning the JSON answer.
    pub async fn patch_for_app<I: Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        path: &str,
        body: &I,
    ) -> Result<T, DownstreamError> {
        self.json_call(Method::PATCH, name, path, body).await
    }

    async fn json_call<I: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        name: &str,
        path: &str,
        body: &I,
    ) -> Result<T, DownstreamError> {
        let options = CallOptions::default()
            .method(method)
            .path(path)
            .json(body)?;
        self.call(name, options).await?.json()
    }

    /// `DELETE` `path`; succeeds on any 2xx.
    pub async fn delete_for_app(&self, name: &str, path: &str) -> Result<(), DownstreamError> {
        self.call(
            name,
            CallOptions::default().method(Method::DELETE).path(path),
        )
        .await?
        .error_for_status()
        .map(|_| ())
    }
}

fn parse_method(api: &str, m: &str) -> Result<Method, DownstreamError> {
    if m.trim().is_empty() {
        return Ok(Method::GET);
    }
    Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
        DownstreamError::Config {
            api: api.into(),
            problem: format!("HttpMethod `{m}` is not an HTTP method"),
        }
    })
}

fn build_url(
    name: &str,
    api: &DownstreamApiConfig,
    options: &CallOptions,
) -> Result<url::Url, DownstreamError> {
    let base = api
        .base_url
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| DownstreamError::Config {
            api: name.into(),
            problem: "BaseUrl is missing".into(),
        })?;
    let rel = options
        .relative_path
        .as_deref()
        .or(api.relative_path.as_deref())
        .unwrap_or("");
    if certbound_imds::wire::text_has_userinfo(base) {
        return Err(DownstreamError::Config {
            api: name.into(),
            problem: "BaseUrl carries a user name or password (`user:password@host`); credentials never go in an endpoint URL".into(),
        });
    }
    let joined = match (base.ends_with('/'), rel.strip_prefix('/')) {
        _ if rel.is_empty() => base.to_string(),
        (true, Some(rest)) => format!("{base}{rest}"),
        (false, None) => format!("{base}/{rel}"),
        _ => format!("{base}{rel}"),
    };
    let mut url = url::Url::parse(&joined).map_err(|e| DownstreamError::Config {
        api: name.into(),
        problem: format!("BaseUrl + RelativePath is not a valid URL ({e})"),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(DownstreamError::Config {
            api: name.into(),
            problem: format!(
                "BaseUrl must be https (or http for loopback), not `{}`",
                url.scheme()
            ),
        });
    }
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in api
            .extra_query_parameters
            .iter()
            .chain(options.query.iter())
        {
            q.append_pair(k, v);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}

/// The URL without its query string (query values may be sensitive) or user name/password.
fn redact_query(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    certbound_core::tls::explain_untrusted_server(&s).unwrap_or(s)
}

async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    url: &str,
) -> Result<Bytes, DownstreamError> {
    use certbound_imds::wire::{BodyError, read_body_capped};
    match tokio::time::timeout(Duration::from_secs(60), read_body_capped(resp, limit)).await {
        Err(_) => Err(DownstreamError::Request {
            url: url.into(),
            reason: "timed out reading the body".into(),
        }),
        Ok(Err(BodyError::TooLarge { limit })) => Err(DownstreamError::BodyTooLarge {
            url: url.into(),
            limit,
        }),
        Ok(Err(BodyError::Read(e))) => Err(DownstreamError::Request {
            url: url.into(),
            reason: describe_reqwest(&e),
        }),
        Ok(Ok(b)) => Ok(Bytes::from(b)),
    }
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A `Location` value fit for an error message: no query, no user name or password.
fn shown_location(location: &str) -> String {
    let no_query = location
        .split_once(['?', '#'])
        .map_or(location, |(before, _)| before);
    let clean: String = certbound_imds::wire::redact_userinfo(no_query)
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str, rel: Option<&str>) -> DownstreamApiConfig {
        DownstreamApiConfig {
            base_url: Some(base.into()),
            relative_path: rel.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn urls_join_cleanly() {
        let o = CallOptions::default();
        assert_eq!(
            build_url("a", &api("https://h/x/", Some("/y")), &o)
                .unwrap()
                .as_str(),
            "https://h/x/y"
        );
        assert_eq!(
            build_url("a", &api("https://h/x", Some("y")), &o)
                .unwrap()
                .as_str(),
            "https://h/x/y"
        );
        assert_eq!(
            build_url("a", &api("https://h/x", None), &o)
                .unwrap()
                .as_str(),
            "https://h/x"
        );
        let o = CallOptions::default().path("/z").query("a b", "c&d");
        assert_eq!(
            build_url("a", &api("https://h", Some("/y")), &o)
                .unwrap()
                .as_str(),
            "https://h/z?a+b=c%26d"
        );
    }

    #[test]
    fn bad_urls_name_the_api() {
        let e = build_url("Orders", &api("ftp://h", None), &CallOptions::default()).unwrap_err();
        assert!(e.to_string().contains("DownstreamApis.Orders"), "{e}");
        let e = build_url(
            "Orders",
            &DownstreamApiConfig::default(),
            &CallOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("BaseUrl is missing"), "{e}");
        let e = parse_method("Orders", "GE T").unwrap_err();
        assert!(e.to_string().contains("HttpMethod"), "{e}");
    }

    #[test]
    fn excerpts_are_short_and_clean() {
        let long = vec![b'a'; 1000];
        assert!(excerpt(&long).chars().count() <= 301);
        assert_eq!(excerpt(b"x\ny\r\n"), "x y");
    }
}
