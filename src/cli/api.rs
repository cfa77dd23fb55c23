//! `certbound api serve`: the sample protected API (SPEC §7).
//!
//! TLS asks for (but does not require) a client certificate; `GET /whoami` answers with the
//! validated claims, the scheme and the presented certificate's thumbprint; refusals are
//! RFC 6750 401s. The ready line is one JSON object:
//! `{"addr","url","tls_cert","issuer","audience","require_binding"}` where `tls_cert` is the
//! PEM file of the server certificate clients should trust (`--ca-cert` for `certbound call`).

use std::path::PathBuf;

use anyhow::Context as _;
use certbound_core::ca::{self, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_resource::transport::{TlsServer, shutdown_signal};
use certbound_resource::{Validator, sample};

use super::ApiServeArgs;

/// A server certificate written to a private temporary directory, removed on drop.
struct TempCert {
    dir: PathBuf,
    pem: PathBuf,
}

impl Drop for TempCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn self_signed_identity() -> anyhow::Result<(CertifiedKey, TempCert)> {
    let identity = ca::self_signed_certified_key(
        &IssueSpec::server("localhost", &["localhost", "127.0.0.1", "::1"]),
        KeyKind::EcP256,
    )
    .context("cannot generate the API's self-signed TLS certificate")?;
    let mut nonce = [0u8; 8];
    unique_bytes(&mut nonce);
    let dir = std::env::temp_dir().join(format!(
        "certbound-api-{}-{}",
        std::process::id(),
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pem = dir.join("api-tls.pem");
    std::fs::write(&pem, identity.leaf().to_pem())
        .with_context(|| format!("cannot write {}", pem.display()))?;
    Ok((identity, TempCert { dir, pem }))
}

/// Bytes unique to this process and moment (a hash of pid, time and a monotonic instant):
/// enough to keep concurrent servers' directories apart (the directory holds no secret).
fn unique_bytes(out: &mut [u8]) {
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        certbound_core::now_unix(),
        std::time::Instant::now()
    );
    let t = certbound_core::Thumbprint::of_der(seed.as_bytes());
    for (o, b) in out.iter_mut().zip(t.as_bytes()) {
        *o = *b;
    }
}

/// Runs the command.
pub async fn serve(args: ApiServeArgs) -> anyhow::Result<()> {
    let mut anchors = TrustAnchors::system();
    if let Some(ca) = &args.ca_cert {
        anchors
            .add_pem_file(ca)
            .with_context(|| format!("cannot load --ca-cert {}", ca.display()))?;
    }
    let validator = Validator::builder()
        .issuer(args.authority.clone())
        .audiences(args.audience.iter().cloned())
        .require_binding(args.require_binding)
        .trust_anchors(anchors)
        .build()
        .await
        .with_context(|| {
            format!(
                "cannot set up token validation for authority {}",
                args.authority
            )
        })?;

    let (identity, temp, tls_cert_path) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let id = CertifiedKey::load_pem_files(cert, key).with_context(|| {
                format!(
                    "cannot load --tls-cert {} / --tls-key {}",
                    cert.display(),
                    key.display()
                )
            })?;
            (id, None, cert.clone())
        }
        _ => {
            let (id, temp) = self_signed_identity()?;
            let p = temp.pem.clone();
            (id, Some(temp), p)
        }
    };
    let tls = tls::server_config(&identity, ClientAuth::Optional)
        .context("cannot build the API's TLS configuration")?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr().context("no local address")?;
    let server = TlsServer::new(listener, tls);
    super::print_ready(&serde_json::json!({
        "addr": addr.to_string(),
        "url": format!("https://{addr}"),
        "tls_cert": tls_cert_path.display().to_string(),
        "issuer": args.authority,
        "audience": args.audience,
        "require_binding": args.require_binding,
    }));
    let result = server
        .serve(sample::router(validator), shutdown_signal())
        .await
        .context("the API server failed");
    drop(temp);
    result
}
