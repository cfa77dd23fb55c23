//! What the state file stores of a client: hashed secrets, the registered certificate or
//! subject, and building a record from a registration.

use super::*;

/// A stored secret hash.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SecretHash {
    pub(super) alg: String,
    pub(super) iterations: u32,
    pub(super) salt: String,
    pub(super) hash: String,
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl SecretHash {
    pub(super) fn new(secret: &str) -> Self {
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
    pub(super) client_id: String,
    pub(super) token_endpoint_auth_method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) token_endpoint_auth_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) client_secret_hash: Option<SecretHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) jwks: Option<Jwks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls_client_auth_subject_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls_client_auth_san_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls_client_auth_san_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls_client_auth_san_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tls_client_auth_san_email: Option<String>,
    #[serde(default = "yes")]
    pub(super) tls_client_certificate_bound_access_tokens: bool,
    #[serde(default)]
    pub(super) audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) object_id: Option<String>,
}

pub(super) fn yes() -> bool {
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
        crate::layout::check_tenant(&f.tenant)
            .map_err(|e| AuthorityError::state(path, e.to_string()))?;
        Ok(f)
    }
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, AuthorityError> {
        let mut v = serde_json::to_vec_pretty(self).map_err(AuthorityError::Encode)?;
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
                        crate::subject::verify_issued_by(certificate, ca).map_err(|why| {
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
pub(super) fn jwk_for_certificate(cert: &Certificate) -> Result<Jwk, String> {
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
