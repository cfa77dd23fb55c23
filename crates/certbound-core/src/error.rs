//! Typed errors for loading certificates and keys.
//!
//! Every error names its *source* (a file path, `"base64 value"`, a config key …) so the
//! person reading it knows which input to fix. No error ever contains key material,
//! passwords or the raw bytes of the input.

use std::fmt;

/// What went wrong while loading a certificate or key, and from where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("{source_name}: {kind}")]
pub struct CertError {
    /// Where the input came from: a path, `"base64 value"`, a configuration key …
    pub source_name: String,
    /// What is wrong with it.
    #[source]
    pub kind: CertErrorKind,
}

impl CertError {
    /// Builds an error for `source_name`.
    pub fn new(source_name: impl fmt::Display, kind: CertErrorKind) -> Self {
        Self {
            source_name: source_name.to_string(),
            kind,
        }
    }
}

/// The problem with a certificate or key input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The path names a directory.
    #[error("is a directory; expected a certificate file (PEM, DER or PFX)")]
    IsDirectory,
    /// The input holds no bytes.
    #[error("is empty")]
    Empty,
    /// The input is not valid base64.
    #[error("is not valid base64 ({0})")]
    Base64(#[source] base64::DecodeError),
    /// PEM was found but could not be decoded.
    #[error("malformed PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// A certificate could not be parsed as X.509.
    #[error("not a valid X.509 certificate: {0}")]
    X509(
        String,
        /// The parser's error, when there is one.
        #[source]
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ),
    /// No certificate in the input.
    #[error("contains no certificate")]
    NoCertificate,
    /// No private key in the input (and none next to it).
    #[error(
        "contains no private key; put the key in the same PEM, next to it as `<name>.key`, or use a PFX"
    )]
    NoPrivateKey,
    /// The key is of a type or size certbound does not accept.
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
    /// The private key does not match the certificate's public key.
    #[error("the private key does not belong to the certificate (public keys differ)")]
    KeyMismatch,
    /// PKCS#12 decoding failed: usually a wrong password.
    #[error("cannot open the PFX/PKCS#12: wrong password, or the file is damaged")]
    Pkcs12,
    /// The input is binary and not a certificate, so a PFX/PKCS#12, but certbound-core was
    /// built without its `pkcs12` feature.
    #[error(
        "is not PEM or a DER certificate, so presumably a PFX/PKCS#12, which needs certbound-core's `pkcs12` feature"
    )]
    Pkcs12Disabled,
    /// The PFX opened but holds no key with a certificate chain.
    #[error("the PFX holds no private key with a certificate")]
    Pkcs12NoKey,
    /// The certificate's validity period has ended.
    #[error("the certificate expired at {0} (UTC); renew it")]
    Expired(String),
    /// The certificate's validity period has not started.
    #[error("the certificate is not valid before {0} (UTC); check the clock or the certificate")]
    NotYetValid(String),
    /// Generating a key or certificate failed.
    #[error("cannot generate: {0}")]
    Generate(
        String,
        /// The generator's (rcgen's, the PKCS#12 writer's) error.
        #[source]
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ),
}

/// Errors from JOSE operations (JWS signing, JWK handling).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// The algorithm cannot be used with this key.
    #[error("algorithm {alg} cannot be used with a {key} key")]
    AlgorithmMismatch {
        /// The requested JWS algorithm.
        alg: &'static str,
        /// The key's type.
        key: &'static str,
    },
    /// The crypto library refused to sign.
    #[error("signing failed")]
    Sign,
    /// A JWK is missing a member needed for this operation.
    #[error("JWK is missing or has an invalid `{0}`")]
    JwkMember(&'static str),
    /// The compact JWS is malformed.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}
