//! A development PKI for tests: a fresh CA with a loopback server certificate, self-signed
//! client certificates, PEM files.

use std::path::{Path, PathBuf};

use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{Certificate, CertifiedKey, KeyKind};

/// A fresh development CA and a server certificate it issued for `localhost` (subject
/// alternative names `localhost` and `127.0.0.1`).
pub struct TestPki {
    /// The CA.
    pub ca: DevCa,
    /// The server's certificate and key (EC P-256).
    pub server: CertifiedKey,
}

impl TestPki {
    /// Generates the CA named `name` and issues the server certificate. Installs the
    /// process's default rustls crypto provider first.
    pub fn new(name: &str) -> Self {
        tls::install_default_provider();
        let ca = DevCa::generate(name).expect("generate a development CA");
        let server = ca
            .issue_certified_key(
                &IssueSpec::server("localhost", &["localhost", "127.0.0.1"]),
                KeyKind::EcP256,
            )
            .expect("issue a server certificate");
        Self { ca, server }
    }

    /// Trust anchors holding this CA only (no system roots).
    pub fn anchors(&self) -> TrustAnchors {
        only(self.ca.cert())
    }

    /// A rustls server configuration presenting the server certificate, asking for client
    /// certificates as `client_auth` says.
    pub fn server_config(&self, client_auth: ClientAuth) -> rustls::ServerConfig {
        tls::server_config(&self.server, client_auth).expect("server TLS configuration")
    }
}

/// Trust anchors holding `ca` only (no system roots).
pub fn only(ca: &Certificate) -> TrustAnchors {
    TrustAnchors {
        extra: vec![ca.der().clone()],
        system: false,
    }
}

/// A self-signed client certificate for `cn` (the usual RFC 8705
/// `self_signed_tls_client_auth` credential).
pub fn self_signed_client(cn: &str, kind: KeyKind) -> CertifiedKey {
    ca::self_signed_certified_key(&IssueSpec::client(cn), kind)
        .expect("a self-signed client certificate")
}

/// Writes the certificate and its PKCS#8 key, PEM, to `dir/NAME.pem` and returns the path.
pub fn write_pem(dir: &Path, name: &str, cert: &CertifiedKey) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(
        &path,
        format!(
            "{}{}",
            cert.leaf().to_pem(),
            cert.key().to_pkcs8_pem().as_str()
        ),
    )
    .expect("write the PEM file");
    path
}
