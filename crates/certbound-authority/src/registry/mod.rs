//! The client registry: registering applications and the registry file
//! (`authority.json`) that a running authority re-reads when it changes.
//!
//! A registration names the client id, one credential and the audiences the client may
//! ask for:
//!
//! - a **client secret** (authenticates by `client_secret_post` or `client_secret_basic`),
//!   stored as a salted PBKDF2-HMAC-SHA256 hash, never in clear;
//! - a **certificate** with a method:
//!   - `self_signed_tls_client_auth` or `private_key_jwt`: the certificate itself is
//!     registered (as a JWK with `x5c`); it authenticates the client as the TLS client
//!     certificate (exact match, RFC 8705 §2.2) or by signing a `private_key_jwt`
//!     assertion (RFC 7523) — each only when that method is registered (an Entra-like
//!     certificate credential registers both);
//!   - `tls_client_auth` (RFC 8705 §2.1): the certificate must be issued by the
//!     authority's development CA; its subject DN is registered (in RFC 4514 form), and
//!     any certificate from that CA with an equal subject DN (compared structurally, see
//!     [`crate::dn`]) authenticates the client over TLS (renewal without
//!     re-registration).
//!
//! A client authenticates only by the methods it was registered with (RFC 7591
//! `token_endpoint_auth_method`; several may be registered, see
//! [`ClientRegistration::auth_method`]): a `private_key_jwt` client is refused over mTLS
//! alone, a `self_signed_tls_client_auth` client is refused with an assertion, and so on.
//! `tls_client_auth` clients may instead be registered with a subject DN or one SAN
//! ([`TlsClientAuthSubject`], RFC 8705 §2.1.2), without a certificate.
//!
//! Registering a client id again replaces its registration.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use certbound_core::{Certificate, Jwk, Jwks, JwsAlgorithm, Thumbprint, b64};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::AuthorityError;
use crate::method::AuthMethod;
use crate::subject::{SubjectMatcher, TlsClientAuthSubject};

/// PBKDF2 iterations for new secret hashes. Client secrets are machine-generated and
/// high-entropy in practice; this keeps a token request with a secret in the
/// low milliseconds while still making offline guessing costly.
const PBKDF2_ITERATIONS: u32 = 20_000;

/// A client secret. `Debug` shows `<redacted>`; the text is zeroized on drop.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }
    /// The secret text (to send it, or to hash it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How a registered certificate authenticates its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertAuthMethod {
    /// RFC 8705 §2.2: the TLS client certificate is the registered one.
    SelfSignedTlsClientAuth,
    /// RFC 8705 §2.1: the TLS client certificate chains to the development CA and has
    /// the registered subject DN.
    TlsClientAuth,
    /// RFC 7523: a JWT assertion signed by the registered certificate's key.
    PrivateKeyJwt,
}

impl CertAuthMethod {
    /// The `token_endpoint_auth_method` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::TlsClientAuth => "tls_client_auth",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl std::str::FromStr for CertAuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "self_signed_tls_client_auth" => Ok(Self::SelfSignedTlsClientAuth),
            "tls_client_auth" => Ok(Self::TlsClientAuth),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            _ => Err(format!(
                "unknown certificate authentication method `{s}` (expected self_signed_tls_client_auth, tls_client_auth or private_key_jwt)"
            )),
        }
    }
}

/// A client's credential.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credential {
    /// A shared secret (`client_secret_post` / `client_secret_basic`).
    Secret(ClientSecret),
    /// A certificate (leaf first; only the leaf is registered).
    Certificate {
        /// The certificate.
        certificate: Certificate,
        /// How it authenticates the client.
        method: CertAuthMethod,
    },
    /// `tls_client_auth` by subject DN or SAN alone (RFC 8705 §2.1.2): any certificate
    /// issued by the authority's CA with that subject or SAN authenticates the client.
    TlsClientAuth(TlsClientAuthSubject),
}

/// A client application to register.
///
/// ```
/// use certbound_authority::{ClientRegistration, CertAuthMethod};
/// use certbound_core::{ca::{self, IssueSpec}, KeyKind};
/// let cred = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
/// let reg = ClientRegistration::with_certificate("app-1", cred.leaf().clone(), CertAuthMethod::SelfSignedTlsClientAuth)
///     .audience("api://orders");
/// assert_eq!(reg.client_id, "app-1");
/// let secret = ClientRegistration::with_secret("app-2", "s3cr3t");
/// assert!(!format!("{secret:?}").contains("s3cr3t"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// The client (application) id.
    pub client_id: String,
    /// The credential.
    pub credential: Credential,
    /// Audiences the client may request; empty means any.
    pub audiences: Vec<String>,
    /// Issue certificate-bound `Bearer` tokens when the client authenticates with its TLS
    /// certificate (RFC 8705 §3, `tls_client_certificate_bound_access_tokens`). Default true.
    pub bound_tokens: bool,
    /// The `oid` claim of the client's tokens (its service principal's object id in Entra
    /// terms). `None`: a GUID derived from the tenant and client id, stable across restarts.
    pub object_id: Option<String>,
    /// More methods the client may authenticate by. A certificate client may use its
    /// certificate's method and these; a secret client exactly these when any are given
    /// (else both `client_secret_basic` and `client_secret_post`). Secret methods need a
    /// secret, the others a certificate (`tls_client_auth` also a subject).
    pub auth_methods: Vec<AuthMethod>,
    /// With a certificate registered for `tls_client_auth`: the subject DN or SAN to
    /// register instead of the certificate's own subject DN.
    pub tls_subject: Option<TlsClientAuthSubject>,
}

impl ClientRegistration {
    /// A client authenticating with a secret.
    pub fn with_secret(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            credential: Credential::Secret(ClientSecret::new(secret)),
            audiences: Vec::new(),
            bound_tokens: true,
            object_id: None,
            auth_methods: Vec::new(),
            tls_subject: None,
        }
    }
    /// A client authenticating with a certificate.
    pub fn with_certificate(
        client_id: impl Into<String>,
        certificate: Certificate,
        method: CertAuthMethod,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            credential: Credential::Certificate {
                certificate,
                method,
            },
            audiences: Vec::new(),
            bound_tokens: true,
            object_id: None,
            auth_methods: Vec::new(),
            tls_subject: None,
        }
    }
    /// A `tls_client_auth` client recognised by a subject DN or SAN alone (no certificate
    /// is registered; certificates come from the authority's CA).
    ///
    /// ```
    /// use certbound_authority::{ClientRegistration, TlsClientAuthSubject};
    /// let reg = ClientRegistration::with_tls_client_auth(
    ///     "app", TlsClientAuthSubject::SubjectDn("CN=app,O=Contoso,C=DE".into()));
    /// assert_eq!(reg.client_id, "app");
    /// ```
    pub fn with_tls_client_auth(
        client_id: impl Into<String>,
        subject: TlsClientAuthSubject,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            credential: Credential::TlsClientAuth(subject),
            audiences: Vec::new(),
            bound_tokens: true,
            object_id: None,
            auth_methods: Vec::new(),
            tls_subject: None,
        }
    }
    /// Allows one more authentication method (see [`ClientRegistration::auth_methods`]).
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        if !self.auth_methods.contains(&method) {
            self.auth_methods.push(method);
        }
        self
    }
    /// Registers this subject DN or SAN for `tls_client_auth` instead of the
    /// certificate's subject DN.
    pub fn tls_client_auth_subject(mut self, subject: TlsClientAuthSubject) -> Self {
        self.tls_subject = Some(subject);
        self
    }
    /// Sets the object id (`oid`) of the client's tokens (a managed identity's object id).
    pub fn object_id(mut self, oid: impl Into<String>) -> Self {
        self.object_id = Some(oid.into());
        self
    }
    /// Allows one more audience.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }
    /// Sets whether mTLS-authenticated requests get certificate-bound `Bearer` tokens.
    pub fn bound_tokens(mut self, yes: bool) -> Self {
        self.bound_tokens = yes;
        self
    }
}

/// Client ids appear in tokens and logs: printable ASCII without spaces, 1 to 256 characters.
pub(crate) fn check_client_id(id: &str) -> Result<(), AuthorityError> {
    if id.is_empty() || id.len() > 256 || !id.bytes().all(|c| (0x21..0x7f).contains(&c)) {
        return Err(AuthorityError::registration(
            id.get(..id.len().min(64)).unwrap_or(""),
            "client ids must be 1 to 256 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

mod clients;
mod file;
mod record;

pub(crate) use clients::*;
pub(crate) use file::*;
pub(crate) use record::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_registrations_through_separate_handles_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.json");
        let f = StateFile::new("tenant".into(), JwsAlgorithm::ES256);
        std::fs::write(&path, f.to_json().unwrap()).unwrap();
        let ca = certbound_core::ca::DevCa::generate("registry test CA").unwrap();
        let ca = ca.cert();
        // Each thread opens the lock file itself, as separate processes would.
        std::thread::scope(|s| {
            for t in 0..8 {
                let path = &path;
                s.spawn(move || {
                    let _ = ca;
                    for i in 0..10 {
                        let rec = ClientRegistration::with_secret(
                            format!("app-{t}-{i}"),
                            "s3cret-long-enough",
                        );
                        upsert_in_file(path, record_for(&rec, ca).unwrap()).unwrap();
                    }
                });
            }
        });
        let f = StateFile::parse(&std::fs::read(&path).unwrap(), &path).unwrap();
        assert_eq!(
            Clients::from_file(&f).len(),
            80,
            "every registration is in the file"
        );
        assert!(lock_path_for(&path).ends_with("authority.json.lock"));
    }

    #[test]
    fn object_ids_are_stable_guids_unless_given() {
        let a = derived_object_id("t1", "app");
        assert_eq!(a, derived_object_id("t1", "app"));
        assert_ne!(a, derived_object_id("t2", "app"));
        assert_ne!(a, derived_object_id("t1", "app2"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        let ca = certbound_core::ca::DevCa::generate("oid test CA").unwrap();
        let reg = ClientRegistration::with_secret("app", "long-enough-secret").object_id("obj 1");
        assert!(record_for(&reg, ca.cert()).is_err(), "spaces are refused");
        let reg = ClientRegistration::with_secret("app", "long-enough-secret").object_id("obj-1");
        let rec = record_for(&reg, ca.cert()).unwrap();
        assert_eq!(Client::from_record(&rec, "t1").unwrap().object_id, "obj-1");
        let reg = ClientRegistration::with_secret("app", "long-enough-secret");
        let rec = record_for(&reg, ca.cert()).unwrap();
        assert_eq!(Client::from_record(&rec, "t1").unwrap().object_id, a);
    }

    #[test]
    fn secret_hash_verifies_and_redacts() {
        let h = SecretHash::new("correct horse battery");
        assert!(h.verify("correct horse battery"));
        assert!(!h.verify("correct horse batterY"));
        assert!(!h.verify(""));
        assert!(!format!("{h:?}").contains(&h.hash));
        let s = ClientSecret::new("hunter22");
        assert_eq!(format!("{s:?}"), "ClientSecret(<redacted>)");
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(check_client_id("app-1").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("has space").is_err());
        assert!(check_client_id(&"x".repeat(300)).is_err());
    }

    #[test]
    fn audiences_match_modulo_trailing_slash() {
        let c = Client {
            client_id: "a".into(),
            object_id: "oid-a".into(),
            methods: vec![AuthMethod::TlsClientAuth],
            secret: None,
            certificates: Vec::new(),
            tls_subject: None,
            bound_tokens: true,
            audiences: vec!["https://api.example/".into()],
        };
        assert!(c.allows_audience("https://api.example"));
        assert!(!c.allows_audience("https://api.example.evil"));
    }
}
