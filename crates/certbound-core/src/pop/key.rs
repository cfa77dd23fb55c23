//! The app's proof key: making DPoP proofs and signed HTTP requests.

use std::fmt;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value, json};

use crate::b64;
use crate::jose::{JwsHeader, sign_compact};
use crate::jwk::{Jwk, JwsAlgorithm};
use crate::key::{KeyKind, PrivateKey};

use super::{
    DPOP_TYP, HttpTarget, PopError, SHR_TYP, access_token_hash, check_method, normalize_htu,
    req_cnf_for, thumbprints_equal,
};

pub(super) fn random_id() -> Result<String, PopError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PopError::Sign("no randomness".into()))?;
    Ok(b64::encode(bytes))
}

// ---------------------------------------------------------------------------------------
// The proof key
// ---------------------------------------------------------------------------------------

pub(super) struct KeyState {
    key: PrivateKey,
    alg: JwsAlgorithm,
    jwk: Jwk,
    jwk_value: Value,
    thumbprint: String,
}

impl KeyState {
    fn new(key: PrivateKey, alg: JwsAlgorithm) -> Result<Self, PopError> {
        if !key.supports(alg) {
            return Err(PopError::Sign(format!(
                "algorithm {alg} cannot be used with a {} key",
                key.describe()
            )));
        }
        let jwk = key.public_jwk();
        let thumbprint = jwk
            .thumbprint()
            .map_err(|e| PopError::Sign(e.to_string()))?;
        let jwk_value = serde_json::to_value(&jwk).map_err(|e| PopError::Sign(e.to_string()))?;
        Ok(Self {
            key,
            alg,
            jwk,
            jwk_value,
            thumbprint,
        })
    }
}

/// The app's proof-of-possession key: generated per app, kept in memory, rotatable.
///
/// Cheap to clone (clones share the key, and a [`rotate`](Self::rotate) is seen by all).
/// `Debug` shows the key type and thumbprint only.
///
/// ```
/// use certbound_core::pop::ProofKey;
/// let key = ProofKey::generate().unwrap();
/// let before = key.thumbprint();
/// key.rotate().unwrap();
/// assert_ne!(key.thumbprint(), before);
/// assert!(!format!("{key:?}").contains("\"d\""));
/// ```
#[derive(Clone)]
pub struct ProofKey {
    kind: KeyKind,
    state: Arc<RwLock<Arc<KeyState>>>,
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.current();
        f.debug_struct("ProofKey")
            .field("type", &s.key.describe())
            .field("alg", &s.alg)
            .field("thumbprint", &s.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ProofKey {
    /// A fresh EC P-256 key signing ES256 (the default, as MSAL uses for DPoP).
    pub fn generate() -> Result<Self, PopError> {
        Self::generate_kind(KeyKind::EcP256)
    }

    /// A fresh key of `kind`, signing with its default algorithm (PS256 for RSA, ES256/
    /// ES384 for EC).
    pub fn generate_kind(kind: KeyKind) -> Result<Self, PopError> {
        let key = PrivateKey::generate(kind).map_err(PopError::Sign)?;
        let alg = key.default_jws_algorithm();
        Ok(Self {
            kind,
            state: Arc::new(RwLock::new(Arc::new(KeyState::new(key, alg)?))),
        })
    }

    /// Uses an existing key with `alg` (e.g. an RSA key with RS256).
    pub fn from_private_key(key: PrivateKey, alg: JwsAlgorithm) -> Result<Self, PopError> {
        let kind = match alg {
            JwsAlgorithm::ES256 => KeyKind::EcP256,
            JwsAlgorithm::ES384 => KeyKind::EcP384,
            JwsAlgorithm::RS256 | JwsAlgorithm::PS256 => KeyKind::Rsa2048,
        };
        Ok(Self {
            kind,
            state: Arc::new(RwLock::new(Arc::new(KeyState::new(key, alg)?))),
        })
    }

    fn current(&self) -> Arc<KeyState> {
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the key with a fresh one of the same kind. Tokens bound to the old key
    /// (`cnf.jkt`/`cnf.kid`) no longer match: the client must acquire new ones (its cache
    /// key should include [`thumbprint`](Self::thumbprint)).
    pub fn rotate(&self) -> Result<(), PopError> {
        let key = PrivateKey::generate(self.kind).map_err(PopError::Sign)?;
        let alg = self.current().alg;
        let alg = if key.supports(alg) {
            alg
        } else {
            key.default_jws_algorithm()
        };
        let fresh = Arc::new(KeyState::new(key, alg)?);
        match self.state.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.current().alg
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        self.current().jwk.clone()
    }

    /// The RFC 7638 thumbprint of the public key: the value of `cnf.jkt` (DPoP) and
    /// `cnf.kid` (PoP) in tokens bound to this key.
    pub fn thumbprint(&self) -> String {
        self.current().thumbprint.clone()
    }

    /// Whether `thumbprint` is the current key's (no allocation; constant time).
    pub fn has_thumbprint(&self, thumbprint: &str) -> bool {
        thumbprints_equal(&self.current().thumbprint, thumbprint)
    }

    /// The `req_cnf` token-request parameter (`token_type=pop`).
    pub fn req_cnf(&self) -> String {
        req_cnf_for(&self.current().thumbprint)
    }

    /// A DPoP proof (RFC 9449 §4.2) for one request: header `typ: dpop+jwt`, `alg`, `jwk`;
    /// claims `jti` (random), `htm`, `htu` (normalised), `iat`, `ath` when an access token
    /// is given (resource requests) and `nonce` when the server asked for one.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, PopError> {
        self.dpop_proof_at(method, url, access_token, nonce, crate::now_unix())
    }

    /// [`dpop_proof`](Self::dpop_proof) with an explicit `iat` (tests, clock correction
    /// from a server's `Date`).
    pub fn dpop_proof_at(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: i64,
    ) -> Result<String, PopError> {
        check_method(method)?;
        let htu = normalize_htu(url)?;
        let s = self.current();
        let header = JwsHeader::new(s.alg)
            .typ(DPOP_TYP)
            .set("jwk", s.jwk_value.clone());
        let mut claims = Map::new();
        claims.insert("jti".into(), Value::String(random_id()?));
        claims.insert("htm".into(), Value::String(method.into()));
        claims.insert("htu".into(), Value::String(htu));
        claims.insert("iat".into(), Value::from(iat));
        if let Some(t) = access_token {
            claims.insert("ath".into(), Value::String(access_token_hash(t)));
        }
        if let Some(n) = nonce {
            claims.insert("nonce".into(), Value::String(n.into()));
        }
        sign_compact(&header, &claims, &s.key).map_err(|e| PopError::Sign(e.to_string()))
    }

    /// A signed HTTP request ("PoP", SHR) wrapping `access_token` for one request:
    /// header `{"alg","kid":<thumbprint>,"typ":"pop"}`, payload
    /// `{"at","ts","nonce","m","u","p","cnf":{"jwk"}}`; sent as `Authorization: PoP <shr>`.
    pub fn signed_http_request(
        &self,
        access_token: &str,
        method: &str,
        url: &str,
    ) -> Result<String, PopError> {
        self.signed_http_request_at(access_token, method, url, crate::now_unix())
    }

    /// [`signed_http_request`](Self::signed_http_request) with an explicit `ts`.
    pub fn signed_http_request_at(
        &self,
        access_token: &str,
        method: &str,
        url: &str,
        ts: i64,
    ) -> Result<String, PopError> {
        check_method(method)?;
        let target = HttpTarget::parse(url)?;
        let s = self.current();
        let header = JwsHeader::new(s.alg).kid(&s.thumbprint).typ(SHR_TYP);
        let claims = json!({
            "at": access_token,
            "ts": ts,
            "nonce": random_id()?,
            "m": method,
            "u": target.authority,
            "p": target.path,
            "cnf": { "jwk": s.jwk_value },
        });
        sign_compact(&header, &claims, &s.key).map_err(|e| PopError::Sign(e.to_string()))
    }
}
