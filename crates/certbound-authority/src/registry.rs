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

use crate::client_auth::AuthMethod;
use crate::error::AuthorityError;
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

/// A stored secret hash.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SecretHash {
    alg: String,
    iterations: u32,
    salt: String,
    hash: String,
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl SecretHash {
    fn new(secret: &str) -> Self {
        let mut salt = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut salt);
        let mut out = [0u8; 32];
        let iters = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iters,
            &salt,
            secret.as_bytes(),
            &mut out,
        );
        Self {
            alg: "pbkdf2-sha256".into(),
            iterations: PBKDF2_ITERATIONS,
            salt: b64::encode(salt),
            hash: b64::encode(out),
        }
    }

    /// Constant-time check of `secret` against the hash.
    pub(crate) fn verify(&self, secret: &str) -> bool {
        let (Ok(salt), Ok(hash), Some(iters)) = (
            b64::decode(&self.salt),
            b64::decode(&self.hash),
            NonZeroU32::new(self.iterations),
        ) else {
            return false;
        };
        self.alg == "pbkdf2-sha256"
            && aws_lc_rs::pbkdf2::verify(
                aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                iters,
                &salt,
                secret.as_bytes(),
                &hash,
            )
            .is_ok()
    }
}

/// One client as stored in `authority.json` (names follow RFC 7591/8705 client metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
///
/// `token_endpoint_auth_method` holds the first registered method, for RFC 7591 readers;
/// `token_endpoint_auth_methods` all of them. Files written before the list existed have
/// only the single value (and for `tls_client_auth` a subject DN in the old display form,
/// RDNs first to last, which is read as such).
pub(crate) struct ClientRecord {
    client_id: String,
    token_endpoint_auth_method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    token_endpoint_auth_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret_hash: Option<SecretHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks: Option<Jwks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_client_auth_subject_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_email: Option<String>,
    #[serde(default = "yes")]
    tls_client_certificate_bound_access_tokens: bool,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// The content of `authority.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateFile {
    pub version: u32,
    pub tenant: String,
    pub signing_alg: JwsAlgorithm,
    #[serde(default)]
    pub clients: Vec<ClientRecord>,
}

impl StateFile {
    pub(crate) fn new(tenant: String, signing_alg: JwsAlgorithm) -> Self {
        Self {
            version: 1,
            tenant,
            signing_alg,
            clients: Vec::new(),
        }
    }
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Self, AuthorityError> {
        let f: StateFile = serde_json::from_slice(bytes).map_err(|e| {
            AuthorityError::state(
                path,
                format!("is not a valid registry file ({e}); fix it or move it away"),
            )
        })?;
        if f.version != 1 {
            return Err(AuthorityError::state(
                path,
                format!("has version {}, this certbound reads version 1", f.version),
            ));
        }
        crate::state::check_tenant(&f.tenant)
            .map_err(|e| AuthorityError::state(path, e.to_string()))?;
        Ok(f)
    }
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, AuthorityError> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| AuthorityError::Options(format!("cannot encode the registry: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Adds or replaces a client.
    pub(crate) fn upsert(&mut self, rec: ClientRecord) {
        self.clients.retain(|c| c.client_id != rec.client_id);
        self.clients.push(rec);
    }
}

/// Builds the stored record, checking the registration against the development CA.
pub(crate) fn record_for(
    reg: &ClientRegistration,
    ca: &Certificate,
) -> Result<ClientRecord, AuthorityError> {
    check_client_id(&reg.client_id)?;
    for a in &reg.audiences {
        if a.is_empty() || a.len() > 1024 || a.chars().any(|c| c.is_control() || c == ' ') {
            return Err(AuthorityError::registration(
                &reg.client_id,
                "audiences must be non-empty, without spaces or control characters",
            ));
        }
    }
    if let Some(oid) = &reg.object_id
        && (oid.is_empty() || oid.len() > 256 || oid.chars().any(|c| c.is_control() || c == ' '))
    {
        return Err(AuthorityError::registration(
            &reg.client_id,
            "the object id must be 1 to 256 characters without spaces or control characters",
        ));
    }
    let fail = |problem: String| AuthorityError::registration(&reg.client_id, problem);
    let mut rec = ClientRecord {
        object_id: reg.object_id.clone(),
        client_id: reg.client_id.clone(),
        token_endpoint_auth_method: String::new(),
        token_endpoint_auth_methods: Vec::new(),
        client_secret_hash: None,
        jwks: None,
        tls_client_auth_subject_dn: None,
        tls_client_auth_san_dns: None,
        tls_client_auth_san_uri: None,
        tls_client_auth_san_ip: None,
        tls_client_auth_san_email: None,
        tls_client_certificate_bound_access_tokens: reg.bound_tokens,
        audiences: reg.audiences.clone(),
    };
    let mut methods: Vec<AuthMethod> = match &reg.credential {
        Credential::Secret(_) if reg.auth_methods.is_empty() => {
            vec![AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic]
        }
        Credential::Secret(_) => Vec::new(),
        Credential::Certificate { method, .. } => vec![AuthMethod::from(*method)],
        Credential::TlsClientAuth(_) => vec![AuthMethod::TlsClientAuth],
    };
    for m in &reg.auth_methods {
        if !methods.contains(m) {
            methods.push(*m);
        }
    }
    let names = |ms: &[AuthMethod]| ms.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    let mut subject: Option<TlsClientAuthSubject> = None;
    match &reg.credential {
        Credential::Secret(s) => {
            if s.expose().len() < 8 || s.expose().len() > 1024 {
                return Err(fail(
                    "client secrets must be 8 to 1024 characters long".into(),
                ));
            }
            if methods.iter().any(|m| !m.is_secret()) {
                return Err(fail(format!(
                    "a client secret authenticates only by client_secret_basic or client_secret_post, not {}; register a certificate for the others",
                    names(&methods)
                )));
            }
            if reg.tls_subject.is_some() {
                return Err(fail(
                    "a tls_client_auth subject needs --auth tls_client_auth, not a client secret"
                        .into(),
                ));
            }
            rec.client_secret_hash = Some(SecretHash::new(s.expose()));
        }
        Credential::Certificate { certificate, .. } => {
            certificate
                .check_validity(certbound_core::now_unix(), "the client certificate")
                .map_err(|e| fail(e.to_string()))?;
            if methods.iter().any(|m| m.is_secret()) {
                return Err(fail(format!(
                    "client_secret_basic and client_secret_post need a client secret, not a certificate (asked for {})",
                    names(&methods)
                )));
            }
            if methods.contains(&AuthMethod::TlsClientAuth) {
                subject = match &reg.tls_subject {
                    Some(s) => Some(s.clone()),
                    None => {
                        crate::client_auth::verify_issued_by(certificate, ca).map_err(|why| {
                            fail(format!(
                                "tls_client_auth needs a certificate issued by the authority's CA ({why}); make one with `certbound cert new --ca-dir DIR`, or register with --auth self_signed_tls_client_auth"
                            ))
                        })?;
                        Some(TlsClientAuthSubject::SubjectDn(
                            subject_dn_of(certificate)
                                .map_err(|e| fail(format!("unusable certificate: {e}")))?,
                        ))
                    }
                };
            } else if reg.tls_subject.is_some() {
                return Err(fail(
                    "a tls_client_auth subject DN or SAN was given but tls_client_auth is not among the registered methods".into(),
                ));
            }
            let mut jwk = jwk_for_certificate(certificate)
                .map_err(|e| fail(format!("unusable certificate: {e}")))?;
            jwk.x5c = Some(vec![b64::encode_std(certificate.der())]);
            jwk.x5t_s256 = Some(certificate.thumbprint().to_base64url());
            jwk.kid = Some(certificate.thumbprint().to_base64url());
            rec.jwks = Some(Jwks { keys: vec![jwk] });
        }
        Credential::TlsClientAuth(s) => {
            if let Some(other) = methods.iter().find(|m| **m != AuthMethod::TlsClientAuth) {
                return Err(fail(format!(
                    "{} needs a registered {}; a subject DN or SAN alone registers tls_client_auth only",
                    other.as_str(),
                    if other.is_secret() {
                        "client secret"
                    } else {
                        "certificate"
                    }
                )));
            }
            if reg.tls_subject.is_some() {
                return Err(fail(
                    "give the tls_client_auth subject once (exactly one subject DN or SAN, RFC 8705 §2.1.2)".into(),
                ));
            }
            subject = Some(s.clone());
        }
    }
    if let Some(s) = &subject {
        let canonical = SubjectMatcher::parse(s).map_err(fail)?.canonical();
        match s {
            TlsClientAuthSubject::SubjectDn(_) => rec.tls_client_auth_subject_dn = Some(canonical),
            TlsClientAuthSubject::SanDns(_) => rec.tls_client_auth_san_dns = Some(canonical),
            TlsClientAuthSubject::SanUri(_) => rec.tls_client_auth_san_uri = Some(canonical),
            TlsClientAuthSubject::SanIp(_) => rec.tls_client_auth_san_ip = Some(canonical),
            TlsClientAuthSubject::SanEmail(_) => rec.tls_client_auth_san_email = Some(canonical),
        }
    }
    rec.token_endpoint_auth_method = methods
        .first()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    rec.token_endpoint_auth_methods = methods.iter().map(|m| m.as_str().to_owned()).collect();
    Ok(rec)
}

/// A certificate's subject DN in RFC 4514 form, from its DER.
pub(crate) fn subject_dn_of(cert: &Certificate) -> Result<String, String> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| e.to_string())?;
    Ok(crate::dn::DistinguishedName::from_x509(x.subject()).to_string())
}

impl ClientRecord {
    /// The stored `tls_client_auth` subject, if any: `(metadata name, value)`.
    pub(crate) fn tls_subject(&self) -> Option<(&'static str, &str)> {
        [
            (
                "tls_client_auth_subject_dn",
                &self.tls_client_auth_subject_dn,
            ),
            ("tls_client_auth_san_dns", &self.tls_client_auth_san_dns),
            ("tls_client_auth_san_uri", &self.tls_client_auth_san_uri),
            ("tls_client_auth_san_ip", &self.tls_client_auth_san_ip),
            ("tls_client_auth_san_email", &self.tls_client_auth_san_email),
        ]
        .into_iter()
        .find_map(|(n, v)| v.as_deref().map(|v| (n, v)))
    }
}

/// The public JWK of a certificate's key.
fn jwk_for_certificate(cert: &Certificate) -> Result<Jwk, String> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| e.to_string())?;
    use x509_parser::public_key::PublicKey;
    let strip = |b: &[u8]| -> Vec<u8> {
        let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        b[i..].to_vec()
    };
    match x.public_key().parsed().map_err(|e| e.to_string())? {
        PublicKey::RSA(rsa) => Ok(Jwk::rsa(
            b64::encode(strip(rsa.modulus)),
            b64::encode(strip(rsa.exponent)),
        )),
        PublicKey::EC(point) => {
            let key = point.data();
            let n = key.len().saturating_sub(1) / 2;
            let crv = match n {
                32 => "P-256",
                48 => "P-384",
                _ => return Err("unsupported EC curve (P-256 or P-384 expected)".into()),
            };
            if key.first() != Some(&4) {
                return Err("compressed EC points are not supported".into());
            }
            Ok(Jwk::ec(
                crv,
                b64::encode(&key[1..1 + n]),
                b64::encode(&key[1 + n..]),
            ))
        }
        _ => Err("unsupported public key type (RSA, P-256 or P-384 expected)".into()),
    }
}

/// A client as the token endpoint sees it.
#[derive(Debug)]
pub(crate) struct Client {
    pub client_id: String,
    /// The `oid` claim of its tokens.
    pub object_id: String,
    /// The methods it may authenticate by (never empty).
    pub methods: Vec<AuthMethod>,
    /// For `client_secret_basic` / `client_secret_post`.
    pub secret: Option<SecretHash>,
    /// For `self_signed_tls_client_auth` / `private_key_jwt`: the registered certificates.
    pub certificates: Vec<Certificate>,
    /// For `tls_client_auth`: the subject DN or SAN of CA-issued certificates.
    pub tls_subject: Option<SubjectMatcher>,
    pub bound_tokens: bool,
    pub audiences: Vec<String>,
}

impl Client {
    fn from_record(rec: &ClientRecord, tenant: &str) -> Result<Self, String> {
        // Files written before the method list: one method; a secret client then
        // accepted both secret methods, and still does.
        let legacy = rec.token_endpoint_auth_methods.is_empty();
        let mut methods = Vec::new();
        if legacy {
            let m: AuthMethod = rec.token_endpoint_auth_method.parse()?;
            if m.is_secret() {
                methods = vec![AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic];
            } else {
                methods.push(m);
            }
        } else {
            for name in &rec.token_endpoint_auth_methods {
                let m: AuthMethod = name.parse()?;
                if !methods.contains(&m) {
                    methods.push(m);
                }
            }
        }
        if methods.iter().any(|m| m.is_secret()) && methods.iter().any(|m| !m.is_secret()) {
            return Err("token_endpoint_auth_methods mixes secret and certificate methods".into());
        }
        let secret = if methods.iter().any(|m| m.is_secret()) {
            Some(
                rec.client_secret_hash
                    .clone()
                    .ok_or("client_secret_hash is missing")?,
            )
        } else {
            None
        };
        let mut certificates = Vec::new();
        if methods.contains(&AuthMethod::SelfSignedTlsClientAuth)
            || methods.contains(&AuthMethod::PrivateKeyJwt)
        {
            for k in rec.jwks.iter().flat_map(|j| j.keys.iter()) {
                for c in k.x5c.iter().flat_map(|v| v.first()) {
                    let der = b64::decode_std_lenient(c).map_err(|e| e.to_string())?;
                    certificates.push(
                        Certificate::from_der(der, "registered certificate")
                            .map_err(|e| e.to_string())?,
                    );
                }
            }
            if certificates.is_empty() {
                return Err("no certificate in jwks[].x5c".into());
            }
        }
        let tls_subject = if methods.contains(&AuthMethod::TlsClientAuth) {
            let given = [
                rec.tls_client_auth_subject_dn.is_some(),
                rec.tls_client_auth_san_dns.is_some(),
                rec.tls_client_auth_san_uri.is_some(),
                rec.tls_client_auth_san_ip.is_some(),
                rec.tls_client_auth_san_email.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if given != 1 {
                return Err("tls_client_auth needs exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email".into());
            }
            let subject = match rec.tls_subject() {
                Some(("tls_client_auth_subject_dn", v)) => {
                    TlsClientAuthSubject::SubjectDn(v.into())
                }
                Some(("tls_client_auth_san_dns", v)) => TlsClientAuthSubject::SanDns(v.into()),
                Some(("tls_client_auth_san_uri", v)) => TlsClientAuthSubject::SanUri(v.into()),
                Some(("tls_client_auth_san_ip", v)) => TlsClientAuthSubject::SanIp(v.into()),
                Some((_, v)) => TlsClientAuthSubject::SanEmail(v.into()),
                None => return Err("tls_client_auth subject is missing".into()),
            };
            let mut m = SubjectMatcher::parse(&subject)?;
            if legacy && let SubjectMatcher::Dn(dn) = &mut m {
                // The old files stored the certificate's display string, RDNs in
                // RDNSequence order rather than RFC 4514's reverse order.
                dn.reverse();
            }
            Some(m)
        } else {
            None
        };
        Ok(Self {
            object_id: rec
                .object_id
                .clone()
                .unwrap_or_else(|| derived_object_id(tenant, &rec.client_id)),
            client_id: rec.client_id.clone(),
            methods,
            secret,
            certificates,
            tls_subject,
            bound_tokens: rec.tls_client_certificate_bound_access_tokens,
            audiences: rec.audiences.clone(),
        })
    }

    /// Whether the client was registered for `method`.
    pub(crate) fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }

    /// The registered methods, for error descriptions (`private_key_jwt, tls_client_auth`).
    pub(crate) fn methods_text(&self) -> String {
        self.methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the client may request tokens for `aud` (exact, ignoring one trailing `/`).
    pub(crate) fn allows_audience(&self, aud: &str) -> bool {
        let norm = |s: &str| s.strip_suffix('/').unwrap_or(s).to_owned();
        self.audiences.is_empty() || self.audiences.iter().any(|a| norm(a) == norm(aud))
    }

    /// Thumbprints of the registered certificates.
    pub(crate) fn thumbprints(&self) -> impl Iterator<Item = (Thumbprint, &Certificate)> {
        self.certificates.iter().map(|c| (c.thumbprint(), c))
    }
}

/// A stable GUID-shaped object id for a client without one: SHA-256 of the tenant and
/// client id (so it survives restarts and differs between tenants and clients).
fn derived_object_id(tenant: &str, client_id: &str) -> String {
    certbound_core::id::derived_guid(&[
        b"certbound-client-object\0",
        tenant.as_bytes(),
        b"\0",
        client_id.as_bytes(),
    ])
}

/// The clients currently registered.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    by_id: HashMap<String, Arc<Client>>,
}

impl Clients {
    pub(crate) fn from_file(f: &StateFile) -> Self {
        let mut by_id = HashMap::new();
        for rec in &f.clients {
            match Client::from_record(rec, &f.tenant) {
                Ok(c) => {
                    by_id.insert(c.client_id.clone(), Arc::new(c));
                }
                Err(e) => {
                    tracing::warn!(client_id = %rec.client_id, problem = %e, "ignoring an unusable registration")
                }
            }
        }
        Self { by_id }
    }
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.by_id.get(id).cloned()
    }
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// What identifies a version of the registry file: rename-into-place changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino,
    })
}

/// The registry as the running authority holds it, re-read when the file changes.
#[derive(Debug)]
pub(crate) struct Registry {
    path: PathBuf,
    current: RwLock<(Option<Stamp>, Arc<Clients>)>,
    /// Serialises read-modify-write of the file within this process.
    write_lock: Mutex<()>,
}

impl Registry {
    pub(crate) fn new(path: PathBuf, file: &StateFile) -> Self {
        let st = stamp(&path);
        Self {
            path,
            current: RwLock::new((st, Arc::new(Clients::from_file(file)))),
            write_lock: Mutex::new(()),
        }
    }

    /// The current clients, re-reading the file first when it changed since last time
    /// (one `stat` per call). An unreadable or invalid file keeps the previous registry.
    pub(crate) fn clients(&self) -> Arc<Clients> {
        let now = stamp(&self.path);
        if let Ok(cur) = self.current.read()
            && cur.0 == now
        {
            return cur.1.clone();
        }
        let loaded = std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|b| StateFile::parse(&b, &self.path).map_err(|e| e.to_string()));
        match loaded {
            Ok(f) => {
                let clients = Arc::new(Clients::from_file(&f));
                tracing::info!(clients = clients.len(), "registry reloaded");
                if let Ok(mut cur) = self.current.write() {
                    *cur = (now, clients.clone());
                }
                clients
            }
            Err(e) => {
                tracing::warn!(problem = %e, "cannot reload the registry; keeping the previous one");
                match self.current.write() {
                    Ok(mut cur) => {
                        cur.0 = now;
                        cur.1.clone()
                    }
                    Err(p) => p.into_inner().1.clone(),
                }
            }
        }
    }

    /// Adds or replaces a client in the file and in memory.
    pub(crate) fn register(&self, rec: ClientRecord) -> Result<(), AuthorityError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        upsert_in_file(&self.path, rec)?;
        // Next `clients()` sees the new stamp and reloads.
        let _ = self.clients();
        Ok(())
    }
}

/// Read-modify-write of the registry file (atomic replace), under an exclusive advisory
/// lock on `<file>.lock` so concurrent registrations — from this process, a running
/// `authority serve`, or several `authority register` commands — never lose one another's
/// entries. (The lock is released when the file handle drops, also on error or panic.)
pub(crate) fn upsert_in_file(path: &Path, rec: ClientRecord) -> Result<(), AuthorityError> {
    let lock_path = lock_path_for(path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| AuthorityError::io(&lock_path, "open the registry lock file", e))?;
    lock.lock()
        .map_err(|e| AuthorityError::io(&lock_path, "lock", e))?;
    let bytes = std::fs::read(path).map_err(|e| AuthorityError::io(path, "read", e))?;
    let mut f = StateFile::parse(&bytes, path)?;
    f.upsert(rec);
    let written = crate::state::write_atomic(path, &f.to_json()?, true);
    drop(lock);
    written
}

/// `authority.json` → `authority.json.lock` (next to it).
fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

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
