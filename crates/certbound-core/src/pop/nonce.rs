//! Stateless DPoP server nonces (RFC 9449 §8–9), shared by the token endpoint and the
//! resource server.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq as _;

/// Stateless DPoP nonces (RFC 9449 §8–9): `base64url(period) . base64url(HMAC(period))[..16]`
/// under a key generated at start, valid in the period it was issued and the next one. No
/// storage, nothing to share between requests; instances do not accept each other's nonces
/// (give several replicas the same instance, or pin clients, if that matters).
///
/// ```
/// use certbound_core::pop::DpopNonces;
/// let nonces = DpopNonces::new(std::time::Duration::from_secs(60)).unwrap();
/// let n = nonces.current();
/// assert!(nonces.is_valid(&n));
/// assert!(!nonces.is_valid("made-up"));
/// ```
#[derive(Clone)]
pub struct DpopNonces {
    key: Arc<hmac::Key>,
    period: i64,
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// Nonces rotating every `period` (at least 1 s); `None` if no randomness is available.
    pub fn new(period: Duration) -> Option<Self> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok()?;
        Some(Self {
            key: Arc::new(key),
            period: i64::try_from(period.as_secs().max(1)).unwrap_or(i64::MAX),
        })
    }

    fn for_period(&self, period: i64) -> String {
        let b = period.to_be_bytes();
        let tag = hmac::sign(&self.key, &b);
        format!(
            "{}.{}",
            crate::b64::encode(b),
            crate::b64::encode(&tag.as_ref()[..16])
        )
    }

    /// The nonce to hand out now (`DPoP-Nonce`).
    pub fn current(&self) -> String {
        self.for_period(crate::now_unix() / self.period)
    }

    /// Whether `nonce` was issued by this instance in the current or the previous period.
    pub fn is_valid(&self, nonce: &str) -> bool {
        let current = crate::now_unix() / self.period;
        let Some((b, tag)) = nonce.split_once('.') else {
            return false;
        };
        let (Ok(b), Ok(tag)) = (crate::b64::decode(b), crate::b64::decode(tag)) else {
            return false;
        };
        let Ok(bytes) = <[u8; 8]>::try_from(b.as_slice()) else {
            return false;
        };
        let period = i64::from_be_bytes(bytes);
        if period != current && period != current.saturating_sub(1) {
            return false;
        }
        let full = hmac::sign(&self.key, &bytes);
        tag.len() == 16 && bool::from(full.as_ref()[..16].ct_eq(&tag))
    }
}
