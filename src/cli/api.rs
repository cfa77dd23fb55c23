//! `certbound api serve`: the sample protected API (docs/command-line.md).
//!
//! TLS asks for (but does not require) a client certificate; `GET /whoami` answers with the
//! validated claims, the scheme and the presented certificate's thumbprint; refusals are
//! RFC 6750 401s. The ready line is one JSON object:
//! `{"addr","url","tls_cert","issuer","audience","require_binding"}` where `tls_cert` is the
//! PEM file of the server certificate clients should trust (`--ca-cert` for `certbound call`).
//!
//! `GET /certificate` is the plain `MTLS` scheme: the client certificate alone, no token. It
//! admits any currently valid certificate, or only those named by `--allow-cert-thumbprint`
//! and/or chaining to a `--client-ca-cert`; the ready line adds
//! `"allow_cert_thumbprints"` and `"client_ca_certs"`.
//!
//! `DPoP` and `Pop` proofs must name this API's own origin (docs/resource-server.md (proof origin)): one of the
//! `--external-url`s (repeatable, each possibly with a path prefix), the one the request's
//! `Host` names, or by default `https://<--addr>`. On a wildcard `--addr` (`0.0.0.0`, `::`)
//! without `--external-url` the command refuses to start. `--dpop-nonce` makes the API demand
//! server nonces in DPoP proofs. The ready line adds `"dpop_nonce"`, `"external_url"` (the
//! first `--external-url`, or null), `"external_urls"` and `"proof_origins"` (the origins
//! proofs are checked against).

use std::path::PathBuf;

use anyhow::Context as _;
use certbound_core::Thumbprint;
use certbound_core::ca::{self, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_resource::RequireClientCertificate;
use certbound_resource::Validator;
use certbound_resource::transport::{TlsServer, shutdown_signal};

use super::sample;

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

/// Parses an `x5t#S256` thumbprint given as base64url (43 characters, as certbound prints
/// it) or as SHA-256 hex (64 digits, colons allowed, as `openssl x509 -fingerprint -sha256`
/// prints it).
fn parse_thumbprint(text: &str) -> anyhow::Result<Thumbprint> {
    let t = text.trim();
    if let Some(tp) = Thumbprint::from_base64url(t) {
        return Ok(tp);
    }
    let hex: Vec<u8> = t.bytes().filter(|b| *b != b':').collect();
    if hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit) {
        let mut bytes = [0u8; 32];
        for (b, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *b = u8::from_str_radix(std::str::from_utf8(pair)?, 16)?;
        }
        return Ok(Thumbprint::from_bytes(bytes));
    }
    anyhow::bail!(
        "--allow-cert-thumbprint {t:?} is not an x5t#S256 thumbprint: give the base64url \
         SHA-256 of the certificate's DER (43 characters, as `certbound cert new` prints it) \
         or its 64 hex digits"
    )
}

/// The error of a failed validator setup as one line that names the fix: an untrusted
/// authority certificate gets the `--ca-cert` hint, and an `--authority` that is not an
/// issuer URL (`…/<tenant>/v2.0`) gets the issuer URL it probably meant.
fn explain_build_error(authority: &str, error: &str) -> String {
    let mut s = format!("cannot set up token validation for authority {authority}: ");
    s.push_str(
        &certbound_core::tls::explain_untrusted_server(error).unwrap_or_else(|| error.to_owned()),
    );
    let trimmed = authority.trim_end_matches('/');
    if !trimmed.ends_with("/v2.0") && !trimmed.ends_with("/v1.0") {
        s.push_str(&format!(
            "; --authority wants the issuer URL, `{trimmed}/<tenant>/v2.0` (the `issuer` in \
             the ready line of `certbound authority serve`), not the authority's base URL"
        ));
    }
    s
}

/// The `GET /certificate` policy from the command line.
fn certificate_policy(args: &ApiServeArgs) -> anyhow::Result<RequireClientCertificate> {
    let mut policy = RequireClientCertificate::new();
    if !args.allow_cert_thumbprint.is_empty() {
        let thumbprints = args
            .allow_cert_thumbprint
            .iter()
            .map(|t| parse_thumbprint(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        policy = policy.allow_thumbprints(thumbprints);
    }
    if !args.client_ca_cert.is_empty() {
        let mut anchors = TrustAnchors::default();
        for path in &args.client_ca_cert {
            anchors
                .add_pem_file(path)
                .with_context(|| format!("cannot load --client-ca-cert {}", path.display()))?;
        }
        policy = policy.trust_anchors(&anchors).with_context(|| {
            format!(
                "--client-ca-cert {}: no usable CA certificate",
                args.client_ca_cert
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    }
    Ok(policy)
}

/// Runs the command.
pub async fn serve(args: ApiServeArgs) -> anyhow::Result<()> {
    if args.external_url.is_empty() && args.addr.ip().is_unspecified() {
        anyhow::bail!(
            "--addr {} is a wildcard address, so DPoP and PoP proofs have no origin of this \
             server to name: give the URL clients call with --external-url \
             https://HOST[:PORT][/PREFIX] (repeatable), or listen on a specific address",
            args.addr
        );
    }
    let certificate = certificate_policy(&args)?;
    let mut anchors = TrustAnchors::system();
    for ca in &args.ca_cert {
        anchors
            .add_pem_file(ca)
            .with_context(|| format!("cannot load --ca-cert {}", ca.display()))?;
    }
    let mut validator = Validator::builder()
        .issuer(args.authority.clone())
        .audiences(args.audience.iter().cloned())
        .require_binding(args.require_binding)
        .require_dpop_nonce(args.dpop_nonce)
        .trust_anchors(anchors);
    for url in &args.external_url {
        // Checked by the builder (an absolute http(s) URL).
        validator = validator.external_base_url(url.clone());
    }
    let validator = match validator.build().await {
        Ok(v) => v,
        Err(e) => anyhow::bail!("{}", explain_build_error(&args.authority, &e.to_string())),
    };

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
    let proof_origins = validator
        .proof_origins(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = TlsServer::new(listener, tls);
    super::print_ready(&serde_json::json!({
        "addr": addr.to_string(),
        "url": format!("https://{addr}"),
        "tls_cert": tls_cert_path.display().to_string(),
        "issuer": args.authority,
        "audience": args.audience,
        "require_binding": args.require_binding,
        "dpop_nonce": args.dpop_nonce,
        "external_url": args.external_url.first(),
        "external_urls": args.external_url,
        "proof_origins": proof_origins,
        "allow_cert_thumbprints": args
            .allow_cert_thumbprint
            .iter()
            .filter_map(|t| parse_thumbprint(t).ok())
            .map(|t| t.to_base64url())
            .collect::<Vec<_>>(),
        "client_ca_certs": args
            .client_ca_cert
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    }));
    let result = server
        .serve(
            sample::router_with(validator, certificate),
            shutdown_signal(),
        )
        .await
        .context("the API server failed");
    drop(temp);
    result
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::parse_thumbprint;

    #[test]
    fn thumbprints_in_base64url_and_hex() {
        let der = b"any certificate bytes";
        let t = certbound_core::Thumbprint::of_der(der);
        assert_eq!(parse_thumbprint(&t.to_base64url()).unwrap(), t);
        let hex: String = t.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_thumbprint(&hex).unwrap(), t);
        let colons = t
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_thumbprint(&colons).unwrap(), t);
        let err = parse_thumbprint("not-a-thumbprint")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--allow-cert-thumbprint"), "{err}");
        assert!(parse_thumbprint(&hex[..62]).is_err());
    }
}
