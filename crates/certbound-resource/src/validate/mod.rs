//! Token rules (docs/resource-server.md): the compact JWS is split and decoded strictly, its header checked
//! against configuration, its signature verified with a pre-parsed key from the issuer's
//! JWKS, then its claims checked and the binding compared with the connection's certificate.
//!
//! # Why aws-lc-rs directly rather than `jsonwebtoken`
//!
//! `jsonwebtoken`'s `DecodingKey` keeps the key as bytes/components and aws-lc-rs re-parses
//! it (`UnparsedPublicKey`/`RsaPublicKeyComponents::verify`) on **every** verification, and
//! its `decode` also takes the algorithm list from a `Validation` it cannot restrict per key,
//! checks claims through a serde pass of its own, and accepts duplicate JSON members. Here
//! keys are parsed once into [`aws_lc_rs::signature::ParsedPublicKey`] when the JWKS loads,
//! so a validation is: one bounded split, three strict base64url decodes, one duplicate-aware
//! JSON parse per part, one `verify_sig` on the pre-parsed key, a handful of comparisons and a
//! 32-byte constant-time compare. `benches/validate.rs` measures this against the raw
//! `ParsedPublicKey::verify_sig` of the same token (same library, same run) and against
//! `jsonwebtoken::decode`.
//!
//! # Order of checks
//!
//! Size and shape → header (strict JSON, `alg` allowlist, `crit`, `typ`, `kid`) → key →
//! signature → payload (strict JSON) → `iss`, `aud`, `exp`, `nbf`, `iat` → `cnf` and binding.
//! The payload is not parsed until the signature has verified.
//!
//! ```
//! use certbound_core::{jose, Jwks, KeyKind, PrivateKey, Thumbprint};
//! use certbound_resource::{Presented, ProtocolScheme, TokenError, Validator};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! let jwks = Jwks { keys: vec![key.public_jwk().with_kid("k1")] };
//! let validator = Validator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("api://orders")
//!     .jwks(jwks)
//!     .build()
//!     .await
//!     .unwrap();
//! let cert = Thumbprint::of_der(b"the client certificate");
//! let now = certbound_core::now_unix();
//! let claims = serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api://orders", "sub": "app",
//!     "iat": now, "exp": now + 600, "cnf": {"x5t#S256": cert.to_base64url()},
//! });
//! let header = jose::JwsHeader::new(key.default_jws_algorithm()).kid("k1").typ("at+jwt");
//! let token = jose::sign_compact(&header, &claims, &key).unwrap();
//! let mtls_pop = Presented::token(ProtocolScheme::MtlsPop, &token).peer(Some(&cert));
//! let ok = validator.validate(&mtls_pop).await.unwrap();
//! assert_eq!(ok.claims().sub(), Some("app"));
//! let bearer = Presented::token(ProtocolScheme::Bearer, &token);
//! let refused = validator.validate(&bearer).await.unwrap_err();
//! assert_eq!(refused.token_error(), Some(&TokenError::NoClientCertificate));
//! # });
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certbound_core::{JwsAlgorithm, ProtocolScheme, Thumbprint, b64};
use serde_json::Value;

use crate::binding::{self, Confirmation};
use crate::jwks::{KeySet, KeySource};
use crate::reject::{Rejection, TokenError, header_word};

/// Default maximum token length (bytes).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;
/// Default clock skew.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// Default minimum time between two JWKS fetches triggered by unknown `kid`s.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Default age after which the JWKS is refreshed on the next request.
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// Default whole-request timeout of discovery and JWKS fetches.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout of discovery and JWKS fetches.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

mod builder;
mod claims;
mod presented;
pub mod proof;
mod rules;

#[cfg(feature = "jwks")]
pub use builder::KeyFetching;
pub use builder::{BuildError, ProofPolicy, TokenRules, ValidatorBuilder};
pub use claims::{Claims, ValidatedToken};
pub use presented::Presented;
use rules::{
    HEADER_MEMBERS, PAYLOAD_MEMBERS, audiences, check_alg, check_crit, check_typ, decode_signature,
    numeric_date, scan, split,
};

struct Config {
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<JwsAlgorithm>,
    types: Vec<String>,
    allow_missing_typ: bool,
    skew: i64,
    require_binding: bool,
    max_token_len: usize,
    understood_crit: Vec<String>,
}

/// Distinct protected headers remembered (an issuer uses one per signing key and type).
const HEADER_CACHE_SIZE: usize = 16;

#[derive(Clone)]
struct CheckedHeader {
    alg: JwsAlgorithm,
    kid: Option<Arc<str>>,
    json: Arc<[u8]>,
}

pub(crate) struct Inner {
    cfg: Config,
    keys: KeySource,
    header_cache: std::sync::RwLock<Vec<(Box<str>, CheckedHeader)>>,
    pub(crate) proof: proof::ProofState,
}

/// Validates access tokens and their certificate binding. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Validator {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.cfg;
        f.debug_struct("Validator")
            .field("issuers", &c.issuers)
            .field("audiences", &c.audiences)
            .field("algorithms", &c.algorithms)
            .field("types", &c.types)
            .field("require_binding", &c.require_binding)
            .finish_non_exhaustive()
    }
}

/// What the cached-keys pass concluded.
enum Outcome {
    Done(Result<ValidatedToken, TokenError>),
    /// The `kid` is not in the current set (which is returned so a refresh can tell whether
    /// someone else already replaced it).
    UnknownKid(Arc<KeySet>),
}

impl Validator {
    /// A builder with docs/resource-server.md's defaults.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder::default()
    }

    /// A validator for `issuer` (keys from its discovery document) and `audiences`, trusting
    /// the system roots for the issuer's TLS.
    pub async fn from_issuer<I, S>(issuer: &str, audiences: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder()
            .issuer(issuer)
            .audiences(audiences)
            .build()
            .await
    }

    /// Whether tokens without `cnf` are refused.
    pub fn requires_binding(&self) -> bool {
        self.inner.cfg.require_binding
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.inner.cfg.issuers
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.inner.cfg.audiences
    }

    /// Validates what a request presents — the front door that
    /// [`CertboundLayer`](crate::CertboundLayer) and the [`ValidatedToken`] extractor call.
    ///
    /// The single `Authorization` header is parsed (or the bare token of
    /// [`Presented::token`] taken); `DPoP` and `PoP` proofs are verified against the
    /// request's method and URL (see [`proof`]); the token is checked by every rule of
    /// docs/resource-server.md with the issuer's keys, fetching them when the `kid` is
    /// unknown (rate-limited) or the key set is older than the maximum age; finally the
    /// binding is compared with the connection's certificate or the proof key, and a proof
    /// recorded against replay.
    ///
    /// ```
    /// use certbound_core::{jose, Jwks, KeyKind, PrivateKey, Thumbprint};
    /// use certbound_resource::{Presented, ProtocolScheme, TokenError, Validator};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    /// let validator = Validator::builder()
    ///     .issuer("https://issuer.example")
    ///     .audience("api://orders")
    ///     .jwks(Jwks { keys: vec![key.public_jwk().with_kid("k1")] })
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// let cert = Thumbprint::of_der(b"the client certificate");
    /// let now = certbound_core::now_unix();
    /// let claims = serde_json::json!({
    ///     "iss": "https://issuer.example", "aud": "api://orders", "sub": "app",
    ///     "iat": now, "exp": now + 600, "cnf": {"x5t#S256": cert.to_base64url()},
    /// });
    /// let header = jose::JwsHeader::new(key.default_jws_algorithm()).kid("k1").typ("at+jwt");
    /// let token = jose::sign_compact(&header, &claims, &key).unwrap();
    ///
    /// // A request, as the layer sees it (here without a TLS connection: no certificate).
    /// let req = http::Request::get("/orders")
    ///     .header("authorization", format!("mtls_pop {token}"))
    ///     .body(())
    ///     .unwrap();
    /// let refused = validator.validate(&Presented::request(&req)).await.unwrap_err();
    /// assert_eq!(refused.token_error(), Some(&TokenError::NoClientCertificate));
    /// // The same token from the connection with the bound certificate.
    /// let ok = validator
    ///     .validate(&Presented::request(&req).peer(Some(&cert)))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(ok.claims().sub(), Some("app"));
    /// assert_eq!(ok.scheme(), ProtocolScheme::MtlsPop);
    /// // The synchronous twin answers from the loaded keys.
    /// let bare = Presented::token(ProtocolScheme::Bearer, &token).peer(Some(&cert));
    /// assert!(matches!(validator.validate_cached(&bare), Some(Ok(_))));
    /// # });
    /// ```
    pub async fn validate(&self, req: &Presented<'_>) -> Result<ValidatedToken, Rejection> {
        use tracing::Instrument as _;
        let prepared = self.prepare(req)?;
        let (scheme, token) = prepared.token();
        // The span carries the scheme only: never the token.
        let span = tracing::debug_span!("certbound.validate", scheme = header_word(scheme));
        let validated = self
            .validate_token(scheme, token, req.peer)
            .instrument(span)
            .await?;
        self.finish_proof(prepared, validated)
    }

    /// [`validate`](Self::validate) from the keys already loaded, synchronously (for
    /// non-async callers and hot paths that see the same issuer keys again and again).
    ///
    /// `None` when the answer needs the async path: the token names a `kid` the fetched key
    /// set does not hold, or the fetched set is due for refresh. With a fixed key set
    /// ([`ValidatorBuilder::jwks`]) it always answers. A `None` consumes nothing (no proof
    /// is recorded against replay), so the request can go to [`validate`](Self::validate).
    pub fn validate_cached(
        &self,
        req: &Presented<'_>,
    ) -> Option<Result<ValidatedToken, Rejection>> {
        let prepared = match self.prepare(req) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let (scheme, token) = prepared.token();
        Some(
            self.cached_token(scheme, token, req.peer)?
                .and_then(|validated| self.finish_proof(prepared, validated)),
        )
    }

    /// The token rules, fetching keys when needed (the proof, if any, is the caller's).
    async fn validate_token(
        &self,
        scheme: ProtocolScheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Result<ValidatedToken, Rejection> {
        let keys = match &self.inner.keys {
            KeySource::Static(s) => s.clone(),
            #[cfg(feature = "jwks")]
            KeySource::Remote(r) => {
                if r.is_stale() {
                    let seen = r.snapshot();
                    if let Err(e) = r.refresh(&seen).await {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the current keys");
                    }
                }
                r.snapshot()
            }
        };
        let outcome = match self.check(scheme, token, peer, &keys) {
            Outcome::UnknownKid(seen) => match &self.inner.keys {
                KeySource::Static(_) => {
                    drop(seen);
                    Outcome::Done(Err(TokenError::KeyNotFound))
                }
                #[cfg(feature = "jwks")]
                KeySource::Remote(r) => {
                    tracing::debug!("unknown kid; refreshing the issuer's keys");
                    match r.refresh(&seen).await {
                        Ok(fresh) => match self.check(scheme, token, peer, &fresh) {
                            Outcome::UnknownKid(_) => Outcome::Done(Err(TokenError::KeyNotFound)),
                            done => done,
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "JWKS refetch failed");
                            return Err(Rejection::KeysUnavailable(e));
                        }
                    }
                }
            },
            done => done,
        };
        self.finish(scheme, outcome)
    }

    /// The token rules with the keys already loaded; `None` when a fetch is needed.
    fn cached_token(
        &self,
        scheme: ProtocolScheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Option<Result<ValidatedToken, Rejection>> {
        let outcome = match &self.inner.keys {
            KeySource::Static(s) => match self.check(scheme, token, peer, s) {
                Outcome::UnknownKid(_) => Outcome::Done(Err(TokenError::KeyNotFound)),
                done => done,
            },
            #[cfg(feature = "jwks")]
            KeySource::Remote(r) => {
                if r.is_stale() {
                    return None;
                }
                match self.check(scheme, token, peer, &r.snapshot()) {
                    Outcome::UnknownKid(_) => return None,
                    done => done,
                }
            }
        };
        Some(self.finish(scheme, outcome))
    }

    fn finish(
        &self,
        scheme: ProtocolScheme,
        outcome: Outcome,
    ) -> Result<ValidatedToken, Rejection> {
        match outcome {
            Outcome::Done(Ok(v)) => {
                tracing::debug!(bound = v.is_bound(), "token accepted");
                Ok(v)
            }
            Outcome::Done(Err(error)) => {
                tracing::info!(rule = error.rule(), reason = %error, scheme = header_word(scheme), "token refused");
                Err(Rejection::InvalidToken { scheme, error })
            }
            Outcome::UnknownKid(_) => Err(Rejection::InvalidToken {
                scheme,
                error: TokenError::KeyNotFound,
            }),
        }
    }

    /// Decodes and checks the protected header, or returns the cached result for the same
    /// header text. Only headers that passed every rule are cached (exact-text key, so an
    /// entry can only ever answer for the bytes it was computed from); the cache is small and
    /// stops growing when full, so hostile headers cannot evict or bloat it.
    fn checked_header(&self, h64: &str) -> Result<CheckedHeader, TokenError> {
        let cache = &self.inner.header_cache;
        {
            let guard = match cache.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some((_, h)) = guard.iter().find(|(text, _)| **text == *h64) {
                return Ok(h.clone());
            }
        }
        let cfg = &self.inner.cfg;
        let json = b64::decode(h64).map_err(|_| TokenError::Base64("header"))?;
        let [alg_v, kid_v, typ_v, crit_v] = scan(&json, &HEADER_MEMBERS, "header")?;
        let alg = check_alg(alg_v.as_ref(), &cfg.algorithms)?;
        if let Some(crit) = &crit_v {
            check_crit(crit, &json, &cfg.understood_crit)?;
        }
        check_typ(typ_v.as_ref(), &cfg.types, cfg.allow_missing_typ)?;
        let kid = match kid_v {
            Some(Value::String(k)) => Some(Arc::<str>::from(k)),
            Some(_) => return Err(TokenError::KidMalformed),
            None => None,
        };
        let checked = CheckedHeader {
            alg,
            kid,
            json: Arc::from(json),
        };
        let mut guard = match cache.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.len() < HEADER_CACHE_SIZE && !guard.iter().any(|(t, _)| **t == *h64) {
            guard.push((Box::from(h64), checked.clone()));
        }
        Ok(checked)
    }

    fn check(
        &self,
        scheme: ProtocolScheme,
        token: &str,
        peer: Option<&Thumbprint>,
        keys: &Arc<KeySet>,
    ) -> Outcome {
        let cfg = &self.inner.cfg;
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Outcome::Done(Err(e)),
                }
            };
        }
        // Shape.
        if token.len() > cfg.max_token_len {
            return Outcome::Done(Err(TokenError::TooLarge));
        }
        let (h64, p64, s64) = tri!(split(token));
        // Header (cached by its exact text once it has passed every header rule).
        let CheckedHeader {
            alg,
            kid,
            json: header_json,
        } = tri!(self.checked_header(h64));
        // Key.
        let key = match &kid {
            Some(kid) => match keys.get(kid) {
                Some(k) => k,
                None => return Outcome::UnknownKid(keys.clone()),
            },
            None => match keys.sole_key_for(alg) {
                Some(k) => k,
                None => return Outcome::Done(Err(TokenError::KeyAmbiguous)),
            },
        };
        let Some(parsed) = key.for_alg(alg) else {
            return Outcome::Done(Err(TokenError::KeyAlgMismatch));
        };
        // Signature.
        // Signatures are at most 512 bytes (RSA-4096): decode on the stack.
        let mut sig_buf = [0u8; 512];
        let sig_len = tri!(decode_signature(s64, &mut sig_buf));
        // `split` found exactly three parts: the signing input is everything before the last dot.
        let Some((signing_input, _)) = token.rsplit_once('.') else {
            return Outcome::Done(Err(TokenError::NotCompactJws));
        };
        if parsed
            .verify_sig(signing_input.as_bytes(), &sig_buf[..sig_len])
            .is_err()
        {
            return Outcome::Done(Err(TokenError::BadSignature));
        }
        // Claims.
        let payload_json = tri!(b64::decode(p64).map_err(|_| TokenError::Base64("payload")));
        let [iss_v, aud_v, exp_v, nbf_v, iat_v, cnf_v] =
            tri!(scan(&payload_json, &PAYLOAD_MEMBERS, "payload"));
        let now = certbound_core::now_unix();
        let iss = match iss_v {
            Some(Value::String(s)) => s,
            Some(_) => return Outcome::Done(Err(TokenError::ClaimMalformed("iss"))),
            None => return Outcome::Done(Err(TokenError::ClaimMissing("iss"))),
        };
        if !cfg.issuers.contains(&iss) {
            return Outcome::Done(Err(TokenError::IssuerNotAccepted));
        }
        let aud = tri!(audiences(aud_v));
        if !aud.iter().any(|a| cfg.audiences.contains(a)) {
            return Outcome::Done(Err(TokenError::AudienceNotAccepted));
        }
        let exp = match tri!(numeric_date(exp_v.as_ref(), "exp")) {
            Some(e) => e,
            None => return Outcome::Done(Err(TokenError::ClaimMissing("exp"))),
        };
        if now.saturating_sub(cfg.skew) >= exp {
            return Outcome::Done(Err(TokenError::Expired));
        }
        if let Some(nbf) = tri!(numeric_date(nbf_v.as_ref(), "nbf"))
            && now.saturating_add(cfg.skew) < nbf
        {
            return Outcome::Done(Err(TokenError::NotYetValid));
        }
        if let Some(iat) = tri!(numeric_date(iat_v.as_ref(), "iat"))
            && now.saturating_add(cfg.skew) < iat
        {
            return Outcome::Done(Err(TokenError::IssuedInFuture));
        }
        // Binding.
        let cnf = match &cnf_v {
            Some(v) => Some(tri!(Confirmation::from_claim(v))),
            None => None,
        };
        tri!(binding::check(
            cnf.as_ref(),
            scheme,
            peer,
            cfg.require_binding
        ));
        Outcome::Done(Ok(ValidatedToken {
            scheme,
            peer: peer.copied(),
            proof_key: None,
            claims: Arc::new(Claims {
                header_json,
                payload_json,
                header: OnceLock::new(),
                payload: OnceLock::new(),
                alg,
                kid,
                iss,
                aud,
                exp,
                cnf,
            }),
        }))
    }
}
