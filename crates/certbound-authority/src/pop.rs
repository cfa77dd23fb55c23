//! Key binding at the token endpoint: DPoP proofs (RFC 9449) and Microsoft's `token_type=pop`
//! with `req_cnf`.
//!
//! A token request asks for at most one binding:
//!
//! | request | binding | response `token_type` |
//! |---|---|---|
//! | a `DPoP` header holding a valid proof | `cnf.jkt` = the proof key's RFC 7638 thumbprint | `DPoP` |
//! | `token_type=pop` and `req_cnf=base64url({"kid":"<thumbprint>"})` | `cnf.kid` = that thumbprint | `pop` |
//! | `token_type=mtls_pop` | `cnf."x5t#S256"` of the TLS client certificate | `mtls_pop` |
//!
//! A `DPoP` header together with `token_type=mtls_pop` or `token_type=pop` is refused
//! (`invalid_request`): the bindings are exclusive. The client authenticates as it is
//! registered (secret, `private_key_jwt`, or its TLS certificate) whatever the binding.
//!
//! DPoP proofs are checked with [`TokenEndpointDpop`] before client authentication (so a
//! `use_dpop_nonce` round trip does not consume a client assertion): `typ`, `alg`, the
//! signature with the embedded `jwk`, `htm` `POST`, `htu` the token endpoint URL the request
//! came in on (by its `Host`: the advertised address or `localhost`, `127.0.0.1`, `[::1]` at
//! the same port), `iat` within 60 s back and 5 s ahead, a `jti` not seen before, and — when
//! the authority demands nonces ([`AuthorityOptions::dpop_nonce`](crate::AuthorityOptions)) —
//! the current server nonce, else `400 use_dpop_nonce` with a `DPoP-Nonce` header.

use std::time::Duration;

use crate::token_dpop::{TokenEndpointDpop, TokenEndpointDpopError};
use certbound_core::pop::{self, DpopProof, HttpTarget, PopError};
use certbound_core::pop::{DEFAULT_PROOF_FUTURE_SKEW, DEFAULT_PROOF_WINDOW, DpopError, DpopNonces};
use http::{HeaderMap, Method, Uri, header};

use crate::error::{AuthorityError, ErrorCode, OAuthError};

/// How long a server nonce stays valid: it is accepted in the period it was issued and the
/// next one.
const NONCE_PERIOD: Duration = Duration::from_secs(60);

/// The binding a token request asks for (before client authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requested {
    /// No explicit binding: an unbound or RFC 8705 certificate-bound `Bearer` token.
    Default,
    /// `token_type=mtls_pop`.
    MtlsPop,
    /// `token_type=pop` with the `req_cnf` thumbprint.
    Pop(String),
    /// A `DPoP` header (not yet checked).
    Dpop,
}

/// Reads `token_type`, `req_cnf` and the presence of a `DPoP` header.
pub(crate) fn requested_binding(
    token_type: Option<&str>,
    req_cnf: Option<&str>,
    headers: &HeaderMap,
) -> Result<Requested, OAuthError> {
    let dpop = headers.contains_key("dpop");
    let is = |name: &str| token_type.is_some_and(|t| t.eq_ignore_ascii_case(name));
    if dpop && (is("mtls_pop") || is("pop")) {
        return Err(OAuthError::invalid_request(if is("pop") {
            "a DPoP proof and token_type=pop are exclusive bindings: send either the DPoP header (for a DPoP-bound token) or token_type=pop with req_cnf, not both"
        } else {
            "a DPoP proof and token_type=mtls_pop are exclusive bindings: send either the DPoP header (for a DPoP-bound token) or token_type=mtls_pop (for a certificate-bound token), not both"
        }));
    }
    if is("mtls_pop") {
        return Ok(Requested::MtlsPop);
    }
    if is("pop") {
        let Some(value) = req_cnf else {
            return Err(OAuthError::invalid_request(
                "token_type=pop requires req_cnf: base64url of {\"kid\":\"<RFC 7638 JWK thumbprint of the proof key>\"}",
            ));
        };
        return pop::parse_req_cnf(value).map(Requested::Pop).map_err(|_| {
            OAuthError::invalid_request(
                "req_cnf is malformed: it must be base64url of {\"kid\":\"<RFC 7638 JWK thumbprint>\"}, the thumbprint being 43 base64url characters",
            )
        });
    }
    Ok(if dpop {
        Requested::Dpop
    } else {
        Requested::Default
    })
}

/// The DPoP checks of one running authority's token endpoint, for each URL it answers on.
pub(crate) struct DpopEndpoint {
    /// (normalised `host[:port]`, checks with `htu` = that alias's token endpoint URL). The
    /// first is the advertised one. A proof names one `htu`, so it can be recorded by only
    /// one alias's replay cache: together they refuse every replay.
    aliases: Vec<(String, String, TokenEndpointDpop)>,
    nonces: Option<DpopNonces>,
}

impl std::fmt::Debug for DpopEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopEndpoint")
            .field(
                "urls",
                &self.aliases.iter().map(|(_, u, _)| u).collect::<Vec<_>>(),
            )
            .field("nonce", &self.nonces.is_some())
            .finish()
    }
}

impl DpopEndpoint {
    /// Checks for the token endpoint `urls` (the advertised one first), demanding a server
    /// nonce when `nonce` is set.
    pub(crate) fn new(urls: &[String], nonce: bool) -> Result<Self, AuthorityError> {
        let nonces = if nonce {
            Some(DpopNonces::new(NONCE_PERIOD).ok_or_else(|| {
                AuthorityError::Options("no randomness for the DPoP nonce key".into())
            })?)
        } else {
            None
        };
        let mut aliases: Vec<(String, String, TokenEndpointDpop)> = Vec::new();
        for url in urls {
            let target = HttpTarget::parse(url).map_err(|source| AuthorityError::EndpointUrl {
                url: url.clone(),
                source,
            })?;
            if aliases.iter().any(|(a, _, _)| *a == target.authority) {
                continue;
            }
            let mut check = TokenEndpointDpop::new(url)
                .map_err(|source| AuthorityError::EndpointUrl {
                    url: url.clone(),
                    source,
                })?
                .window(DEFAULT_PROOF_WINDOW, DEFAULT_PROOF_FUTURE_SKEW);
            if let Some(n) = &nonces {
                check = check.require_nonce(n.clone());
            }
            let htu = target.htu();
            aliases.push((target.authority, htu, check));
        }
        if aliases.is_empty() {
            return Err(AuthorityError::Options(
                "no token endpoint URL for DPoP".into(),
            ));
        }
        Ok(Self { aliases, nonces })
    }

    /// The nonce source, when nonces are demanded.
    pub(crate) fn nonces(&self) -> Option<DpopNonces> {
        self.nonces.clone()
    }

    /// The nonce to send in `DPoP-Nonce`, when nonces are demanded.
    pub(crate) fn current_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(DpopNonces::current)
    }

    /// Which alias the request came in on: the HTTP/2 `:authority` or the single `Host`
    /// header; the advertised one when neither names a known alias.
    fn alias_for(&self, uri: &Uri, headers: &HeaderMap) -> &(String, String, TokenEndpointDpop) {
        let named = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
            let mut hosts = headers.get_all(header::HOST).iter();
            match (hosts.next(), hosts.next()) {
                (Some(h), None) => h.to_str().ok().map(str::to_owned),
                _ => None,
            }
        });
        let normalised = named
            .and_then(|h| HttpTarget::parse(&format!("https://{h}/")).ok())
            .map(|t| t.authority);
        normalised
            .and_then(|n| self.aliases.iter().find(|(a, _, _)| *a == n))
            .unwrap_or(&self.aliases[0])
    }

    /// Checks the request's `DPoP` proof (there is at least one `DPoP` header).
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<DpopProof, OAuthError> {
        let (_, url, check) = self.alias_for(uri, headers);
        match check.check(method, headers) {
            Ok(Some(proof)) => Ok(proof),
            Ok(None) => Err(refused(&DpopError::Missing, url)),
            Err(TokenEndpointDpopError::UseNonce(nonce)) => Err(OAuthError::new(
                ErrorCode::UseDpopNonce,
                "this authority requires a DPoP nonce: retry with a new proof whose nonce claim is the DPoP-Nonce response header",
            )
            .with_dpop_nonce(Some(nonce))),
            Err(TokenEndpointDpopError::InvalidProof(e)) => Err(refused(&e, url)),
            Err(TokenEndpointDpopError::Unavailable) => Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many recent DPoP proofs to check this one for replay; retry shortly",
            )),
        }
    }
}

/// The `invalid_dpop_proof` error for `e`, with what the proof should have said. Only rule
/// names and the authority's own URL appear: never a value taken from the proof.
fn refused(e: &DpopError, url: &str) -> OAuthError {
    let hint = match e {
        DpopError::Proof(PopError::MethodMismatch) => " (htm must be POST)".to_owned(),
        DpopError::Proof(PopError::UrlMismatch) => format!(" (htu must be {url})"),
        DpopError::Proof(PopError::Stale) => format!(
            " (iat must be within {} s before and {} s after the authority's clock)",
            DEFAULT_PROOF_WINDOW.as_secs(),
            DEFAULT_PROOF_FUTURE_SKEW.as_secs()
        ),
        DpopError::Proof(PopError::Typ(_)) => " (typ must be dpop+jwt)".to_owned(),
        DpopError::Replayed => " (make a new proof, with a new jti, for each request)".to_owned(),
        DpopError::Multiple => " (send exactly one DPoP header)".to_owned(),
        _ => String::new(),
    };
    OAuthError::new(
        ErrorCode::InvalidDpopProof,
        format!("the DPoP proof was refused: {e}{hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_core::pop::ProofKey;

    const URL: &str = "https://127.0.0.1:4443/t/oauth2/v2.0/token";
    const LOCAL: &str = "https://localhost:4443/t/oauth2/v2.0/token";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn binding_requests() {
        let key = ProofKey::generate().unwrap();
        let none = HeaderMap::new();
        let dpop = headers(&[("dpop", "x")]);
        assert_eq!(
            requested_binding(None, None, &none).unwrap(),
            Requested::Default
        );
        assert_eq!(
            requested_binding(Some("bearer"), Some("ignored"), &none).unwrap(),
            Requested::Default
        );
        assert_eq!(
            requested_binding(Some("MTLS_POP"), None, &none).unwrap(),
            Requested::MtlsPop
        );
        assert_eq!(
            requested_binding(Some("PoP"), Some(&key.req_cnf()), &none).unwrap(),
            Requested::Pop(key.thumbprint())
        );
        assert_eq!(
            requested_binding(None, None, &dpop).unwrap(),
            Requested::Dpop
        );
        for (tt, cnf, hdr, why) in [
            (Some("pop"), None, &none, "requires req_cnf"),
            (Some("pop"), Some("%%%"), &none, "req_cnf is malformed"),
            (Some("pop"), Some("e30"), &none, "req_cnf is malformed"),
            (Some("mtls_pop"), None, &dpop, "exclusive"),
            (
                Some("pop"),
                Some(key.req_cnf().as_str()),
                &dpop,
                "exclusive",
            ),
        ] {
            let e = requested_binding(tt, cnf, hdr).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert!(e.description.contains(why), "{}", e.description);
        }
    }

    #[test]
    fn proofs_are_checked_against_the_alias_the_request_came_in_on() {
        let ep = DpopEndpoint::new(&[URL.into(), LOCAL.into(), URL.into()], false).unwrap();
        assert_eq!(ep.aliases.len(), 2);
        assert!(ep.current_nonce().is_none());
        let key = ProofKey::generate().unwrap();
        let uri: Uri = "/t/oauth2/v2.0/token".parse().unwrap();
        // By Host.
        let p = key.dpop_proof("POST", LOCAL, None, None).unwrap();
        let h = headers(&[("host", "LOCALHOST:4443"), ("dpop", &p)]);
        assert_eq!(
            ep.check(&Method::POST, &uri, &h).unwrap().jkt,
            key.thumbprint()
        );
        // The same proof sent on the other alias names another URL.
        let h = headers(&[("host", "127.0.0.1:4443"), ("dpop", &p)]);
        let e = ep.check(&Method::POST, &uri, &h).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidDpopProof);
        assert!(e.description.contains(URL), "{}", e.description);
        // An unknown Host falls back to the advertised URL.
        let p = key.dpop_proof("POST", URL, None, None).unwrap();
        let h = headers(&[("host", "elsewhere.example"), ("dpop", &p)]);
        assert!(ep.check(&Method::POST, &uri, &h).is_ok());
        // Replayed on the same alias.
        let e = ep.check(&Method::POST, &uri, &h).unwrap_err();
        assert!(e.description.contains("replayed"), "{}", e.description);
        // HTTP/2: the authority is in the URI.
        let p = key.dpop_proof("POST", LOCAL, None, None).unwrap();
        let abs: Uri = LOCAL.parse().unwrap();
        assert!(
            ep.check(&Method::POST, &abs, &headers(&[("dpop", &p)]))
                .is_ok()
        );
    }

    #[test]
    fn nonce_demanded_then_accepted() {
        let ep = DpopEndpoint::new(&[URL.into()], true).unwrap();
        let key = ProofKey::generate().unwrap();
        let uri: Uri = "/t/oauth2/v2.0/token".parse().unwrap();
        let p = key.dpop_proof("POST", URL, None, None).unwrap();
        let e = ep
            .check(&Method::POST, &uri, &headers(&[("dpop", &p)]))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UseDpopNonce);
        let nonce = e.dpop_nonce.clone().unwrap();
        assert_eq!(Some(&nonce), ep.current_nonce().as_ref());
        let p = key.dpop_proof("POST", URL, None, Some(&nonce)).unwrap();
        assert!(
            ep.check(&Method::POST, &uri, &headers(&[("dpop", &p)]))
                .is_ok()
        );
        // Another instance's nonce is not this one's.
        let other = DpopEndpoint::new(&[URL.into()], true).unwrap();
        let p = key
            .dpop_proof("POST", URL, None, other.current_nonce().as_deref())
            .unwrap();
        let e = ep
            .check(&Method::POST, &uri, &headers(&[("dpop", &p)]))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UseDpopNonce);
    }
}
