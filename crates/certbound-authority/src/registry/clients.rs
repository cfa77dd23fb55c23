//! The registered clients as the token endpoint reads them: one immutable snapshot.

use super::*;

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
    pub(super) fn from_record(rec: &ClientRecord, tenant: &str) -> Result<Self, String> {
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
pub(super) fn derived_object_id(tenant: &str, client_id: &str) -> String {
    certbound_core::derived_guid(&[
        b"certbound-client-object\0",
        tenant.as_bytes(),
        b"\0",
        client_id.as_bytes(),
    ])
}

/// The clients currently registered.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    pub(super) by_id: HashMap<String, Arc<Client>>,
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
