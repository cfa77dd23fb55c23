//! Minting certificates: a development CA and self-signed client certificates (rcgen).
//!
//! ```
//! use certbound_core::ca::{DevCa, IssueSpec};
//! use certbound_core::{KeyKind, PrivateKey};
//! let ca = DevCa::generate("certbound dev CA").unwrap();
//! let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! let cert = ca.issue(&IssueSpec::client("my-app"), &key).unwrap();
//! assert_eq!(cert.issuer(), ca.cert().subject());
//! ```

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::cert::{Certificate, CertifiedKey};
use crate::error::{CertError, CertErrorKind};
use crate::key::{KeyKind, PrivateKey};

/// What to put in an issued certificate.
#[derive(Debug, Clone)]
pub struct IssueSpec {
    /// Subject common name.
    pub common_name: String,
    /// Extra subject attributes as `(OID-free name, value)`: only `"DC"` and `"O"` are used.
    pub extra_subject: Vec<(String, String)>,
    /// DNS names and IP addresses for the SAN extension.
    pub sans: Vec<String>,
    /// Extended key usage: client authentication.
    pub client_auth: bool,
    /// Extended key usage: server authentication.
    pub server_auth: bool,
    /// Lifetime, starting five minutes ago (to absorb clock skew).
    pub validity: Duration,
    /// An explicit validity window `(not_before, not_after)` in Unix seconds; overrides
    /// `validity` (for tests of expired or not-yet-valid certificates).
    pub window: Option<(i64, i64)>,
}

impl IssueSpec {
    /// A TLS client certificate valid for one year.
    pub fn client(cn: &str) -> Self {
        Self {
            common_name: cn.into(),
            extra_subject: Vec::new(),
            sans: Vec::new(),
            client_auth: true,
            server_auth: false,
            validity: Duration::from_secs(365 * 86400),
            window: None,
        }
    }
    /// A TLS server certificate for the given names, valid for one year.
    pub fn server(cn: &str, names: &[&str]) -> Self {
        Self {
            common_name: cn.into(),
            extra_subject: Vec::new(),
            sans: names.iter().map(|s| s.to_string()).collect(),
            client_auth: false,
            server_auth: true,
            validity: Duration::from_secs(365 * 86400),
            window: None,
        }
    }
    /// Sets the lifetime.
    pub fn valid_for(mut self, d: Duration) -> Self {
        self.validity = d;
        self
    }
    /// Sets an explicit validity window in Unix seconds.
    pub fn valid_between(mut self, not_before: i64, not_after: i64) -> Self {
        self.window = Some((not_before, not_after));
        self
    }

    fn params(&self) -> Result<CertificateParams, rcgen::Error> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        for (k, v) in &self.extra_subject {
            match k.as_str() {
                "DC" => dn.push(
                    DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                    v.as_str(),
                ),
                "O" => dn.push(DnType::OrganizationName, v.as_str()),
                _ => {}
            }
        }
        p.distinguished_name = dn;
        for name in &self.sans {
            if let Ok(ip) = name.parse::<IpAddr>() {
                p.subject_alt_names.push(SanType::IpAddress(ip));
            } else {
                p.subject_alt_names
                    .push(SanType::DnsName(name.as_str().try_into()?));
            }
        }
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + time::Duration::try_from(self.validity).unwrap_or(time::Duration::DAY);
        if let Some((nb, na)) = self.window {
            let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(now);
            p.not_before = at(nb);
            p.not_after = at(na);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if self.client_auth {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if self.server_auth {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        let mut serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut serial).map_err(|_| rcgen::Error::RingUnspecified)?;
        serial[0] &= 0x7f;
        p.serial_number = Some(serial.to_vec().into());
        Ok(p)
    }
}

/// A development certificate authority: issues TLS server and client certificates.
pub struct DevCa {
    cert: Certificate,
    key: PrivateKey,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("subject", &self.cert.subject())
            .finish_non_exhaustive()
    }
}

/// Key generation reports a plain message (no typed error underneath).
fn gen_msg(e: String) -> CertError {
    CertError::new("certificate generation", CertErrorKind::Generate(e, None))
}

fn gen_err(e: impl std::error::Error + Send + Sync + 'static) -> CertError {
    CertError::new(
        "certificate generation",
        CertErrorKind::Generate(e.to_string(), Some(Box::new(e))),
    )
}

fn rcgen_key(key: &PrivateKey) -> Result<KeyPair, CertError> {
    let der = key.to_pkcs8_der();
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice());
    let alg = match key.default_jws_algorithm() {
        crate::JwsAlgorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        crate::JwsAlgorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, alg).map_err(gen_err)
}

impl DevCa {
    /// Generates a new CA (P-256 key, 10 years).
    pub fn generate(name: &str) -> Result<Self, CertError> {
        let key = PrivateKey::generate(KeyKind::EcP256).map_err(gen_msg)?;
        let kp = rcgen_key(&key)?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(3650);
        let cert = p.self_signed(&kp).map_err(gen_err)?;
        let parsed = Certificate::from_der(cert.der().to_vec(), "CA")?;
        Ok(Self {
            cert: parsed,
            key,
            issuer: Issuer::new(p, kp),
        })
    }

    /// Loads a CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str, source: &str) -> Result<Self, CertError> {
        let cert = Certificate::all_from_pem(cert_pem.as_bytes(), source)?
            .into_iter()
            .next()
            .ok_or_else(|| CertError::new(source, CertErrorKind::NoCertificate))?;
        let key = PrivateKey::from_pem(key_pem.as_bytes())
            .map_err(|e| CertError::new(source, CertErrorKind::UnsupportedKey(e)))?
            .ok_or_else(|| CertError::new(source, CertErrorKind::NoPrivateKey))?;
        if key.public_key_bytes() != cert.public_key_bytes() {
            return Err(CertError::new(source, CertErrorKind::KeyMismatch));
        }
        let kp = rcgen_key(&key)?;
        let issuer = Issuer::from_ca_cert_der(cert.der(), kp).map_err(gen_err)?;
        Ok(Self { cert, key, issuer })
    }

    /// The CA certificate (the trust anchor to hand to clients).
    pub fn cert(&self) -> &Certificate {
        &self.cert
    }
    /// The CA key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Issues a certificate for `key`.
    pub fn issue(&self, spec: &IssueSpec, key: &PrivateKey) -> Result<Certificate, CertError> {
        let kp = rcgen_key(key)?;
        let params = spec.params().map_err(gen_err)?;
        let c = params.signed_by(&kp, &self.issuer).map_err(gen_err)?;
        Certificate::from_der(c.der().to_vec(), "issued certificate")
    }

    /// Issues a certificate for a bare public key (SubjectPublicKeyInfo DER), e.g. from a CSR.
    pub fn issue_for_spki(
        &self,
        spec: &IssueSpec,
        spki_der: &[u8],
    ) -> Result<Certificate, CertError> {
        let pk = rcgen::SubjectPublicKeyInfo::from_der(spki_der).map_err(gen_err)?;
        let params = spec.params().map_err(gen_err)?;
        let c = params.signed_by(&pk, &self.issuer).map_err(gen_err)?;
        Certificate::from_der(c.der().to_vec(), "issued certificate")
    }

    /// Generates a key and issues a certificate for it, returning a ready credential
    /// (leaf and CA certificate in the chain).
    pub fn issue_certified_key(
        &self,
        spec: &IssueSpec,
        kind: KeyKind,
    ) -> Result<CertifiedKey, CertError> {
        let key = PrivateKey::generate(kind).map_err(gen_msg)?;
        let leaf = self.issue(spec, &key)?;
        CertifiedKey::new(vec![leaf, self.cert.clone()], key, "issued certificate")
    }
}

/// Makes a self-signed certificate for `key` (the usual RFC 8705 client certificate).
pub fn self_signed(spec: &IssueSpec, key: &PrivateKey) -> Result<Certificate, CertError> {
    let kp = rcgen_key(key)?;
    let params = spec.params().map_err(gen_err)?;
    let c = params.self_signed(&kp).map_err(gen_err)?;
    Certificate::from_der(c.der().to_vec(), "self-signed certificate")
}

/// Generates a key and a self-signed certificate for it.
pub fn self_signed_certified_key(
    spec: &IssueSpec,
    kind: KeyKind,
) -> Result<CertifiedKey, CertError> {
    let key = PrivateKey::generate(kind).map_err(gen_msg)?;
    let cert = self_signed(spec, &key)?;
    CertifiedKey::new(vec![cert], key, "self-signed certificate")
}
