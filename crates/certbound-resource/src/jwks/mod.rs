//! The key source: the issuer's JWKS, found through its discovery document, pre-parsed
//! into aws-lc-rs [`ParsedPublicKey`]s at load time, cached, and refetched on an unknown
//! `kid` at most once per interval (single-flight: concurrent requests with the same unknown
//! `kid` wait for one fetch).
//!
//! Keys come **only** from here: `jku`, `x5u`, `jwk` and `x5c` token headers are never
//! used as key sources.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use certbound_core::{Jwk, Jwks, JwsAlgorithm, b64};

/// Largest JWKS or discovery document accepted (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A public key ready to verify signatures: parsed once, when the JWKS is loaded.
pub struct VerifyingKey {
    kid: Option<String>,
    /// `alg` declared by the JWK, if any.
    declared_alg: Option<JwsAlgorithm>,
    kind: KeyKind,
}

enum KeyKind {
    P256(ParsedPublicKey),
    P384(ParsedPublicKey),
    Rsa {
        pkcs1: Option<ParsedPublicKey>,
        pss: Option<ParsedPublicKey>,
    },
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("type", &self.type_name())
            .field("alg", &self.declared_alg)
            .finish()
    }
}

/// Why one JWK could not be used (the key is skipped; the rest of the set still loads).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// Only `EC` (P-256, P-384) and `RSA` signing keys are supported.
    #[error("unsupported key type or curve")]
    Unsupported,
    /// `use` is present and not `sig`.
    #[error("key is not for signatures (use != sig)")]
    NotForSignatures,
    /// `alg` names something outside ES256/ES384/RS256/PS256.
    #[error("unsupported alg `{0}`")]
    UnsupportedAlg(String),
    /// A member is missing or not strict base64url.
    #[error("member `{0}` missing or not base64url")]
    Member(&'static str),
    /// aws-lc-rs refused the key (e.g. an RSA modulus below 2048 bits, a point off the curve).
    #[error("key rejected by the crypto library: {0}")]
    Rejected(String),
}

impl VerifyingKey {
    /// Parses a JWK for the algorithms in `allowed`.
    pub fn from_jwk(jwk: &Jwk, allowed: &[JwsAlgorithm]) -> Result<Self, JwkError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(JwkError::NotForSignatures);
        }
        let declared_alg = match jwk.alg.as_deref() {
            None => None,
            Some(a) => Some(
                a.parse::<JwsAlgorithm>()
                    .ok()
                    .filter(|p| p.as_str() == a)
                    .ok_or_else(|| JwkError::UnsupportedAlg(a.chars().take(16).collect()))?,
            ),
        };
        let rejected = |e: aws_lc_rs::error::KeyRejected| JwkError::Rejected(e.to_string());
        let kind = match jwk.kty.as_str() {
            "EC" => {
                let x = b64::decode(jwk.x.as_deref().ok_or(JwkError::Member("x"))?)
                    .map_err(|_| JwkError::Member("x"))?;
                let y = b64::decode(jwk.y.as_deref().ok_or(JwkError::Member("y"))?)
                    .map_err(|_| JwkError::Member("y"))?;
                let (size, alg): (usize, &'static signature::EcdsaVerificationAlgorithm) =
                    match jwk.crv.as_deref() {
                        Some("P-256") => (32, &signature::ECDSA_P256_SHA256_FIXED),
                        Some("P-384") => (48, &signature::ECDSA_P384_SHA384_FIXED),
                        _ => return Err(JwkError::Unsupported),
                    };
                if x.len() != size {
                    return Err(JwkError::Member("x"));
                }
                if y.len() != size {
                    return Err(JwkError::Member("y"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let parsed = ParsedPublicKey::new(alg, &point).map_err(rejected)?;
                if size == 32 {
                    KeyKind::P256(parsed)
                } else {
                    KeyKind::P384(parsed)
                }
            }
            "RSA" => {
                let n = b64::decode(jwk.n.as_deref().ok_or(JwkError::Member("n"))?)
                    .map_err(|_| JwkError::Member("n"))?;
                let e = b64::decode(jwk.e.as_deref().ok_or(JwkError::Member("e"))?)
                    .map_err(|_| JwkError::Member("e"))?;
                // aws-lc-rs checks the modulus size only when verifying; refuse weak or
                // absurd keys when loading, so they never count as usable.
                let n_bits = n
                    .iter()
                    .position(|b| *b != 0)
                    .map_or(0, |i| (n.len() - i) * 8);
                if !(2048..=8192).contains(&n_bits) {
                    return Err(JwkError::Rejected(format!(
                        "RSA modulus of about {n_bits} bits (2048 to 8192 required)"
                    )));
                }
                let comps = RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                };
                let want = |a| allowed.contains(&a) && declared_alg.is_none_or(|d| d == a);
                let pkcs1 = if want(JwsAlgorithm::RS256) {
                    Some(
                        comps
                            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                            .map_err(rejected)?,
                    )
                } else {
                    None
                };
                let pss = if want(JwsAlgorithm::PS256) {
                    Some(
                        comps
                            .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                            .map_err(rejected)?,
                    )
                } else {
                    None
                };
                KeyKind::Rsa { pkcs1, pss }
            }
            _ => return Err(JwkError::Unsupported),
        };
        Ok(Self {
            kid: jwk.kid.clone(),
            declared_alg,
            kind,
        })
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            KeyKind::P256(_) => "EC P-256",
            KeyKind::P384(_) => "EC P-384",
            KeyKind::Rsa { .. } => "RSA",
        }
    }

    /// The pre-parsed key for `alg`, or `None` when this key cannot verify `alg` (another
    /// type or curve, or the JWK declared another `alg`).
    pub fn for_alg(&self, alg: JwsAlgorithm) -> Option<&ParsedPublicKey> {
        if self.declared_alg.is_some_and(|d| d != alg) {
            return None;
        }
        match (&self.kind, alg) {
            (KeyKind::P256(k), JwsAlgorithm::ES256) => Some(k),
            (KeyKind::P384(k), JwsAlgorithm::ES384) => Some(k),
            (KeyKind::Rsa { pkcs1, .. }, JwsAlgorithm::RS256) => pkcs1.as_ref(),
            (KeyKind::Rsa { pss, .. }, JwsAlgorithm::PS256) => pss.as_ref(),
            _ => None,
        }
    }

    /// Verifies `signature` over `message` with `alg`.
    pub fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        self.for_alg(alg)
            .is_some_and(|k| k.verify_sig(message, sig).is_ok())
    }
}

/// A loaded JWKS: keys by `kid`, plus keys without a `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
    // Read by the fetched key set (feature `jwks`) to tell refreshes apart.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    generation: u64,
}

impl KeySet {
    /// Parses every usable key of `jwks`; unusable keys are skipped and logged.
    pub fn from_jwks(jwks: &Jwks, allowed: &[JwsAlgorithm]) -> Self {
        let mut set = KeySet::default();
        for (i, jwk) in jwks.keys.iter().enumerate() {
            match VerifyingKey::from_jwk(jwk, allowed) {
                Ok(k) => {
                    let k = Arc::new(k);
                    if let Some(kid) = &k.kid {
                        if set.by_kid.contains_key(kid) {
                            tracing::warn!(index = i, kid = %kid, "JWKS repeats a kid; keeping the first key");
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), k.clone());
                    }
                    set.all.push(k);
                }
                Err(e) => {
                    tracing::debug!(index = i, kid = ?jwk.kid, error = %e, "skipping JWKS key");
                }
            }
        }
        set
    }

    /// Parses a JWKS document leniently: each member of `keys` is read on its own, so one
    /// key of an unexpected shape (another `kty`, odd members) does not hide the others.
    pub fn from_document(doc: &JwksDocument, allowed: &[JwsAlgorithm]) -> Self {
        let keys = doc
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match serde_json::from_value::<Jwk>(v.clone()) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::debug!(index = i, error = %e, "skipping a JWKS entry that is not a JWK");
                    None
                }
            })
            .collect();
        Self::from_jwks(&Jwks { keys }, allowed)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.by_kid.get(kid)
    }

    /// The only key that can verify `alg`, if exactly one can (for tokens without `kid`).
    pub fn sole_key_for(&self, alg: JwsAlgorithm) -> Option<&Arc<VerifyingKey>> {
        let mut it = self.all.iter().filter(|k| k.for_alg(alg).is_some());
        let first = it.next()?;
        if it.next().is_some() {
            None
        } else {
            Some(first)
        }
    }
}

/// A JWKS document as fetched: `keys` kept as raw JSON so each is parsed on its own.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JwksDocument {
    /// The entries.
    pub keys: Vec<serde_json::Value>,
}

/// Errors fetching discovery documents or key sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Transport failure.
    #[error("GET {url} failed: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Bigger than [`MAX_DOCUMENT_BYTES`].
    #[error("GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// Keys and discovery documents come only over https, from URLs without a user name or
    /// password (and never through a redirect to `http://`).
    #[error("refusing {url}: {detail}")]
    Insecure {
        /// The URL (user name and password removed).
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// Not the expected JSON.
    #[error("GET {url}: {detail}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// Where the keys come from.
pub(crate) enum KeySource {
    /// A fixed set (tests, offline deployments).
    Static(Arc<KeySet>),
    /// The issuer's `jwks_uri`.
    #[cfg(feature = "jwks")]
    Remote(Box<RemoteKeys>),
}

#[cfg(feature = "jwks")]
mod fetch;
#[cfg(feature = "jwks")]
pub(crate) use fetch::RemoteKeys;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use fetch::{DiscoveryDocument, discover};

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_core::{KeyKind, PrivateKey};

    #[test]
    fn odd_entries_do_not_hide_good_keys() {
        let ec = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let good = serde_json::to_value(ec.public_jwk().with_kid("good")).unwrap();
        let doc: JwksDocument = serde_json::from_value(serde_json::json!({"keys": [
            {"kid": "no-kty"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny-rsa"},
            {"kty": "EC", "crv": "P-256", "x": 1, "kid": "wrong-type"},
            {"kty": "EC", "use": "enc", "kid": "enc"},
            good,
        ]}))
        .unwrap();
        let set = KeySet::from_document(&doc, &[JwsAlgorithm::ES256, JwsAlgorithm::RS256]);
        let kids: Vec<_> = set
            .all
            .iter()
            .map(|k| k.kid().unwrap_or("").to_owned())
            .collect();
        assert_eq!(kids, vec!["good".to_owned()]);
        assert!(set.get("good").is_some());
        assert!(set.get("tiny-rsa").is_none());
    }

    #[test]
    fn declared_alg_restricts_the_key() {
        let rsa = PrivateKey::generate(KeyKind::Rsa2048).unwrap();
        let jwk = rsa.public_jwk().with_kid("r").with_alg(JwsAlgorithm::PS256);
        let k = VerifyingKey::from_jwk(&jwk, &[JwsAlgorithm::RS256, JwsAlgorithm::PS256]).unwrap();
        assert!(k.for_alg(JwsAlgorithm::PS256).is_some());
        assert!(k.for_alg(JwsAlgorithm::RS256).is_none());
        assert!(k.for_alg(JwsAlgorithm::ES256).is_none());
        assert!(format!("{k:?}").contains("RSA"));
    }
}
