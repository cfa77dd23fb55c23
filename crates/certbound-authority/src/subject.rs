//! What a `tls_client_auth` client is registered with (RFC 8705 §2.1.2): exactly one of
//! a subject DN or one SAN entry (DNS name, URI, IP address, e-mail address), checked
//! when registered and matched against a CA-issued certificate.
//!
//! | registered | a certificate matches when |
//! |---|---|
//! | `tls_client_auth_subject_dn` | its subject equals the DN by RFC 5280 §7.1 ([`crate::dn`]) |
//! | `tls_client_auth_san_dns` | a `dNSName` SAN equals it, ASCII case-insensitively (no wildcard expansion) |
//! | `tls_client_auth_san_uri` | a `uniformResourceIdentifier` SAN equals it exactly |
//! | `tls_client_auth_san_ip` | an `iPAddress` SAN is the same address (`::1` = `0:0:0:0:0:0:0:1`) |
//! | `tls_client_auth_san_email` | an `rfc822Name` SAN has the same local part and the same domain, case-insensitively (RFC 5280 §7.5) |

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;

use crate::dn::DistinguishedName;

/// How a `tls_client_auth` client's certificate is recognised: one subject DN or one SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsClientAuthSubject {
    /// `tls_client_auth_subject_dn`: RFC 4514 text, e.g. `CN=app,O=Contoso,C=DE`.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`: a DNS name.
    SanDns(String),
    /// `tls_client_auth_san_uri`: a URI, e.g. `spiffe://example.org/app`.
    SanUri(String),
    /// `tls_client_auth_san_ip`: an IPv4 or IPv6 address.
    SanIp(String),
    /// `tls_client_auth_san_email`: an e-mail address.
    SanEmail(String),
}

impl TlsClientAuthSubject {
    /// The RFC 8705 client metadata name.
    pub fn metadata_name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => "tls_client_auth_subject_dn",
            Self::SanDns(_) => "tls_client_auth_san_dns",
            Self::SanUri(_) => "tls_client_auth_san_uri",
            Self::SanIp(_) => "tls_client_auth_san_ip",
            Self::SanEmail(_) => "tls_client_auth_san_email",
        }
    }

    /// The registered value as given.
    pub fn value(&self) -> &str {
        match self {
            Self::SubjectDn(v)
            | Self::SanDns(v)
            | Self::SanUri(v)
            | Self::SanIp(v)
            | Self::SanEmail(v) => v,
        }
    }
}

/// A checked, parsed registration value, ready to match certificates.
#[derive(Debug, Clone)]
pub(crate) enum SubjectMatcher {
    Dn(DistinguishedName),
    Dns(String),
    Uri(String),
    Ip(IpAddr),
    Email { local: String, domain: String },
}

impl SubjectMatcher {
    /// Checks and parses a registration value; the error names the problem.
    pub(crate) fn parse(subject: &TlsClientAuthSubject) -> Result<Self, String> {
        let name = subject.metadata_name();
        match subject {
            TlsClientAuthSubject::SubjectDn(text) => {
                let dn = DistinguishedName::parse(text).map_err(|e| format!("{name}: {e}"))?;
                if dn.is_empty() {
                    return Err(format!("{name}: the subject DN is empty"));
                }
                Ok(Self::Dn(dn))
            }
            TlsClientAuthSubject::SanDns(d) => {
                check_dns(d).map_err(|why| format!("{name}: {why}"))?;
                Ok(Self::Dns(d.to_ascii_lowercase()))
            }
            TlsClientAuthSubject::SanUri(u) => {
                check_uri(u).map_err(|why| format!("{name}: {why}"))?;
                Ok(Self::Uri(u.clone()))
            }
            TlsClientAuthSubject::SanIp(ip) => ip
                .trim()
                .parse::<IpAddr>()
                .map(Self::Ip)
                .map_err(|_| format!("{name}: not an IPv4 or IPv6 address")),
            TlsClientAuthSubject::SanEmail(e) => {
                let (local, domain) = e
                    .rsplit_once('@')
                    .ok_or_else(|| format!("{name}: an e-mail address needs `@`"))?;
                if local.is_empty()
                    || local.len() > 64
                    || local.contains('@')
                    || !local.bytes().all(|c| c.is_ascii_graphic())
                {
                    return Err(format!(
                        "{name}: the local part must be 1 to 64 printable ASCII characters without `@` or spaces"
                    ));
                }
                check_dns(domain).map_err(|why| format!("{name}: domain: {why}"))?;
                Ok(Self::Email {
                    local: local.to_owned(),
                    domain: domain.to_ascii_lowercase(),
                })
            }
        }
    }

    /// The value in its stored form: the DN in RFC 4514 form, a lower-case DNS name or
    /// e-mail domain, the canonical text of an IP address.
    pub(crate) fn canonical(&self) -> String {
        match self {
            Self::Dn(dn) => dn.to_string(),
            Self::Dns(d) => d.clone(),
            Self::Uri(u) => u.clone(),
            Self::Ip(ip) => ip.to_string(),
            Self::Email { local, domain } => format!("{local}@{domain}"),
        }
    }

    /// Whether the certificate's subject or SANs match (its issuer is checked elsewhere).
    pub(crate) fn matches(&self, cert: &x509_parser::certificate::X509Certificate<'_>) -> bool {
        if let Self::Dn(dn) = self {
            return dn.matches(&DistinguishedName::from_x509(cert.subject()));
        }
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        san.value.general_names.iter().any(|g| match (self, g) {
            (Self::Dns(d), GeneralName::DNSName(n)) => n.eq_ignore_ascii_case(d),
            (Self::Uri(u), GeneralName::URI(n)) => n == u,
            (Self::Ip(ip), GeneralName::IPAddress(bytes)) => ip_from_bytes(bytes) == Some(*ip),
            (Self::Email { local, domain }, GeneralName::RFC822Name(n)) => n
                .rsplit_once('@')
                .is_some_and(|(l, d)| l == local && d.eq_ignore_ascii_case(domain)),
            _ => false,
        })
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A DNS name: LDH labels of 1 to 63 characters, at most 253 in all; no wildcard.
fn check_dns(d: &str) -> Result<(), &'static str> {
    if d.is_empty() || d.len() > 253 {
        return Err("a DNS name is 1 to 253 characters");
    }
    if d.contains('*') {
        return Err("wildcards are not matched; register the exact DNS name");
    }
    for label in d.split('.') {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > 63
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            || b.first() == Some(&b'-')
            || b.last() == Some(&b'-')
        {
            return Err(
                "not a DNS name (labels of letters, digits and inner `-`, separated by `.`)",
            );
        }
    }
    Ok(())
}

/// A URI: a scheme (RFC 3986 §3.1), `:`, then printable ASCII without spaces.
fn check_uri(u: &str) -> Result<(), &'static str> {
    if u.len() > 2048 || !u.bytes().all(|c| c.is_ascii_graphic()) {
        return Err("a URI is at most 2048 printable ASCII characters without spaces");
    }
    let Some((scheme, rest)) = u.split_once(':') else {
        return Err("a URI starts with a scheme and `:` (e.g. spiffe://example.org/app)");
    };
    let s = scheme.as_bytes();
    if rest.is_empty()
        || !s.first().is_some_and(u8::is_ascii_alphabetic)
        || !s
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err("a URI starts with a scheme and `:` (e.g. spiffe://example.org/app)");
    }
    Ok(())
}

/// Checks that `cert` was issued (signed) by `ca`.
pub(crate) fn verify_issued_by(
    cert: &certbound_core::Certificate,
    ca: &certbound_core::Certificate,
) -> Result<(), String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| e.to_string())?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca.der()).map_err(|e| e.to_string())?;
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err("its issuer is not the authority's CA".into());
    }
    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|_| "its signature does not verify with the authority's CA key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: TlsClientAuthSubject) -> Result<SubjectMatcher, String> {
        SubjectMatcher::parse(&s)
    }

    #[test]
    fn values_are_checked_and_canonical() {
        use TlsClientAuthSubject::*;
        assert_eq!(
            parse(SanIp("0:0:0:0:0:0:0:1".into())).unwrap().canonical(),
            "::1"
        );
        assert_eq!(
            parse(SanDns("App.Example".into())).unwrap().canonical(),
            "app.example"
        );
        assert_eq!(
            parse(SanEmail("Ops@Example.ORG".into()))
                .unwrap()
                .canonical(),
            "Ops@example.org"
        );
        assert_eq!(
            parse(SubjectDn("cn=app, o=Contoso".into()))
                .unwrap()
                .canonical(),
            "CN=app,O=Contoso"
        );
        for bad in [
            SanDns("*.example".into()),
            SanDns("a..b".into()),
            SanDns("-a.b".into()),
            SanDns("".into()),
            SanUri("no-scheme".into()),
            SanUri("spiffe://a b".into()),
            SanIp("1.2.3".into()),
            SanEmail("nobody".into()),
            SanEmail("a b@example.org".into()),
            SubjectDn("".into()),
            SubjectDn("CN=a;b".into()),
        ] {
            let name = bad.metadata_name();
            let e = parse(bad).expect_err(name);
            assert!(e.starts_with(name), "{e}");
        }
    }
}
