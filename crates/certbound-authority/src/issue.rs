//! Access-token issuance: from the requested scope to the audience, and the signed JWT
//! (RFC 9068 shape, Entra-style claims).
//!
//! How a scope names the audience is documented on [`resolve_audience`].

use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{JwsAlgorithm, PrivateKey, Thumbprint, b64, now_unix};
use serde_json::{Value, json};

use crate::error::OAuthError;

/// The audience and named scopes a request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The `aud` claim.
    pub aud: String,
    /// Named scopes for `scp` (empty for `.default`).
    pub scopes: Vec<String>,
}

const IGNORED: [&str; 4] = ["openid", "profile", "email", "offline_access"];

fn valid_scope_token(s: &str) -> bool {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    !s.is_empty()
        && s.bytes()
            .all(|c| c == 0x21 || (0x23..=0x5b).contains(&c) || (0x5d..=0x7e).contains(&c))
}

/// Splits a URI scope into (resource, name); `None` for plain scopes.
fn split_uri_scope(s: &str) -> Option<(String, Option<String>)> {
    let (_, after) = s.split_once("://")?;
    match after.rsplit_once('/') {
        Some((host_path, name)) if !name.is_empty() => {
            // `api:///x` with an empty host part is not a resource.
            if host_path.is_empty() {
                return None;
            }
            // `s` without the trailing `/name`.
            let resource = s.strip_suffix(name)?.strip_suffix('/')?;
            Some((resource.to_owned(), Some(name.to_owned())))
        }
        Some(_) => Some((s.strip_suffix('/')?.to_owned(), None)),
        None => Some((s.to_owned(), None)),
    }
}

/// Resolves `scope` (space-separated) and `resource` to the token's audience.
///
/// # From scope to audience
/// 1. A `resource` parameter (RFC 8707) names the audience directly.
/// 2. Otherwise every scope that names a resource must name the same one:
///    `X/.default` → `X`; a URI scope `api://app/read` or `https://api.example/read` →
///    the part before the last path segment (`api://app`, `https://api.example`) and
///    `read` goes into `scp`; a URI without a path (`https://api.example`) is itself the
///    resource.
/// 3. Plain scopes (`read write`) name no resource: the audience is then the client's only
///    allowed audience when it has exactly one, else the scope itself when there is
///    exactly one scope; otherwise the request is refused (`invalid_scope`).
///
/// `openid`, `profile`, `email` and `offline_access` are ignored (they mean nothing in an
/// app-only token). `scp` is set only for named (non-`.default`) scopes.
pub fn resolve_audience(
    scope: Option<&str>,
    resource: Option<&str>,
    client_audiences: &[String],
) -> Result<Audience, OAuthError> {
    let scope = scope.unwrap_or("");
    if scope.len() > 4096 {
        return Err(OAuthError::invalid_scope("scope is too long"));
    }
    let mut resources: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    if let Some(r) = resource {
        if r.is_empty()
            || !r.contains(':')
            || r.contains('#')
            || r.len() > 1024
            || r.chars().any(char::is_control)
        {
            return Err(OAuthError::new(
                crate::error::ErrorCode::InvalidRequest,
                "resource must be an absolute URI without a fragment (RFC 8707)",
            ));
        }
        resources.push(r.to_owned());
    }
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !valid_scope_token(s) {
            return Err(OAuthError::invalid_scope(
                "scope holds characters RFC 6749 §3.3 does not allow",
            ));
        }
        if IGNORED.contains(&s) {
            continue;
        }
        if let Some(r) = s.strip_suffix("/.default") {
            if r.is_empty() || r.ends_with("://") {
                return Err(OAuthError::invalid_scope(
                    "scope `/.default` names no resource; use RESOURCE/.default (for example api://my-api/.default)",
                ));
            }
            resources.push(r.to_owned());
        } else if let Some((r, name)) = split_uri_scope(s) {
            resources.push(r);
            names.extend(name);
        } else {
            plain.push(s.to_owned());
        }
    }
    let norm = |s: &str| s.strip_suffix('/').unwrap_or(s).to_owned();
    if let Some(first) = resources.first() {
        if resources.iter().any(|r| norm(r) != norm(first)) {
            return Err(OAuthError::invalid_scope(
                "the scopes name more than one resource; request one resource per token",
            ));
        }
        names.extend(plain);
        return Ok(Audience {
            aud: first.clone(),
            scopes: names,
        });
    }
    if client_audiences.len() == 1 {
        return Ok(Audience {
            aud: client_audiences[0].clone(),
            scopes: plain,
        });
    }
    match plain.as_slice() {
        [one] => Ok(Audience {
            aud: one.clone(),
            scopes: Vec::new(),
        }),
        [] => Err(OAuthError::invalid_scope(
            "scope is required: use RESOURCE/.default (for example api://my-api/.default)",
        )),
        _ => Err(OAuthError::invalid_scope(
            "these scopes name no resource; use RESOURCE/.default, URI scopes, or the resource parameter",
        )),
    }
}

/// What a token is bound to, in its `cnf` claim.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cnf<'a> {
    /// Unbound.
    None,
    /// RFC 8705: `cnf."x5t#S256"`.
    Certificate(Thumbprint),
    /// A proof key: `cnf.jkt` (DPoP) or `cnf.kid` (PoP).
    Key(&'a KeyBinding),
}

impl Cnf<'_> {
    pub(crate) fn is_bound(&self) -> bool {
        !matches!(self, Self::None)
    }
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Certificate(_) => "x5t#S256",
            Self::Key(KeyBinding::Dpop(_)) => "jkt",
            Self::Key(KeyBinding::Pop(_)) => "kid",
        }
    }
}

/// A binding of a token to a proof-of-possession key (RFC 7638 JWK thumbprint) rather than
/// to a certificate.
///
/// ```
/// use certbound_authority::KeyBinding;
/// let key = certbound_core::pop::ProofKey::generate().unwrap();
/// let b = KeyBinding::Dpop(key.thumbprint());
/// assert_eq!((b.token_type(), b.cnf_member()), ("DPoP", "jkt"));
/// assert_eq!(b.thumbprint(), key.thumbprint());
/// assert_eq!(KeyBinding::Pop(key.thumbprint()).token_type(), "pop");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyBinding {
    /// RFC 9449 DPoP: `cnf.jkt`, `token_type: "DPoP"`.
    Dpop(String),
    /// Microsoft's signed HTTP request ("PoP"): `cnf.kid`, `token_type: "pop"`.
    Pop(String),
}

impl KeyBinding {
    /// The key's RFC 7638 thumbprint (base64url SHA-256).
    pub fn thumbprint(&self) -> &str {
        match self {
            Self::Dpop(t) | Self::Pop(t) => t,
        }
    }
    /// The `token_type` of a token bound this way: `DPoP` or `pop`.
    pub fn token_type(&self) -> &'static str {
        match self {
            Self::Dpop(_) => "DPoP",
            Self::Pop(_) => "pop",
        }
    }
    /// The `cnf` member carrying the thumbprint: `jkt` or `kid`.
    pub fn cnf_member(&self) -> &'static str {
        match self {
            Self::Dpop(_) => "jkt",
            Self::Pop(_) => "kid",
        }
    }
    /// Whether the thumbprint is a well-formed SHA-256 (43 base64url characters).
    pub(crate) fn is_well_formed(&self) -> bool {
        let t = self.thumbprint();
        t.len() == 43 && b64::decode(t).is_ok_and(|d| d.len() == 32)
    }
}

/// Signs access tokens for one issuer.
#[derive(Debug)]
pub(crate) struct TokenIssuer {
    pub key: std::sync::Arc<PrivateKey>,
    pub alg: JwsAlgorithm,
    pub kid: String,
    pub issuer: String,
    pub tenant: String,
    pub lifetime: i64,
}

/// An issued token.
pub(crate) struct Issued {
    pub access_token: String,
    pub expires_in: i64,
}

/// Who a token is for, beyond the audience.
pub(crate) struct Subject<'a> {
    pub client_id: &'a str,
    /// Entra's `azpacr`: `1` secret, `2` certificate, assertion or managed identity.
    pub azpacr: &'a str,
    /// The `oid` claim (managed identities carry their object id).
    pub object_id: Option<&'a str>,
}

impl TokenIssuer {
    pub(crate) fn issue(
        &self,
        subject: &Subject<'_>,
        audience: &Audience,
        cnf: Cnf<'_>,
    ) -> Result<Issued, OAuthError> {
        let now = now_unix();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| {
            OAuthError::new(
                crate::error::ErrorCode::ServerError,
                "the system random number generator failed",
            )
        })?;
        let client_id = subject.client_id;
        let mut claims = json!({
            "iss": self.issuer,
            "aud": audience.aud,
            "sub": client_id,
            "client_id": client_id,
            "azp": client_id,
            "appid": client_id,
            "azpacr": subject.azpacr,
            "idtyp": "app",
            "tid": self.tenant,
            "ver": "2.0",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": b64::encode(jti),
        });
        if let Some(m) = claims.as_object_mut() {
            if !audience.scopes.is_empty() {
                m.insert("scp".into(), Value::String(audience.scopes.join(" ")));
            }
            if let Some(oid) = subject.object_id {
                m.insert("oid".into(), Value::String(oid.to_owned()));
            }
            match cnf {
                Cnf::None => {}
                Cnf::Certificate(t) => {
                    m.insert("cnf".into(), json!({ "x5t#S256": t.to_base64url() }));
                }
                Cnf::Key(k) => {
                    m.insert("cnf".into(), json!({ k.cnf_member(): k.thumbprint() }));
                }
            }
        }
        let header = JwsHeader::new(self.alg).typ("at+jwt").kid(&self.kid);
        let access_token = sign_compact(&header, &claims, &self.key).map_err(|_| {
            OAuthError::new(crate::error::ErrorCode::ServerError, "token signing failed")
        })?;
        Ok(Issued {
            access_token,
            expires_in: self.lifetime,
        })
    }
}

/// A token to issue in process, without a token request: the caller (such as the
/// managed-identity emulator) has already established who the client is.
///
/// ```
/// use certbound_authority::IssueRequest;
/// let req = IssueRequest::new("mi-client", "https://management.azure.com/").object_id("obj-1");
/// assert_eq!(req.resource, "https://management.azure.com/");
/// assert!(req.cnf.is_none() && req.key_binding.is_none());
///
/// // Bound to a DPoP key (`cnf.jkt`) or a PoP key (`cnf.kid`) instead of a certificate:
/// let key = certbound_core::pop::ProofKey::generate().unwrap();
/// let dpop = IssueRequest::new("app", "api://orders/.default").dpop_bound(key.thumbprint());
/// let pop = IssueRequest::new("app", "api://orders/.default").pop_bound(key.thumbprint());
/// assert!(dpop.key_binding.is_some() && pop.cnf.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The client id (`sub`, `client_id`, `azp`, `appid`).
    pub client_id: String,
    /// The audience: an absolute URI (RFC 8707 `resource`, as IMDS and App Service take
    /// it; kept verbatim, trailing `/` included) or a `RESOURCE/.default` scope.
    pub resource: String,
    /// Bind the token to this certificate thumbprint (`cnf."x5t#S256"`).
    pub cnf: Option<Thumbprint>,
    /// Bind the token to a proof key instead (`cnf.jkt` or `cnf.kid`). A token is bound to
    /// a certificate or to a key, not both: setting both is refused (`invalid_request`).
    pub key_binding: Option<KeyBinding>,
    /// The `oid` claim (a managed identity's object id).
    pub object_id: Option<String>,
}

impl IssueRequest {
    /// An unbound token for `client_id` with audience `resource`.
    pub fn new(client_id: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            resource: resource.into(),
            cnf: None,
            key_binding: None,
            object_id: None,
        }
    }
    /// Binds the token to a certificate thumbprint (replacing any key binding).
    pub fn bound_to(mut self, thumbprint: Thumbprint) -> Self {
        self.cnf = Some(thumbprint);
        self.key_binding = None;
        self
    }
    /// Binds the token to a DPoP key (RFC 9449): `cnf.jkt` = `jkt`, the key's RFC 7638
    /// thumbprint ([`ProofKey::thumbprint`](certbound_core::pop::ProofKey::thumbprint)).
    /// Replaces any other binding.
    pub fn dpop_bound(mut self, jkt: impl Into<String>) -> Self {
        self.key_binding = Some(KeyBinding::Dpop(jkt.into()));
        self.cnf = None;
        self
    }
    /// Binds the token to a PoP (signed HTTP request) key: `cnf.kid` = `kid`, the key's
    /// RFC 7638 thumbprint. Replaces any other binding.
    pub fn pop_bound(mut self, kid: impl Into<String>) -> Self {
        self.key_binding = Some(KeyBinding::Pop(kid.into()));
        self.cnf = None;
        self
    }
    /// Sets the `oid` claim.
    pub fn object_id(mut self, object_id: impl Into<String>) -> Self {
        self.object_id = Some(object_id.into());
        self
    }
}

/// A token issued in process. `Debug` never shows the token; it is zeroized on drop.
#[derive(Clone)]
pub struct IssuedAccessToken {
    access_token: zeroize::Zeroizing<String>,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Expiry (Unix seconds, the `exp` claim).
    pub expires_on: i64,
    /// The certificate binding, when the token is bound to a certificate.
    pub cnf: Option<Thumbprint>,
    /// The key binding, when the token is bound to a DPoP or PoP key.
    pub key_binding: Option<KeyBinding>,
}

impl IssuedAccessToken {
    /// The signed JWT (a secret: do not log it).
    pub fn access_token(&self) -> &str {
        &self.access_token
    }
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("expires_on", &self.expires_on)
            .field("cnf", &self.cnf.map(|t| t.to_base64url()))
            .field("key_binding", &self.key_binding)
            .finish()
    }
}

/// Issues tokens in process for a running authority (see
/// [`RunningAuthority::local_issuer`](crate::RunningAuthority::local_issuer)): same issuer,
/// signing key, lifetime and claims as its token endpoint. Cheap to clone; stays usable
/// (tokens keep validating against the JWKS) as long as the authority's keys do.
#[derive(Clone)]
pub struct LocalIssuer {
    pub(crate) issuer: std::sync::Arc<TokenIssuer>,
    pub(crate) registry: std::sync::Arc<crate::registry::Registry>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("issuer", &self.issuer.issuer)
            .finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer.issuer
    }

    /// Signs a token for `request`.
    ///
    /// No client authentication happens here: the caller vouches for `client_id`. When the
    /// client id is registered with the authority, its allowed audiences still apply.
    /// Errors are RFC 6749 §5.2 errors: `invalid_request` for a malformed client id or
    /// resource, `invalid_scope` for a resource the client may not have.
    pub fn issue_token(&self, request: &IssueRequest) -> Result<IssuedAccessToken, OAuthError> {
        if crate::registry::check_client_id(&request.client_id).is_err() {
            return Err(OAuthError::invalid_request(
                "client_id must be 1 to 256 printable ASCII characters without spaces",
            ));
        }
        if let Some(oid) = &request.object_id
            && (oid.is_empty() || oid.len() > 256 || oid.chars().any(char::is_control))
        {
            return Err(OAuthError::invalid_request(
                "object_id must be 1 to 256 characters without control characters",
            ));
        }
        if request.cnf.is_some() && request.key_binding.is_some() {
            return Err(OAuthError::invalid_request(
                "a token is bound to a certificate (cnf) or to a proof key (key_binding), not both",
            ));
        }
        if request
            .key_binding
            .as_ref()
            .is_some_and(|k| !k.is_well_formed())
        {
            return Err(OAuthError::invalid_request(
                "the key binding must be an RFC 7638 JWK thumbprint (43 base64url characters of a SHA-256)",
            ));
        }
        let registered = self.registry.clients().get(&request.client_id);
        let allowed: &[String] = registered.as_ref().map_or(&[], |c| &c.audiences);
        let audience = resolve_request_audience(&request.resource, allowed)?;
        if let Some(c) = &registered
            && !c.allows_audience(&audience.aud)
        {
            return Err(OAuthError::invalid_scope(
                "this client is not allowed to request tokens for that resource",
            ));
        }
        let subject = Subject {
            client_id: &request.client_id,
            azpacr: "2",
            object_id: request.object_id.as_deref(),
        };
        let cnf = match (&request.cnf, &request.key_binding) {
            (Some(t), _) => Cnf::Certificate(*t),
            (None, Some(k)) => Cnf::Key(k),
            (None, None) => Cnf::None,
        };
        let issued = self.issuer.issue(&subject, &audience, cnf)?;
        let expires_in = u64::try_from(issued.expires_in).unwrap_or(0);
        tracing::info!(
            client_id = %request.client_id,
            binding = cnf.kind(),
            aud = %audience.aud,
            "token issued in process"
        );
        Ok(IssuedAccessToken {
            access_token: zeroize::Zeroizing::new(issued.access_token),
            expires_in,
            expires_on: now_unix() + issued.expires_in,
            cnf: request.cnf,
            key_binding: request.key_binding.clone(),
        })
    }
}

/// Resolves an [`IssueRequest`]'s `resource` to the audience.
pub(crate) fn resolve_request_audience(
    resource: &str,
    client_audiences: &[String],
) -> Result<Audience, OAuthError> {
    let resource = resource.trim();
    if resource.contains(char::is_whitespace) {
        return Err(OAuthError::invalid_scope(
            "name exactly one resource (no spaces)",
        ));
    }
    if resource.ends_with("/.default") {
        resolve_audience(Some(resource), None, client_audiences)
    } else {
        resolve_audience(None, Some(resource), client_audiences)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aud(scope: &str) -> Result<Audience, OAuthError> {
        resolve_audience(Some(scope), None, &[])
    }

    #[test]
    fn default_scopes() {
        assert_eq!(aud("api://orders/.default").unwrap().aud, "api://orders");
        assert_eq!(
            aud("https://graph.microsoft.com/.default").unwrap().aud,
            "https://graph.microsoft.com"
        );
        assert!(aud("/.default").is_err());
        assert!(aud("api:///.default").is_err());
    }

    #[test]
    fn uri_and_plain_scopes() {
        let a = aud("api://orders/read api://orders/write").unwrap();
        assert_eq!(a.aud, "api://orders");
        assert_eq!(a.scopes, vec!["read", "write"]);
        assert_eq!(
            aud("https://api.example").unwrap().aud,
            "https://api.example"
        );
        assert_eq!(aud("read").unwrap().aud, "read");
        assert!(aud("read write").is_err());
        let a = resolve_audience(Some("read write"), None, &["api://one".into()]).unwrap();
        assert_eq!(a.aud, "api://one");
        let a = resolve_audience(Some("read"), Some("https://rs.example"), &[]).unwrap();
        assert_eq!((a.aud.as_str(), a.scopes.len()), ("https://rs.example", 1));
    }

    #[test]
    fn in_process_requests_resolve_like_imds_resources() {
        let a = resolve_request_audience("https://management.azure.com/", &[]).unwrap();
        assert_eq!(a.aud, "https://management.azure.com/");
        let a = resolve_request_audience("api://orders/.default", &[]).unwrap();
        assert_eq!(a.aud, "api://orders");
        assert!(resolve_request_audience("", &[]).is_err());
        assert!(resolve_request_audience("not-a-uri", &[]).is_err());
        assert!(resolve_request_audience("api://a api://b", &[]).is_err());
    }

    #[test]
    fn issued_tokens_do_not_debug_their_secret() {
        let t = IssuedAccessToken {
            access_token: zeroize::Zeroizing::new("eyJ.secret.token".into()),
            expires_in: 60,
            expires_on: 1,
            cnf: None,
            key_binding: None,
        };
        let d = format!("{t:?}");
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("<redacted>"));
    }

    #[test]
    fn refusals() {
        assert!(aud("api://a/.default api://b/.default").is_err());
        assert!(aud("").is_err());
        assert!(aud("openid").is_err());
        assert!(aud("bad\"scope").is_err());
        assert!(resolve_audience(None, Some("not a uri"), &[]).is_err());
    }
}
