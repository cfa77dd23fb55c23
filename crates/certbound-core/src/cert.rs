//! X.509 certificates and certificate-with-key credentials.
//!
//! [`Certificate`] is a parsed leaf (subject, SANs, validity, thumbprints).
//! [`CertifiedKey`] is a certificate chain with its private key, loaded from PEM
//! (PKCS#8, PKCS#1, SEC1 keys), DER, PKCS#12/PFX or base64, and checked: the key must
//! belong to the leaf and the leaf must be within its validity period.
//!
//! ```no_run
//! use certbound_core::CertifiedKey;
//! let cred = CertifiedKey::load_path("app.pfx".as_ref(), Some("pfx password"))?;
//! println!("x5t#S256 = {}", cred.thumbprint());
//! # Ok::<(), certbound_core::CertError>(())
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::error::{CertError, CertErrorKind};
use crate::key::PrivateKey;
use crate::pem::pem_encode;
use crate::thumbprint::{Thumbprint, x5t_sha1};
use crate::{b64, now_unix};

/// A parsed X.509 certificate (kept with its DER bytes).
#[derive(Clone)]
pub struct Certificate {
    der: CertificateDer<'static>,
    thumbprint: Thumbprint,
    subject: String,
    issuer: String,
    sans: Vec<String>,
    not_before: i64,
    not_after: i64,
    spki_key: Vec<u8>,
    is_ca: bool,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("x5t#S256", &self.thumbprint.to_base64url())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl Certificate {
    /// Parses DER bytes. `source` names the input in errors.
    pub fn from_der(der: impl Into<Vec<u8>>, source: &str) -> Result<Self, CertError> {
        let der: Vec<u8> = der.into();
        let (rest, x) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
            CertError::new(
                source,
                CertErrorKind::X509(e.to_string(), Some(Box::new(e))),
            )
        })?;
        if !rest.is_empty() {
            return Err(CertError::new(
                source,
                CertErrorKind::X509("trailing bytes after the certificate".into(), None),
            ));
        }
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = x.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                    GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                    GeneralName::RFC822Name(m) => sans.push(format!("email:{m}")),
                    GeneralName::IPAddress(ip) => {
                        let text = match ip.len() {
                            4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                            16 => {
                                let mut a = [0u8; 16];
                                a.copy_from_slice(ip);
                                std::net::Ipv6Addr::from(a).to_string()
                            }
                            _ => continue,
                        };
                        sans.push(format!("IP:{text}"));
                    }
                    _ => {}
                }
            }
        }
        let is_ca = x
            .basic_constraints()
            .ok()
            .flatten()
            .map(|b| b.value.ca)
            .unwrap_or(false);
        let cert = Certificate {
            thumbprint: Thumbprint::of_der(&der),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            sans,
            not_before: x.validity().not_before.timestamp(),
            not_after: x.validity().not_after.timestamp(),
            spki_key: x.public_key().subject_public_key.data.to_vec(),
            is_ca,
            der: CertificateDer::from(der.clone()),
        };
        drop(x);
        Ok(cert)
    }

    /// Parses every `CERTIFICATE` block of PEM text, in order.
    pub fn all_from_pem(pem: &[u8], source: &str) -> Result<Vec<Self>, CertError> {
        let mut out = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            let der = item.map_err(|e| CertError::new(source, CertErrorKind::Pem(e)))?;
            out.push(Self::from_der(der.to_vec(), source)?);
        }
        Ok(out)
    }

    /// Reads a certificate (the first one) from a PEM or DER file.
    pub fn load_file(path: &Path) -> Result<Self, CertError> {
        let source = path.display().to_string();
        let bytes = read_input(path)?;
        if is_pem(&bytes) {
            Self::all_from_pem(&bytes, &source)?
                .into_iter()
                .next()
                .ok_or_else(|| CertError::new(&source, CertErrorKind::NoCertificate))
        } else {
            Self::from_der(bytes, &source)
        }
    }

    /// The DER bytes.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }
    /// `x5t#S256`: SHA-256 of the DER bytes.
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }
    /// Legacy `x5t` (SHA-1, base64url).
    pub fn x5t_sha1(&self) -> String {
        x5t_sha1(&self.der)
    }
    /// Subject distinguished name, RFC 4514 style (e.g. `CN=app`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// Issuer distinguished name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// Subject alternative names, typed: `DNS:…`, `IP:…`, `URI:…`, `email:…`.
    pub fn sans(&self) -> &[String] {
        &self.sans
    }
    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
    /// Whether the basic-constraints extension marks it as a CA.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
    /// Whether subject equals issuer (a self-issued certificate).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }
    /// The subjectPublicKey bit string (PKCS#1 for RSA, the point for EC).
    pub fn public_key_bytes(&self) -> &[u8] {
        &self.spki_key
    }
    /// PEM text of this certificate.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }
    /// Checks the validity period against `now` (Unix seconds).
    pub fn check_validity(&self, now: i64, source: &str) -> Result<(), CertError> {
        if now > self.not_after {
            return Err(CertError::new(
                source,
                CertErrorKind::Expired(fmt_unix(self.not_after)),
            ));
        }
        if now < self.not_before {
            return Err(CertError::new(
                source,
                CertErrorKind::NotYetValid(fmt_unix(self.not_before)),
            ));
        }
        Ok(())
    }
}

/// A certificate chain (leaf first) with the leaf's private key.
///
/// Cheap to clone (the key is shared). `Debug` shows the subject and thumbprint only.
#[derive(Clone)]
pub struct CertifiedKey {
    chain: Arc<[Certificate]>,
    key: Arc<PrivateKey>,
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("subject", &self.leaf().subject())
            .field("x5t#S256", &self.thumbprint().to_base64url())
            .field("key", &self.key.describe())
            .finish_non_exhaustive()
    }
}

impl CertifiedKey {
    /// Builds a credential from parts, checking the key matches the leaf and the leaf is
    /// currently valid.
    pub fn new(chain: Vec<Certificate>, key: PrivateKey, source: &str) -> Result<Self, CertError> {
        let Some(leaf) = chain.first() else {
            return Err(CertError::new(source, CertErrorKind::NoCertificate));
        };
        if leaf.public_key_bytes() != key.public_key_bytes() {
            return Err(CertError::new(source, CertErrorKind::KeyMismatch));
        }
        leaf.check_validity(now_unix(), source)?;
        Ok(Self {
            chain: chain.into(),
            key: Arc::new(key),
        })
    }

    /// Loads from a file: PKCS#12/PFX (by content or `.pfx`/`.p12` extension, with
    /// `password`), or PEM with the certificate and key in one file — or the key next to
    /// it as `<stem>.key` (what `certbound cert new` writes).
    pub fn load_path(path: &Path, password: Option<&str>) -> Result<Self, CertError> {
        let source = path.display().to_string();
        let bytes = read_input(path)?;
        if is_pem(&bytes) {
            let chain = Certificate::all_from_pem(&bytes, &source)?;
            let key = match PrivateKey::from_pem(&bytes)
                .map_err(|e| CertError::new(&source, CertErrorKind::UnsupportedKey(e)))?
            {
                Some(k) => k,
                None => {
                    let sibling = path.with_extension("key");
                    if sibling != path && sibling.is_file() {
                        let kb = read_input(&sibling)?;
                        let ks = sibling.display().to_string();
                        PrivateKey::from_pem(&kb)
                            .map_err(|e| CertError::new(&ks, CertErrorKind::UnsupportedKey(e)))?
                            .ok_or_else(|| CertError::new(&ks, CertErrorKind::NoPrivateKey))?
                    } else if chain.is_empty() {
                        return Err(CertError::new(&source, CertErrorKind::NoCertificate));
                    } else {
                        return Err(CertError::new(&source, CertErrorKind::NoPrivateKey));
                    }
                }
            };
            if chain.is_empty() {
                return Err(CertError::new(&source, CertErrorKind::NoCertificate));
            }
            return Self::new(chain, key, &source);
        }
        Self::from_binary(&bytes, password, &source)
    }

    /// Loads a PEM certificate file and a separate PEM key file.
    pub fn load_pem_files(cert: &Path, key: &Path) -> Result<Self, CertError> {
        let cs = cert.display().to_string();
        let ks = key.display().to_string();
        let chain = Certificate::all_from_pem(&read_input(cert)?, &cs)?;
        if chain.is_empty() {
            return Err(CertError::new(&cs, CertErrorKind::NoCertificate));
        }
        let key = PrivateKey::from_pem(&read_input(key)?)
            .map_err(|e| CertError::new(&ks, CertErrorKind::UnsupportedKey(e)))?
            .ok_or_else(|| CertError::new(&ks, CertErrorKind::NoPrivateKey))?;
        Self::new(chain, key, &cs)
    }

    /// Loads from base64 of a PFX (with `password`) or of PEM text.
    /// A base64 DER certificate alone is refused: it carries no private key.
    pub fn from_base64(
        value: &str,
        password: Option<&str>,
        source: &str,
    ) -> Result<Self, CertError> {
        if value.trim().is_empty() {
            return Err(CertError::new(source, CertErrorKind::Empty));
        }
        let bytes = b64::decode_std_lenient(value)
            .map_err(|e| CertError::new(source, CertErrorKind::Base64(e)))?;
        if is_pem(&bytes) {
            let chain = Certificate::all_from_pem(&bytes, source)?;
            let key = PrivateKey::from_pem(&bytes)
                .map_err(|e| CertError::new(source, CertErrorKind::UnsupportedKey(e)))?
                .ok_or_else(|| CertError::new(source, CertErrorKind::NoPrivateKey))?;
            return Self::new(chain, key, source);
        }
        Self::from_binary(&bytes, password, source)
    }

    /// PFX, or a DER certificate (refused: no key).
    fn from_binary(bytes: &[u8], password: Option<&str>, source: &str) -> Result<Self, CertError> {
        if bytes.is_empty() {
            return Err(CertError::new(source, CertErrorKind::Empty));
        }
        if x509_parser::parse_x509_certificate(bytes).is_ok() {
            // A bare DER certificate: valid, but useless as a credential.
            return Err(CertError::new(source, CertErrorKind::NoPrivateKey));
        }
        #[cfg(feature = "pkcs12")]
        {
            Self::from_pkcs12(bytes, password.unwrap_or(""), source)
        }
        #[cfg(not(feature = "pkcs12"))]
        {
            let _ = password;
            Err(CertError::new(source, CertErrorKind::Pkcs12Disabled))
        }
    }

    /// Opens PKCS#12/PFX bytes.
    #[cfg(feature = "pkcs12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs12")))]
    pub fn from_pkcs12(bytes: &[u8], password: &str, source: &str) -> Result<Self, CertError> {
        if bytes.is_empty() {
            return Err(CertError::new(source, CertErrorKind::Empty));
        }
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password)
            .map_err(|_| CertError::new(source, CertErrorKind::Pkcs12))?;
        let Some(bag) = archive.keys.first() else {
            return Err(CertError::new(source, CertErrorKind::Pkcs12NoKey));
        };
        let key = PrivateKey::from_der(bag.key.as_der())
            .map_err(|e| CertError::new(source, CertErrorKind::UnsupportedKey(e)))?;
        let mut certs = Vec::with_capacity(archive.certs.len());
        for c in &archive.certs {
            certs.push(Certificate::from_der(c.cert.as_der().to_vec(), source)?);
        }
        let Some(pos) = certs
            .iter()
            .position(|c| c.public_key_bytes() == key.public_key_bytes())
        else {
            return Err(CertError::new(
                source,
                if certs.is_empty() {
                    CertErrorKind::Pkcs12NoKey
                } else {
                    CertErrorKind::KeyMismatch
                },
            ));
        };
        let leaf = certs.remove(pos);
        let mut chain = vec![leaf];
        chain.extend(certs);
        Self::new(chain, key, source)
    }

    /// Writes this credential as a password-protected PKCS#12 (AES-256-CBC, PBKDF2/SHA-256).
    #[cfg(feature = "pkcs12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs12")))]
    pub fn to_pkcs12(&self, password: &str) -> Result<Vec<u8>, CertError> {
        let key = p12_keystore::PrivateKey::from_der(&self.key.to_pkcs8_der()).map_err(|e| {
            CertError::new(
                "pfx",
                CertErrorKind::Generate(e.to_string(), Some(Box::new(e))),
            )
        })?;
        let mut certs = Vec::new();
        for c in self.chain.iter() {
            certs.push(p12_keystore::Certificate::from_der(c.der()).map_err(|e| {
                CertError::new(
                    "pfx",
                    CertErrorKind::Generate(e.to_string(), Some(Box::new(e))),
                )
            })?);
        }
        let id = self.thumbprint().as_bytes()[..20].to_vec();
        let chain = p12_keystore::PrivateKeyChain::new(id, key, certs);
        let mut ks = p12_keystore::KeyStore::new();
        ks.add_entry(
            "certbound",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        ks.writer(password).write().map_err(|e| {
            CertError::new(
                "pfx",
                CertErrorKind::Generate(e.to_string(), Some(Box::new(e))),
            )
        })
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &Certificate {
        &self.chain[0]
    }
    /// The whole chain, leaf first.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }
    /// The private key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
    /// `x5t#S256` of the leaf.
    pub fn thumbprint(&self) -> Thumbprint {
        self.leaf().thumbprint()
    }
    /// The chain as rustls wants it.
    pub fn rustls_chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.iter().map(|c| c.der().clone()).collect()
    }
    /// `x5c`: standard base64 DER of each certificate, leaf first.
    pub fn x5c(&self) -> Vec<String> {
        self.chain
            .iter()
            .map(|c| b64::encode_std(c.der()))
            .collect()
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>, CertError> {
    let source = path.display().to_string();
    if path.is_dir() {
        return Err(CertError::new(&source, CertErrorKind::IsDirectory));
    }
    let bytes = std::fs::read(path).map_err(|e| CertError::new(&source, CertErrorKind::Io(e)))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(CertError::new(&source, CertErrorKind::Empty));
    }
    Ok(bytes)
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn fmt_unix(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
