//! Sealing cache entries: AES-256-GCM (aws-lc-rs) with random nonces, the cache key as
//! associated data, and a key id in a small versioned envelope so keys can be rotated.
//!
//! Envelope layout (version 1):
//!
//! ```text
//! +------+-------------+-----------+---------------------------+
//! | 0x01 | key id (8)  | nonce (12)| ciphertext ‖ tag (16)     |
//! +------+-------------+-----------+---------------------------+
//! ```
//!
//! The associated data is `"certbound-redis" ‖ version ‖ key id ‖ cache key string`, so an
//! entry copied under another cache key, or with its header edited, fails to open.
//! The key id is the first 8 bytes of SHA-256 of the key; it names the key without revealing it.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::RedisConfigError;

/// Envelope format version written by this crate.
pub const ENVELOPE_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const AAD_DOMAIN: &[u8] = b"certbound-redis";

/// The public, non-secret name of an [`EncryptionKey`]: the first 8 bytes of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The id as lowercase hex (16 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 256-bit AES-GCM key for cache entries. The raw bytes are zeroized on drop and never
/// printed: `Debug` shows only the [`KeyId`].
///
/// ```
/// use certbound_redis::EncryptionKey;
/// let key = EncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// assert!(!format!("{key:?}").contains("AAECAw"));
/// ```
pub struct EncryptionKey {
    id: KeyId,
    aead: RandomizedNonceKey,
}

impl EncryptionKey {
    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RedisConfigError> {
        if bytes.len() != 32 {
            return Err(RedisConfigError::invalid(
                "EncryptionKey",
                format!(
                    "must be 32 bytes (AES-256), got {} bytes; generate one with `openssl rand -base64 32`",
                    bytes.len()
                ),
            ));
        }
        let aead = RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| {
            RedisConfigError::invalid("EncryptionKey", "the AES-256-GCM key was rejected")
        })?;
        let d = digest::digest(&digest::SHA256, bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&d.as_ref()[..KEY_ID_LEN]);
        Ok(Self {
            id: KeyId(id),
            aead,
        })
    }

    /// A key from standard base64 (padding optional, surrounding whitespace ignored) or
    /// base64url, decoding to 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, RedisConfigError> {
        Self::from_base64_at(text, "EncryptionKey")
    }

    pub(crate) fn from_base64_at(text: &str, path: &str) -> Result<Self, RedisConfigError> {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let trimmed = compact.trim_end_matches('=');
        let engines = [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(bytes) = engine.decode(trimmed) {
                let bytes = Zeroizing::new(bytes);
                return Self::from_bytes(&bytes).map_err(|e| e.at(path));
            }
        }
        Err(RedisConfigError::invalid(
            path,
            "is not base64; expected 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
        ))
    }

    /// A fresh random key (for tests and for generating configuration).
    pub fn generate() -> Result<Self, RedisConfigError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes[..])
            .map_err(|_| RedisConfigError::invalid("EncryptionKey", "the system RNG failed"))?;
        Self::from_bytes(&bytes[..])
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why an entry could not be opened. None of these carries entry or key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Too short or an unknown version byte: not something this crate wrote.
    #[error("the entry is not a certbound envelope (bad length or version)")]
    Malformed,
    /// Sealed under a key that is neither the current key nor one of the older keys.
    #[error(
        "the entry was sealed under key id {0}, which is not configured (add it to EncryptionKeys to read it)"
    )]
    UnknownKey(KeyId),
    /// The tag did not verify: tampered, moved to another cache key, or truncated.
    #[error("the entry failed authentication (tampered, moved under another key, or corrupt)")]
    Tampered,
    /// Sealing failed (RNG failure).
    #[error("sealing the entry failed")]
    Seal,
}

/// The current key (which seals) and older keys (which still open).
///
/// ```
/// use certbound_redis::{EncryptionKey, Keyring};
/// let old_bytes = [7u8; 32]; // in real use: random, from configuration
/// let sealed = Keyring::new(EncryptionKey::from_bytes(&old_bytes).unwrap())
///     .seal("app|scope", b"token json")
///     .unwrap();
/// // Rotate: a new current key seals; the old one is kept for reading.
/// let ring = Keyring::new(EncryptionKey::generate().unwrap())
///     .with_older(EncryptionKey::from_bytes(&old_bytes).unwrap());
/// let opened = ring.open("app|scope", &sealed).unwrap();
/// assert!(opened.rotated);
/// assert_eq!(&opened.plaintext[..], b"token json");
/// ```
#[derive(Debug)]
pub struct Keyring {
    current: EncryptionKey,
    older: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(current: EncryptionKey) -> Self {
        Self {
            current,
            older: Vec::new(),
        }
    }

    /// Adds an older key that still opens entries but never seals.
    pub fn with_older(mut self, key: EncryptionKey) -> Self {
        if key.id != self.current.id && !self.older.iter().any(|k| k.id == key.id) {
            self.older.push(key);
        }
        self
    }

    /// The id of the key that seals new entries.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// The ids of the older keys.
    pub fn older_ids(&self) -> Vec<KeyId> {
        self.older.iter().map(|k| k.id).collect()
    }

    fn aad(version: u8, id: &KeyId, cache_key: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 1 + KEY_ID_LEN + cache_key.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.push(version);
        aad.extend_from_slice(&id.0);
        aad.extend_from_slice(cache_key.as_bytes());
        aad
    }

    /// Seals `plaintext` for `cache_key` under the current key.
    pub fn seal(&self, cache_key: &str, plaintext: &[u8]) -> Result<Vec<u8>, OpenError> {
        let key = &self.current;
        let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
        body.extend_from_slice(plaintext);
        let aad = Self::aad(ENVELOPE_VERSION, &key.id, cache_key);
        let nonce = key
            .aead
            .seal_in_place_append_tag(Aad::from(&aad), &mut body)
            .map_err(|_| OpenError::Seal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&key.id.0);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens an envelope for `cache_key`, with whichever configured key sealed it.
    /// Also tells whether that key is an older one (the caller may re-seal).
    pub fn open(&self, cache_key: &str, envelope: &[u8]) -> Result<Opened, OpenError> {
        if envelope.len() < HEADER_LEN + TAG_LEN || envelope[0] != ENVELOPE_VERSION {
            return Err(OpenError::Malformed);
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&envelope[1..1 + KEY_ID_LEN]);
        let id = KeyId(id);
        let (key, rotated) = if id == self.current.id {
            (&self.current, false)
        } else {
            match self.older.iter().find(|k| k.id == id) {
                Some(k) => (k, true),
                None => return Err(OpenError::UnknownKey(id)),
            }
        };
        let nonce = Nonce::try_assume_unique_for_key(&envelope[1 + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| OpenError::Malformed)?;
        let aad = Self::aad(envelope[0], &id, cache_key);
        let mut body = Zeroizing::new(envelope[HEADER_LEN..].to_vec());
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&aad), &mut body[..])
            .map_err(|_| OpenError::Tampered)?;
        Ok(Opened {
            plaintext: Zeroizing::new(plain.to_vec()),
            key_id: id,
            rotated,
        })
    }
}

/// An opened entry.
pub struct Opened {
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key that sealed it.
    pub key_id: KeyId,
    /// True when it was sealed under an older key.
    pub rotated: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .field("key_id", &self.key_id)
            .field("rotated", &self.rotated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EncryptionKey {
        EncryptionKey::generate().unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let ring = Keyring::new(key());
        let a = ring.seal("k", b"secret-token").unwrap();
        let b = ring.seal("k", b"secret-token").unwrap();
        assert_ne!(a, b, "random nonces make every envelope different");
        assert!(!a.windows(12).any(|w| w == b"secret-token"));
        let opened = ring.open("k", &a).unwrap();
        assert_eq!(&opened.plaintext[..], b"secret-token");
        assert!(!opened.rotated);
    }

    #[test]
    fn cache_key_is_bound() {
        let ring = Keyring::new(key());
        let a = ring.seal("tenant-a", b"x").unwrap();
        assert_eq!(ring.open("tenant-b", &a).unwrap_err(), OpenError::Tampered);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let ring = Keyring::new(key());
        let a = ring.seal("k", b"payload").unwrap();
        for i in 0..a.len() {
            let mut t = a.clone();
            t[i] ^= 0x01;
            assert!(
                ring.open("k", &t).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert_eq!(
            ring.open("k", &a[..a.len() - 1]).unwrap_err(),
            OpenError::Tampered
        );
        assert_eq!(ring.open("k", &a[..10]).unwrap_err(), OpenError::Malformed);
        assert_eq!(ring.open("k", b"").unwrap_err(), OpenError::Malformed);
    }

    #[test]
    fn rotation_old_key_opens_new_key_seals() {
        let old_bytes = [7u8; 32];
        let old = EncryptionKey::from_bytes(&old_bytes).unwrap();
        let old_id = old.id();
        let sealed_by_old = Keyring::new(old).seal("k", b"v").unwrap();
        let rotated =
            Keyring::new(key()).with_older(EncryptionKey::from_bytes(&old_bytes).unwrap());
        let opened = rotated.open("k", &sealed_by_old).unwrap();
        assert!(opened.rotated);
        assert_eq!(opened.key_id, old_id);
        let fresh = rotated.seal("k", b"v").unwrap();
        assert_eq!(&fresh[1..9], &rotated.current_id().0);
        // A ring without the old key reports which key id is missing.
        let without = Keyring::new(key());
        assert_eq!(
            without.open("k", &sealed_by_old).unwrap_err(),
            OpenError::UnknownKey(old_id)
        );
    }

    #[test]
    fn key_parsing_and_redaction() {
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k = EncryptionKey::from_base64(b64).unwrap();
        let dbg = format!("{k:?}");
        let dbg = format!("{dbg} {:?}", Keyring::new(k));
        assert!(
            !dbg.contains("AAECAw") && !dbg.contains("[0, 1, 2"),
            "{dbg}"
        );
        assert!(EncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
        assert!(
            EncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8_").is_err()
        );
        let short = EncryptionKey::from_base64("AAEC").unwrap_err().to_string();
        assert!(
            short.contains("32 bytes") && short.contains("EncryptionKey"),
            "{short}"
        );
        let not_b64 = EncryptionKey::from_base64("not base64 !!")
            .unwrap_err()
            .to_string();
        assert!(not_b64.contains("not base64"), "{not_b64}");
    }
}
