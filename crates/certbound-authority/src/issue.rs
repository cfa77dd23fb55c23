//! Access-token issuance: from the requested scope to the audience, and the signed JWT
//! (RFC 9068 shape, Entra-style claims).
//!
//! ## From scope to audience
//! 1. A `resource` parameter (RFC 8707) names the audience directly.
//! 2. Otherwise every scope that names a resource must name the same one:
//!    `X/.default` → `X`; a URI scope `api://app/read` or `https://api.example/read` →
//!    the part before the last path segment (`api://app`, `https://api.example`) and
//!    `read` goes into `scp`; a URI without a path (`https://api.example`) is itself the
//!    resource.
//! 3. Plain scopes (`read write`) name no resource: the audience is then the client's only
//!    allowed audience when it has exactly one, else the scope itself when there is
//!    exactly one scope; otherwise the request is refused (`invalid_scope`).
//!
//! `openid`, `profile`, `email` and `offline_access` are ignored (they mean nothing in an
//! app-only token). `scp` is set only for named (non-`.default`) scopes.

use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{JwsAlgorithm, PrivateKey, Thumbprint, b64, now_unix};
use serde_json::{Value, json};

use crate::client_auth::AuthMethod;
use crate::error::OAuthError;
use crate::registry::Client;

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
    let scheme_end = s.find("://")?;
    let after = &s[scheme_end + 3..];
    match after.rfind('/') {
        Some(i) if i + 1 < after.len() => {
            let name = &after[i + 1..];
            let resource = &s[..scheme_end + 3 + i];
            // `api://x/` with an empty host part is not a resource.
            if resource.len() <= scheme_end + 3 {
                return None;
            }
            Some((resource.to_owned(), Some(name.to_owned())))
        }
        Some(i) if i + 1 == after.len() => Some((s[..s.len() - 1].to_owned(), None)),
        _ => Some((s.to_owned(), None)),
    }
}

/// Resolves `scope` (space-separated) and `resource` to the token's audience.
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

impl TokenIssuer {
    pub(crate) fn issue(
        &self,
        client: &Client,
        audience: &Audience,
        method: AuthMethod,
        cnf: Option<Thumbprint>,
    ) -> Result<Issued, OAuthError> {
        let now = now_unix();
        let mut jti = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut jti);
        let mut claims = json!({
            "iss": self.issuer,
            "aud": audience.aud,
            "sub": client.client_id,
            "client_id": client.client_id,
            "azp": client.client_id,
            "appid": client.client_id,
            "azpacr": method.azpacr(),
            "idtyp": "app",
            "tid": self.tenant,
            "ver": "2.0",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": b64::encode(jti),
        });
        if !audience.scopes.is_empty()
            && let Some(m) = claims.as_object_mut()
        {
            m.insert("scp".into(), Value::String(audience.scopes.join(" ")));
        }
        if let Some(t) = cnf
            && let Some(m) = claims.as_object_mut()
        {
            m.insert("cnf".into(), json!({ "x5t#S256": t.to_base64url() }));
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
    fn refusals() {
        assert!(aud("api://a/.default api://b/.default").is_err());
        assert!(aud("").is_err());
        assert!(aud("openid").is_err());
        assert!(aud("bad\"scope").is_err());
        assert!(resolve_audience(None, Some("not a uri"), &[]).is_err());
    }
}
