//! Token acquisition (`client_credentials`): the request on the wire, retries and
//! throttling (docs/wire-formats.md (retries)), and the checks on the response that keep a bound request from
//! ever yielding an unbound token.
//!
//! Key-bound requests (`Pop`: `token_type=pop` + `req_cnf`; `DPoP`: a `DPoP` proof header,
//! with one retry when the server answers `use_dpop_nonce`) authenticate like unbound ones.
//!
//! Three ways to authenticate:
//! - **mTLS PoP**: over mutual TLS presenting the certificate; `token_type=mtls_pop`; no
//!   `client_assertion` — the TLS certificate authenticates the app and is the binding key.
//! - **private-key JWT** (RFC 7523, docs/wire-formats.md (client assertions)) for unbound requests with a certificate.
//! - **client secret** (`client_secret_post`) or a ready **signed assertion** (workload identity).

use std::sync::Arc;
use std::time::Duration;

use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{CertifiedKey, Thumbprint};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::cache::CachedToken;
use crate::credential::ResolvedCredential;
use crate::error::{ClientError, shorten};
use crate::proof::NonceStore;
use crate::secret::Secret;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Retry-After is honoured up to one hour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Timeouts and retry behaviour.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Timeout of each HTTP request (connect + response). Default 30 s.
    pub request_timeout: Duration,
    /// Delay before the single retry after a 5xx or timeout without `Retry-After`. Default 1 s.
    pub retry_delay: Duration,
    /// The longest `Retry-After` the client waits inline before retrying; longer waits
    /// (up to one hour) are returned as [`ClientError::Throttled`] and remembered, so
    /// further requests for the same token fail fast until then. Default 60 s.
    pub max_inline_wait: Duration,
}

/// The most bytes read from a token-endpoint or discovery response; a larger body is an
/// error (a misbehaving or hostile server cannot make the client buffer without bound).
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Reads at most `limit` bytes of a body (the shared [`certbound_imds::wire`] reader):
/// `Ok(Err(limit))` when the body is larger, after which nothing more is read.
pub(crate) async fn read_capped(
    resp: reqwest::Response,
    limit: usize,
) -> Result<Result<Vec<u8>, usize>, reqwest::Error> {
    match certbound_imds::wire::read_body_capped(resp, limit).await {
        Ok(b) => Ok(Ok(b)),
        Err(certbound_imds::wire::BodyError::TooLarge { limit }) => Ok(Err(limit)),
        Err(certbound_imds::wire::BodyError::Read(e)) => Err(e),
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            max_inline_wait: Duration::from_secs(60),
        }
    }
}

pub(crate) use crate::transport::describe_reqwest;

/// One token request, fully resolved.
pub(crate) struct TokenRequest<'a> {
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    /// `Some(cert)`: an mTLS PoP (bound) request presenting `cert`.
    pub bound: Option<&'a CertifiedKey>,
    /// Whether `Bearer` is an acceptable answer to a bound request (generic RFC 8705 servers).
    pub bearer_ok_for_bound: bool,
    pub credential: &'a ResolvedCredential,
    pub send_x5c: bool,
    /// `Some`: a token bound to the app's proof key (`Pop` or `DPoP`).
    pub key_bound: Option<KeyBound<'a>>,
}

/// A request for a token bound to the app's proof key.
#[derive(Clone, Copy)]
pub(crate) enum KeyBound<'a> {
    /// `token_type=pop` + `req_cnf` → `cnf.kid`.
    Pop(&'a certbound_core::pop::ProofKey),
    /// A `DPoP` proof header → `token_type: DPoP`, `cnf.jkt`.
    DPoP(&'a certbound_core::pop::ProofKey, &'a NonceStore),
}

impl KeyBound<'_> {
    fn key(&self) -> &certbound_core::pop::ProofKey {
        match self {
            Self::Pop(k) | Self::DPoP(k, _) => k,
        }
    }
    /// The token type requested and expected back.
    fn token_type(&self) -> &'static str {
        match self {
            Self::Pop(_) => "pop",
            Self::DPoP(..) => "DPoP",
        }
    }
    /// The `cnf` member naming the key.
    fn claim(&self) -> &'static str {
        match self {
            Self::Pop(_) => "kid",
            Self::DPoP(..) => "jkt",
        }
    }
    /// The scheme and the claim path, for errors.
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Self::Pop(_) => ("Pop", "cnf.kid"),
            Self::DPoP(..) => ("DPoP", "cnf.jkt"),
        }
    }
}

/// Builds the form for one attempt (a fresh client assertion each time: `jti` is unique).
fn build_form(req: &TokenRequest<'_>) -> Result<Zeroizing<String>, ClientError> {
    let scope = req.scopes.join(" ");
    let mut form: Vec<(&str, Zeroizing<String>)> = vec![
        ("grant_type", Zeroizing::new("client_credentials".into())),
        ("client_id", Zeroizing::new(req.client_id.into())),
        ("scope", Zeroizing::new(scope)),
    ];
    if req.bound.is_some() {
        form.push(("token_type", Zeroizing::new("mtls_pop".into())));
    } else {
        if let Some(KeyBound::Pop(key)) = req.key_bound {
            form.push(("token_type", Zeroizing::new("pop".into())));
            form.push(("req_cnf", Zeroizing::new(key.req_cnf())));
        }
        match req.credential {
            ResolvedCredential::Certificate(c) => {
                form.push((
                    "client_assertion_type",
                    Zeroizing::new(ASSERTION_TYPE.into()),
                ));
                form.push((
                    "client_assertion",
                    Zeroizing::new(client_assertion(
                        c,
                        req.client_id,
                        req.endpoint,
                        req.send_x5c,
                    )?),
                ));
            }
            ResolvedCredential::Secret(s) => {
                form.push(("client_secret", Zeroizing::new(s.expose().into())))
            }
            ResolvedCredential::Assertion(a) => {
                form.push((
                    "client_assertion_type",
                    Zeroizing::new(ASSERTION_TYPE.into()),
                ));
                form.push(("client_assertion", Zeroizing::new(a.expose().into())));
            }
            ResolvedCredential::Minted(_) => {
                return Err(ClientError::SchemeNotSatisfiable(
                    "a managed-identity certificate authenticates only over mTLS (token_type=mtls_pop); unbound managed-identity tokens come from IMDS v1 or App Service".into(),
                ));
            }
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serde_urlencoded::to_string(&pairs)
        .map(Zeroizing::new)
        .map_err(|e| ClientError::Credential {
            what: "token request".into(),
            message: e.to_string(),
        })
}

/// A private-key JWT client assertion (RFC 7523, docs/wire-formats.md (client assertions)): PS256 for RSA, ES256/ES384 for
/// EC; `x5t#S256` and `x5t` headers; `x5c` when `send_x5c`; lifetime 10 minutes.
pub fn client_assertion(
    cert: &CertifiedKey,
    client_id: &str,
    audience: &str,
    send_x5c: bool,
) -> Result<String, ClientError> {
    let key = cert.key();
    let alg = key.default_jws_algorithm();
    let mut h = JwsHeader::new(alg)
        .typ("JWT")
        .set("x5t#S256", Value::String(cert.thumbprint().to_base64url()))
        .set("x5t", Value::String(cert.leaf().x5t_sha1()));
    if send_x5c {
        h = h.set("x5c", Value::from(cert.x5c()));
    }
    let now = certbound_core::now_unix();
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| ClientError::Credential {
        what: "client assertion".into(),
        message: "no randomness available".into(),
    })?;
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "jti": certbound_core::b64::encode(jti), "iat": now, "nbf": now, "exp": now + 600,
    });
    sign_compact(&h, &claims, key).map_err(|e| ClientError::Credential {
        what: format!("client assertion with {}", cert.leaf().subject()),
        message: e.to_string(),
    })
}

/// Sends the request with the retry rules of docs/wire-formats.md (retries), then checks the answer.
pub(crate) async fn request_token(
    client: &reqwest::Client,
    req: &TokenRequest<'_>,
    policy: &RetryPolicy,
    counter: &std::sync::atomic::AtomicU64,
) -> Result<CachedToken, ClientError> {
    let url = req.endpoint;
    let mut attempt = 0u32;
    let mut nonce_retried = false;
    loop {
        attempt += 1;
        let body = build_form(req)?;
        let dpop = match req.key_bound {
            Some(KeyBound::DPoP(key, nonces)) => {
                Some(crate::proof::dpop_proof(key, nonces, "POST", url, None)?)
            }
            _ => None,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = tokio::time::timeout(policy.request_timeout, async {
            let mut builder = client
                .post(url)
                .header(http::header::USER_AGENT, crate::transport::USER_AGENT)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(http::header::ACCEPT, "application/json");
            if let Some(p) = &dpop {
                builder = builder.header("DPoP", p.as_str());
            }
            let resp = builder.body(body.as_bytes().to_vec()).send().await?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let nonce = resp
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = read_capped(resp, MAX_RESPONSE_BYTES).await?;
            Ok::<_, reqwest::Error>((status, retry_after, nonce, bytes))
        })
        .await;
        drop(dpop);
        drop(body);
        let (status, retry_after, nonce, bytes) = match sent {
            Err(_) => {
                if attempt == 1 {
                    tracing::info!(url, timeout = ?policy.request_timeout, "token request timed out; retrying once");
                    tokio::time::sleep(policy.retry_delay).await;
                    continue;
                }
                return Err(ClientError::Timeout {
                    url: url.into(),
                    timeout: policy.request_timeout,
                });
            }
            Ok(Err(e)) => {
                let retryable = e.is_timeout() || e.is_connect();
                let message = describe_reqwest(&e);
                if retryable && attempt == 1 {
                    tracing::info!(url, problem = %message, "token request failed; retrying once");
                    tokio::time::sleep(policy.retry_delay).await;
                    continue;
                }
                if e.is_timeout() {
                    return Err(ClientError::Timeout {
                        url: url.into(),
                        timeout: policy.request_timeout,
                    });
                }
                return Err(ClientError::Transport {
                    url: url.into(),
                    message,
                });
            }
            Ok(Ok(x)) => x,
        };
        let code = status.as_u16();
        let bytes = match bytes {
            Ok(b) => b,
            Err(limit) => {
                return Err(ClientError::InvalidResponse {
                    url: url.into(),
                    message: format!(
                        "HTTP {code} with a body larger than {limit} bytes; stopped reading it"
                    ),
                });
            }
        };
        let mut fresh_nonce = false;
        if let (Some(KeyBound::DPoP(_, nonces)), Some(n)) = (req.key_bound, &nonce) {
            fresh_nonce = nonces.set(url, n);
        }
        if status.is_success() {
            return parse_success(url, &bytes, req);
        }
        // RFC 9449 §8: the server wants a nonce in the proof; it sent one: retry once with it.
        if code == 400
            && fresh_nonce
            && !nonce_retried
            && oauth_error_code(&bytes).as_deref() == Some("use_dpop_nonce")
        {
            nonce_retried = true;
            attempt -= 1;
            tracing::debug!(
                url,
                "the token endpoint asks for a DPoP nonce; retrying with it"
            );
            continue;
        }
        let throttling = code == 429 || status.is_server_error();
        if throttling {
            match retry_after {
                Some(wait) => {
                    let wait = wait.min(MAX_RETRY_AFTER);
                    if attempt == 1 && wait <= policy.max_inline_wait {
                        tracing::info!(
                            url,
                            status = code,
                            ?wait,
                            "token endpoint asks to retry later; waiting"
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(ClientError::Throttled {
                        url: url.into(),
                        retry_after: wait,
                    });
                }
                None if status.is_server_error() && attempt == 1 => {
                    tracing::info!(url, status = code, "token endpoint error; retrying once");
                    tokio::time::sleep(policy.retry_delay).await;
                    continue;
                }
                None => {}
            }
        }
        return Err(oauth_error(url, code, &bytes));
    }
}

/// The `error` member of an OAuth error body.
fn oauth_error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.as_str().map(str::to_owned)
}

fn oauth_error(url: &str, status: u16, body: &[u8]) -> ClientError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let get = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(|s| shorten(s, 300))
    };
    ClientError::TokenEndpoint {
        url: url.into(),
        status,
        error: get("error"),
        description: get("error_description"),
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Seconds from JSON, saturating (`1e308`, `i64::MAX`, twenty digits: as long as can be).
fn num(v: Option<&Value>) -> Option<i64> {
    certbound_imds::wire::seconds(v?)
}

/// The `cnf` members that each name a proof-of-possession key (RFC 8705 `x5t#S256`, RFC 9449
/// `jkt`, RFC 7800 `kid`/`jwk`/`jwe`/`jku`); the resource server's list
/// (`CNF_KEY_MEMBERS` of the resource crate) is the same.
const CNF_KEY_MEMBERS: [&str; 6] = ["x5t#S256", "jkt", "kid", "jwk", "jwe", "jku"];

/// RFC 7800 §3.1: a `cnf` represents a single proof-of-possession key. A bound token whose
/// `cnf` names two or more keys is refused (a resource server that reads the other member
/// would accept another key); members that name no key (Entra's `xms_ksl`) are ignored.
fn check_single_cnf_key(claims: Option<&Value>) -> Result<(), ClientError> {
    let Some(cnf) = claims.and_then(|c| c.get("cnf")).and_then(Value::as_object) else {
        return Ok(());
    };
    let found: Vec<&str> = CNF_KEY_MEMBERS
        .iter()
        .copied()
        .filter(|m| cnf.contains_key(*m))
        .collect();
    if found.len() > 1 {
        return Err(ClientError::CnfMultipleKeys {
            members: found.join(", "),
        });
    }
    Ok(())
}

fn parse_success(
    url: &str,
    body: &[u8],
    req: &TokenRequest<'_>,
) -> Result<CachedToken, ClientError> {
    let invalid = |m: &str| ClientError::InvalidResponse {
        url: url.into(),
        message: m.into(),
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| invalid("the body is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("the body is not a JSON object"))?;
    let token = obj
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("no access_token"))?;
    if !certbound_imds::wire::token_is_header_safe(token) {
        return Err(invalid(
            "the access_token is too large or holds characters not allowed in an HTTP header",
        ));
    }
    let requested = match (req.bound, req.key_bound) {
        (Some(_), _) => "mtls_pop",
        (None, Some(k)) => k.token_type(),
        (None, None) => "Bearer",
    };
    let mut token_type = match obj
        .get("token_type")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(t) => t.to_string(),
        None if req.bound.is_some() || req.key_bound.is_some() => {
            return Err(ClientError::TokenTypeMissing {
                requested: requested.into(),
            });
        }
        None => "Bearer".to_string(),
    };
    let ok = if req.bound.is_some() {
        token_type.eq_ignore_ascii_case("mtls_pop")
            || (req.bearer_ok_for_bound && token_type.eq_ignore_ascii_case("bearer"))
    } else if let Some(k) = req.key_bound {
        // Never a silent downgrade: a server that ignores DPoP / PoP answers `Bearer`.
        token_type.eq_ignore_ascii_case(k.token_type())
    } else {
        token_type.eq_ignore_ascii_case("bearer")
    };
    if !ok {
        return Err(ClientError::TokenTypeMismatch {
            requested: requested.into(),
            received: shorten(&token_type, 40),
        });
    }
    let claims = certbound_core::jose::decode_unverified(token)
        .ok()
        .map(|(_, c)| c);
    if req.bound.is_some() || req.key_bound.is_some() {
        check_single_cnf_key(claims.as_ref())?;
    }
    let mut binding = None;
    if let Some(cert) = req.bound {
        let expected = cert.thumbprint();
        match &claims {
            Some(c) => {
                let got = c
                    .get("cnf")
                    .and_then(|c| c.get("x5t#S256"))
                    .and_then(Value::as_str)
                    .ok_or(ClientError::BindingMissing)?;
                let matches = Thumbprint::from_base64url(got).is_some_and(|t| t.ct_eq(&expected));
                if !matches {
                    return Err(ClientError::BindingMismatch {
                        expected: expected.to_base64url(),
                        received: shorten(got, 60),
                    });
                }
            }
            None => tracing::debug!(
                url,
                "the bound token is not a JWT; its binding cannot be checked client-side"
            ),
        }
        binding = Some(expected);
    }
    if let Some(k) = req.key_bound {
        let expected = k.key().thumbprint();
        if let Some(c) = &claims {
            let got = c.get("cnf").and_then(|c| c.get(k.claim()));
            let matches = got.and_then(Value::as_str).is_some_and(|g| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    g.as_bytes(),
                    expected.as_bytes(),
                ))
            });
            if !matches {
                let (scheme, claim) = k.names();
                return Err(ClientError::KeyBindingMismatch {
                    scheme,
                    claim,
                    expected,
                    received: match got {
                        None => "missing".into(),
                        Some(Value::String(g)) => format!("`{}`", shorten(g, 60)),
                        Some(_) => "not a string".into(),
                    },
                });
            }
        } else {
            tracing::debug!(
                url,
                "the key-bound token is not a JWT; its binding cannot be checked client-side"
            );
        }
        token_type = k.token_type().to_string();
        binding = Thumbprint::from_base64url(&expected);
    }
    let now = certbound_core::now_unix();
    // Saturating throughout: a hostile `expires_in` (i64::MAX, 1e308, twenty digits) is "very
    // long", never a wrapped negative time; and a token never outlives its JWT's `exp`.
    let jwt_exp = claims.as_ref().and_then(|c| num(c.get("exp")));
    let expires_in = num(obj.get("expires_in"))
        .or_else(|| jwt_exp.map(|exp| exp.saturating_sub(now)))
        .unwrap_or(3600);
    if expires_in <= 0 {
        return Err(invalid("the token is already expired (expires_in ≤ 0)"));
    }
    let expires_on = match jwt_exp {
        Some(exp) => now.saturating_add(expires_in).min(exp),
        None => now.saturating_add(expires_in),
    };
    let lifetime = expires_on.saturating_sub(now);
    if lifetime <= 0 {
        return Err(invalid(
            "the token is already expired (its JWT `exp` has passed)",
        ));
    }
    let refresh_on = match num(obj.get("refresh_in")) {
        Some(r) if r > 0 && r < lifetime => Some(now.saturating_add(r)),
        _ if lifetime >= 7200 => Some(now.saturating_add(lifetime / 2)),
        _ => None,
    };
    let mut t = CachedToken::new(
        token_type,
        Secret::new(token),
        expires_on,
        refresh_on,
        binding.as_ref(),
    );
    t.acquired_on = now;
    Ok(t)
}

/// Shares an `Arc<ClientError>` as a plain error.
pub(crate) fn unshare(e: Arc<ClientError>) -> ClientError {
    Arc::try_unwrap(e).unwrap_or_else(|a| (*a).clone())
}

/// Parses a token-endpoint success body as the client does for a request bound to `bound`
/// (or unbound). For fuzzing and property tests of the response checks; not a stable API.
#[doc(hidden)]
pub fn check_token_response(
    body: &[u8],
    bound: Option<&CertifiedKey>,
    bearer_ok_for_bound: bool,
) -> Result<(), ClientError> {
    let credential = ResolvedCredential::Secret(crate::secret::Secret::new("fuzz"));
    let scopes = ["api://fuzz/.default".to_string()];
    let req = TokenRequest {
        endpoint: "https://fuzz.invalid/token",
        client_id: "fuzz",
        scopes: &scopes,
        bound,
        bearer_ok_for_bound,
        credential: &credential,
        send_x5c: false,
        key_bound: None,
    };
    parse_success(req.endpoint, body, &req).map(|_| ())
}

/// [`check_token_response`] for a request bound to the proof key `key`: `Pop` (signed HTTP
/// request, `cnf.kid`) or, with `dpop`, `DPoP` (`cnf.jkt`). For fuzzing and property tests
/// of the response checks; not a stable API.
#[doc(hidden)]
pub fn check_key_bound_token_response(
    body: &[u8],
    key: &certbound_core::pop::ProofKey,
    dpop: bool,
) -> Result<(), ClientError> {
    let credential = ResolvedCredential::Secret(crate::secret::Secret::new("fuzz"));
    let scopes = ["api://fuzz/.default".to_string()];
    let nonces = NonceStore::default();
    let req = TokenRequest {
        endpoint: "https://fuzz.invalid/token",
        client_id: "fuzz",
        scopes: &scopes,
        bound: None,
        bearer_ok_for_bound: false,
        credential: &credential,
        send_x5c: false,
        key_bound: Some(if dpop {
            KeyBound::DPoP(key, &nonces)
        } else {
            KeyBound::Pop(key)
        }),
    };
    parse_success(req.endpoint, body, &req).map(|_| ())
}

#[cfg(test)]
mod tests;
