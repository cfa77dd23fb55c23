//! `certbound authority serve|register`.

use anyhow::Context as _;
use certbound_authority::{
    AuthMethod, Authority, AuthorityOptions, CertAuthMethod, ClientRegistration,
    TlsClientAuthSubject,
};
use certbound_core::{Certificate, JwsAlgorithm};

use super::{AuthorityRegisterArgs, AuthorityServeArgs};

/// Serves the development authority until SIGINT/SIGTERM.
pub async fn serve(args: AuthorityServeArgs) -> anyhow::Result<()> {
    let signing_alg: JwsAlgorithm = args
        .signing_alg
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--signing-alg: {e}"))?;
    if signing_alg == JwsAlgorithm::ES384 {
        anyhow::bail!("--signing-alg: use ES256, RS256 or PS256");
    }
    let options = AuthorityOptions {
        tenant: args.tenant.clone(),
        signing_alg,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime),
        dpop_nonce: args.dpop_nonce,
    };
    let authority = Authority::open_or_init(&args.dir, options)
        .with_context(|| format!("authority directory {}", args.dir.display()))?;
    let running = authority.spawn(args.addr).await?;
    let emulator = match args.imds_addr {
        Some(addr) => Some(
            certbound_authority::imds::spawn_emulator(&running, addr)
                .await
                .context("--imds-addr: cannot start the managed-identity (IMDS) emulator")?,
        ),
        None => None,
    };
    // Install the signal handlers before the ready line: a supervisor may send SIGTERM as
    // soon as it has read it.
    let stop = StopSignals::install();
    match &emulator {
        Some(e) => super::print_ready(&certbound_authority::imds::ready_json(&running, e)),
        None => super::print_ready(&running.ready_json()),
    }
    stop.wait().await;
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}

/// SIGTERM/SIGINT handlers installed up front (the handlers exist from `install` on, so a
/// signal that arrives before `wait` is not lost and does not kill the process).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let (Some(mut term), Some(mut int)) = (self.term, self.int) else {
                certbound_resource::transport::shutdown_signal().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            certbound_resource::transport::shutdown_signal().await;
        }
    }
}

/// Registers a client in DIR (a running authority picks it up on its next request).
pub async fn register(args: AuthorityRegisterArgs) -> anyhow::Result<()> {
    let subject = [
        args.subject_dn.clone().map(TlsClientAuthSubject::SubjectDn),
        args.san_dns.clone().map(TlsClientAuthSubject::SanDns),
        args.san_uri.clone().map(TlsClientAuthSubject::SanUri),
        args.san_ip.clone().map(TlsClientAuthSubject::SanIp),
        args.san_email.clone().map(TlsClientAuthSubject::SanEmail),
    ]
    .into_iter()
    .flatten()
    .next();
    let methods = args
        .auth
        .iter()
        .map(|a| a.parse::<AuthMethod>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--auth: {e}"))?;
    let mut reg = match (&args.cert, &args.secret) {
        (Some(path), None) => {
            let method: CertAuthMethod = match args.auth.first() {
                Some(first) => first
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--auth with --cert: {e}"))?,
                None if subject.is_some() => CertAuthMethod::TlsClientAuth,
                None => CertAuthMethod::SelfSignedTlsClientAuth,
            };
            let cert = Certificate::load_file(path)?;
            let mut reg = ClientRegistration::with_certificate(&args.client_id, cert, method);
            if let Some(s) = subject {
                reg = reg.tls_client_auth_subject(s);
            }
            reg
        }
        (None, Some(secret)) => {
            if subject.is_some() {
                anyhow::bail!(
                    "--subject-dn/--san-* register tls_client_auth, which needs no --secret"
                );
            }
            ClientRegistration::with_secret(&args.client_id, secret.as_str())
        }
        (None, None) => match subject {
            Some(s) => ClientRegistration::with_tls_client_auth(&args.client_id, s),
            None => anyhow::bail!(
                "give --cert PEM, --secret S, or a tls_client_auth subject (--subject-dn or one --san-*)"
            ),
        },
        _ => anyhow::bail!("give exactly one of --cert PEM or --secret S"),
    };
    for m in methods {
        reg = reg.auth_method(m);
    }
    for a in &args.audience {
        reg = reg.audience(a);
    }
    reg = reg.bound_tokens(!args.no_bound_tokens);
    let thumbprint = match &reg.credential {
        certbound_authority::Credential::Certificate { certificate, .. } => {
            Some(certificate.thumbprint().to_base64url())
        }
        _ => None,
    };
    Authority::register_client(&args.dir, reg)
        .with_context(|| format!("authority directory {}", args.dir.display()))?;
    // What was stored: the methods and the tls_client_auth subject in canonical form.
    let registry = args.dir.join("authority.json");
    let stored: serde_json::Value = std::fs::read(&registry)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let record = stored["clients"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["client_id"] == args.client_id.as_str())
        })
        .cloned()
        .unwrap_or_default();
    let mut out = serde_json::json!({
        "client_id": args.client_id,
        "token_endpoint_auth_method": record["token_endpoint_auth_method"],
        "token_endpoint_auth_methods": record["token_endpoint_auth_methods"],
        "x5t#S256": thumbprint,
        "audiences": args.audience,
        "tls_client_certificate_bound_access_tokens": !args.no_bound_tokens,
        "registry": registry.display().to_string(),
    });
    for key in [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ] {
        if let Some(v) = record.get(key) {
            out[key] = v.clone();
        }
    }
    println!("{out}");
    Ok(())
}
