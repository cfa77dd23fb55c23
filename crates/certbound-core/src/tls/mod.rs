//! rustls building blocks shared by the client, the resource server and the authority.
//!
//! All configurations use the **aws-lc-rs** provider explicitly, so certbound never
//! depends on a process-wide default (and never pulls in `ring`).
//!
//! The server side *requests* a client certificate without requiring a CA chain:
//! RFC 8705 self-signed client certificates are normal, and what matters is that the
//! peer proved possession of the key (rustls still verifies the handshake signature).
//! Who the certificate belongs to is decided above TLS — by the authority's client
//! registry, or by the resource server comparing its thumbprint with the token's `cnf`.

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::cert::{Certificate, CertifiedKey};
use crate::error::{CertError, CertErrorKind};

/// The aws-lc-rs crypto provider, shared.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// Installs aws-lc-rs as the process default provider (call first thing in `main`).
/// Harmless when one is already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Whether a TLS server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Never ask.
    None,
    /// Ask; the handshake succeeds without one (the application decides).
    Optional,
    /// Ask and refuse the handshake without one.
    Required,
}

/// Accepts any client certificate chain after the handshake signature is verified.
#[derive(Debug)]
pub struct AnyClientCert {
    algs: WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl AnyClientCert {
    /// A verifier; `mandatory` refuses handshakes without a certificate.
    pub fn new(mandatory: bool) -> Self {
        Self {
            algs: provider().signature_verification_algorithms,
            mandatory,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // It must at least be a parseable X.509 certificate; trust is decided later.
        x509_parser::parse_x509_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A rustls server configuration (ALPN `h2`, `http/1.1`) for `identity`.
pub fn server_config(
    identity: &CertifiedKey,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert::new(false)))
        }
        ClientAuth::Required => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert::new(true)))
        }
    };
    let mut cfg = builder.with_single_cert(identity.rustls_chain(), identity.key().to_rustls())?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Which server certificates a client trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// Extra anchors (`--ca-cert`, the development authority's `ca.pem`).
    pub extra: Vec<CertificateDer<'static>>,
    /// Also trust the platform's roots (honours `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    pub system: bool,
}

impl TrustAnchors {
    /// System roots plus nothing else.
    pub fn system() -> Self {
        Self {
            extra: Vec::new(),
            system: true,
        }
    }
    /// Adds the certificates of a PEM file as anchors.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), CertError> {
        let source = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| CertError::new(&source, CertErrorKind::Io(e)))?;
        let certs = Certificate::all_from_pem(&bytes, &source)?;
        if certs.is_empty() {
            return Err(CertError::new(&source, CertErrorKind::NoCertificate));
        }
        self.extra
            .extend(certs.into_iter().map(|c| c.der().clone()));
        Ok(())
    }
    /// Adds one anchor.
    pub fn add(&mut self, cert: &Certificate) {
        self.extra.push(cert.der().clone());
    }

    /// Builds the rustls root store.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        if self.system {
            let loaded = rustls_native_certs::load_native_certs();
            if !loaded.errors.is_empty() {
                tracing::debug!(
                    errors = loaded.errors.len(),
                    "some system roots could not be loaded"
                );
            }
            let (_ok, _bad) = roots.add_parsable_certificates(loaded.certs);
        }
        let (_ok, bad) = roots.add_parsable_certificates(self.extra.iter().cloned());
        if bad > 0 {
            tracing::warn!(
                bad,
                "ignored trust anchors that are not valid CA certificates"
            );
        }
        roots
    }
}

/// A rustls client configuration trusting `anchors`, presenting `identity` when given
/// (mutual TLS). ALPN offers `h2` and `http/1.1`.
pub fn client_config(
    anchors: &TrustAnchors,
    identity: Option<&CertifiedKey>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(anchors.root_store());
    let mut cfg = match identity {
        Some(id) => builder.with_client_auth_cert(id.rustls_chain(), id.key().to_rustls())?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Rewrites the text of a failed TLS connection whose server certificate was refused
/// (rustls' `invalid peer certificate: …`, a debug rendering such as
/// `UnsupportedSignatureAlgorithmForPublicKeyContext { signature_algorithm_id: [6, 8, …] }`)
/// into one sentence that names the reason and the fix. `None` when `text` is no such error.
///
/// Everything before `invalid peer certificate` is kept (`cannot connect: client error
/// (Connect): `); the rustls rendering after it is replaced.
pub fn explain_untrusted_server(text: &str) -> Option<String> {
    const MARK: &str = "invalid peer certificate";
    let (before, after) = text.split_once(MARK)?;
    let after = after.trim_start_matches([':', ' ']);
    let variant: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let reason = match variant.as_str() {
        "NotValidForName" | "NotValidForNameContext" => {
            return Some(format!(
                "{before}the server's TLS certificate is not issued for this host name: call it \
                 by a name the certificate lists (e.g. 127.0.0.1 or localhost), or issue one with \
                 `certbound cert new --server --san NAME`"
            ));
        }
        "Expired" | "ExpiredContext" | "NotValidYet" | "NotValidYetContext" => {
            "it is expired or not yet valid"
        }
        "Revoked" => "it is revoked",
        "UnknownIssuer" => "it is issued by a CA that is not trusted",
        _ => "it does not chain to a trusted CA",
    };
    Some(format!(
        "{before}the server's TLS certificate is not trusted ({reason}): pass its CA with \
         --ca-cert PEM (repeatable) / AppBuilder::add_ca_cert_file, or set SSL_CERT_FILE"
    ))
}

#[cfg(test)]
mod explain_tests {
    use super::explain_untrusted_server;

    #[test]
    fn untrusted_server_errors_name_the_fix_without_the_debug_dump() {
        let raw = "cannot connect: client error (Connect): invalid peer certificate: \
                   UnsupportedSignatureAlgorithmForPublicKeyContext { signature_algorithm_id: \
                   [6, 8, 42], public_key_algorithm_id: [6, 9] }";
        let s = explain_untrusted_server(raw).unwrap();
        assert!(
            s.starts_with("cannot connect: client error (Connect): "),
            "{s}"
        );
        assert!(s.contains("--ca-cert"), "{s}");
        assert!(!s.contains("signature_algorithm_id"), "{s}");
        let s = explain_untrusted_server("x: invalid peer certificate: UnknownIssuer").unwrap();
        assert!(
            s.contains("not trusted") && !s.contains("UnknownIssuer"),
            "{s}"
        );
        let s = explain_untrusted_server(
            "invalid peer certificate: NotValidForNameContext { expected: … }",
        )
        .unwrap();
        assert!(s.contains("--san"), "{s}");
        assert!(explain_untrusted_server("connection refused").is_none());
    }
}
