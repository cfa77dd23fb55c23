//! Private keys: RSA (2048 bits or more), ECDSA P-256 and P-384.
//!
//! A [`PrivateKey`] is parsed once (PKCS#8, PKCS#1 or SEC1) into an aws-lc-rs key pair
//! and then signs JWS payloads without re-parsing. Its `Debug` output never shows key
//! material, and the DER copy it keeps for TLS is zeroized on drop.
//!
//! ```
//! use certbound_core::{KeyKind, PrivateKey, JwsAlgorithm};
//! let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! assert_eq!(key.default_jws_algorithm(), JwsAlgorithm::ES256);
//! let sig = key.sign(JwsAlgorithm::ES256, b"hello").unwrap();
//! assert_eq!(sig.len(), 64);
//! assert!(!format!("{key:?}").contains("BEGIN"));
//! ```

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::b64;
use crate::error::JoseError;
use crate::jwk::{Jwk, JwsAlgorithm};

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
}

enum Inner {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
}

/// A private key usable for JWS signatures and as a TLS client/server key.
pub struct PrivateKey {
    inner: Inner,
    /// PKCS#8 v1 DER, zeroized on drop; handed to rustls.
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("type", &self.describe())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses a DER private key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC) form.
    ///
    /// Errors say why the key is unusable (for example an RSA key under 2048 bits)
    /// without showing it.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            return Self::from_rsa(k);
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Self::from_ec(k, false);
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der) {
            return Self::from_ec(k, true);
        }
        match RsaKeyPair::from_der(der) {
            Ok(k) => return Self::from_rsa(k),
            Err(e) if e.description_() == "InvalidEncoding" => {}
            Err(e) => {
                if looks_like_rsa_pkcs1(der) {
                    return Err(format!("RSA key rejected ({})", e.description_()));
                }
            }
        }
        if let Ok(k) =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            return Self::from_ec(k, false);
        }
        if let Ok(k) =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
        {
            return Self::from_ec(k, true);
        }
        Err("not an RSA (2048+ bits), P-256 or P-384 private key in PKCS#8, PKCS#1 or SEC1 form (Ed25519 and other curves are not supported)".into())
    }

    /// Parses the first private key found in PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY`
    /// or `EC PRIVATE KEY`). `Ok(None)` when the PEM holds no key.
    pub fn from_pem(pem: &[u8]) -> Result<Option<Self>, String> {
        use rustls_pki_types::pem::PemObject as _;
        match PrivateKeyDer::from_pem_slice(pem) {
            Ok(k) => Self::from_der(k.secret_der()).map(Some),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => Ok(None),
            Err(e) => Err(format!("malformed PEM private key: {e}")),
        }
    }

    /// Generates a fresh key.
    pub fn generate(kind: KeyKind) -> Result<Self, String> {
        match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 => {
                let size = if kind == KeyKind::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa3072
                };
                let k = RsaKeyPair::generate(size).map_err(|_| "RSA key generation failed")?;
                Self::from_rsa(k)
            }
            KeyKind::EcP256 => {
                let k = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| "P-256 key generation failed")?;
                Self::from_ec(k, false)
            }
            KeyKind::EcP384 => {
                let k = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| "P-384 key generation failed")?;
                Self::from_ec(k, true)
            }
        }
    }

    fn from_rsa(k: RsaKeyPair) -> Result<Self, String> {
        let bits = k.public_modulus_len() * 8;
        if bits < 2048 {
            return Err(format!(
                "RSA key of {bits} bits is too small; use 2048 bits or more"
            ));
        }
        let pkcs8 = k
            .as_der()
            .map_err(|_| "cannot encode the RSA key as PKCS#8")?
            .as_ref()
            .to_vec();
        Ok(Self {
            inner: Inner::Rsa(k),
            pkcs8: Zeroizing::new(pkcs8),
        })
    }

    fn from_ec(k: EcdsaKeyPair, p384: bool) -> Result<Self, String> {
        let pkcs8 = k
            .to_pkcs8v1()
            .map_err(|_| "cannot encode the EC key as PKCS#8")?
            .as_ref()
            .to_vec();
        Ok(Self {
            inner: if p384 { Inner::P384(k) } else { Inner::P256(k) },
            pkcs8: Zeroizing::new(pkcs8),
        })
    }

    /// A short description such as `"RSA-2048"` or `"EC P-256"` (no key material).
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Rsa(k) => format!("RSA-{}", k.public_modulus_len() * 8),
            Inner::P256(_) => "EC P-256".into(),
            Inner::P384(_) => "EC P-384".into(),
        }
    }

    /// Whether this is an RSA key.
    pub fn is_rsa(&self) -> bool {
        matches!(self.inner, Inner::Rsa(_))
    }

    /// The public key as it appears in a certificate's SubjectPublicKeyInfo bit string:
    /// PKCS#1 `RSAPublicKey` DER for RSA, the uncompressed point for EC.
    pub fn public_key_bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Rsa(k) => k.public_key().as_ref(),
            Inner::P256(k) | Inner::P384(k) => k.public_key().as_ref(),
        }
    }

    /// The JWS algorithm certbound uses by default: PS256 for RSA, ES256/ES384 for EC.
    pub fn default_jws_algorithm(&self) -> JwsAlgorithm {
        match &self.inner {
            Inner::Rsa(_) => JwsAlgorithm::PS256,
            Inner::P256(_) => JwsAlgorithm::ES256,
            Inner::P384(_) => JwsAlgorithm::ES384,
        }
    }

    /// Whether `alg` can be produced by this key.
    pub fn supports(&self, alg: JwsAlgorithm) -> bool {
        matches!(
            (&self.inner, alg),
            (Inner::Rsa(_), JwsAlgorithm::RS256 | JwsAlgorithm::PS256)
                | (Inner::P256(_), JwsAlgorithm::ES256)
                | (Inner::P384(_), JwsAlgorithm::ES384)
        )
    }

    /// Signs `message` with `alg`, producing a JWS signature (ECDSA in fixed `r||s` form).
    pub fn sign(&self, alg: JwsAlgorithm, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match (&self.inner, alg) {
            (Inner::Rsa(k), JwsAlgorithm::RS256 | JwsAlgorithm::PS256) => {
                let padding: &'static dyn signature::RsaEncoding = if alg == JwsAlgorithm::PS256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &rng, message, &mut sig)
                    .map_err(|_| JoseError::Sign)?;
                Ok(sig)
            }
            (Inner::P256(k), JwsAlgorithm::ES256) | (Inner::P384(k), JwsAlgorithm::ES384) => Ok(k
                .sign(&rng, message)
                .map_err(|_| JoseError::Sign)?
                .as_ref()
                .to_vec()),
            _ => Err(JoseError::AlgorithmMismatch {
                alg: alg.as_str(),
                key: self.kind_name(),
            }),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.inner {
            Inner::Rsa(_) => "RSA",
            Inner::P256(_) => "P-256",
            Inner::P384(_) => "P-384",
        }
    }

    /// The public key as a JWK (no `kid`; set one with [`Jwk::with_kid`]).
    pub fn public_jwk(&self) -> Jwk {
        match &self.inner {
            Inner::Rsa(k) => {
                let c: PublicKeyComponents<Vec<u8>> = k.public_key().into();
                Jwk::rsa(b64::encode(&c.n), b64::encode(&c.e))
            }
            Inner::P256(k) | Inner::P384(k) => {
                let point = k.public_key().as_ref();
                let crv = if matches!(self.inner, Inner::P256(_)) {
                    "P-256"
                } else {
                    "P-384"
                };
                let n = (point.len() - 1) / 2;
                Jwk::ec(
                    crv,
                    b64::encode(&point[1..1 + n]),
                    b64::encode(&point[1 + n..]),
                )
            }
        }
    }

    /// The key for rustls (PKCS#8 DER). The copy is not zeroized by rustls; prefer
    /// passing it straight into a config.
    pub fn to_rustls(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.to_vec()))
    }

    /// PKCS#8 DER, zeroized when the returned value is dropped.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::pem::pem_encode("PRIVATE KEY", &self.pkcs8))
    }
}

/// A PKCS#1 RSAPrivateKey starts with SEQUENCE { INTEGER 0, INTEGER n … }; used only to
/// give a better message when aws-lc-rs rejects an RSA key for its size.
fn looks_like_rsa_pkcs1(der: &[u8]) -> bool {
    der.len() > 8 && der[0] == 0x30 && der.windows(3).take(8).any(|w| w == [0x02, 0x01, 0x00])
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_kinds() {
        for kind in [KeyKind::Rsa2048, KeyKind::EcP256, KeyKind::EcP384] {
            let k = PrivateKey::generate(kind).unwrap();
            let again = PrivateKey::from_der(&k.to_pkcs8_der()).unwrap();
            assert_eq!(k.public_key_bytes(), again.public_key_bytes());
            let pem = k.to_pkcs8_pem();
            let from_pem = PrivateKey::from_pem(pem.as_bytes()).unwrap().unwrap();
            assert_eq!(k.public_key_bytes(), from_pem.public_key_bytes());
            let alg = k.default_jws_algorithm();
            assert!(k.sign(alg, b"m").is_ok());
            assert!(!format!("{k:?}").contains(&pem[30..60]));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(PrivateKey::from_der(b"").is_err());
        assert!(PrivateKey::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(PrivateKey::from_pem(b"hello").unwrap().is_none());
    }

    #[test]
    fn wrong_algorithm_is_an_error() {
        let k = PrivateKey::generate(KeyKind::EcP256).unwrap();
        assert!(matches!(
            k.sign(JwsAlgorithm::PS256, b"x"),
            Err(JoseError::AlgorithmMismatch { .. })
        ));
    }
}
