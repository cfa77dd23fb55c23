//! `certbound authority serve|register`.
//!
//! Only `serve` initialises a state directory; `register` (and `cert new --ca-dir`) refuse a
//! directory that is not an initialised authority rather than silently creating a new CA
//! and tenant that no running authority uses.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use certbound_authority::{
    AuthMethod, AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority,
    TlsClientAuthSubject,
};
use certbound_core::{Certificate, JwsAlgorithm};

use super::{AuthorityRegisterArgs, AuthorityServeArgs};

/// The files that make `dir` an initialised authority (see `certbound_authority`'s state
/// directory): the registry and the CA.
const STATE_FILES: [&str; 3] = ["authority.json", "ca.pem", "ca.key"];

/// The ready line of the last `authority serve --dir DIR`, in DIR.
const READY_FILE: &str = "ready.json";

/// Fails unless `dir` is an initialised authority directory, naming the directory (and
/// `flag`, the option that named it) and how to create one.
pub(crate) fn require_initialised(dir: &Path, flag: &str) -> anyhow::Result<()> {
    let hint = format!(
        "run `certbound authority serve --dir {}` first to create it",
        dir.display()
    );
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!(
            "{flag} {}: not a directory, so not an authority directory",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{flag} {}: no such authority directory; {hint}",
            dir.display()
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "{flag} {}: cannot read the directory",
                dir.display()
            )));
        }
    }
    let missing: Vec<&str> = STATE_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{flag} {}: not an initialised authority directory (no {}); {hint}",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// What `authority serve` may have to undo when it fails before it is ready: the
/// directories it is about to create, or the files it is about to add to an existing but
/// uninitialised directory.
enum Undo {
    /// DIR is initialised already: nothing is created.
    Nothing,
    /// This ancestor of DIR (or DIR itself) does not exist yet: remove it on failure.
    NewDirectory(PathBuf),
    /// DIR exists without authority state: remove what was not there before.
    NewEntries(PathBuf, Vec<std::ffi::OsString>),
}

impl Undo {
    fn prepare(dir: &Path) -> Self {
        let mut missing = None;
        for a in dir.ancestors() {
            if a.as_os_str().is_empty() || std::fs::symlink_metadata(a).is_ok() {
                break;
            }
            missing = Some(a.to_path_buf());
        }
        if let Some(top) = missing {
            return Undo::NewDirectory(top);
        }
        if dir.join(STATE_FILES[0]).exists() {
            return Undo::Nothing;
        }
        match std::fs::read_dir(dir) {
            Ok(entries) => Undo::NewEntries(
                dir.to_path_buf(),
                entries
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect(),
            ),
            Err(_) => Undo::Nothing,
        }
    }

    fn undo(self) {
        match self {
            Undo::Nothing => {}
            Undo::NewDirectory(top) => {
                let _ = std::fs::remove_dir_all(top);
            }
            Undo::NewEntries(dir, before) => {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return;
                };
                for e in entries.flatten() {
                    let is_file = e.file_type().is_ok_and(|t| t.is_file());
                    if is_file && !before.contains(&e.file_name()) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}

/// Serves the development authority until SIGINT/SIGTERM. A DIR created (or initialised) by
/// this run is removed again when the authority cannot start (say, the port is taken).
pub async fn serve(args: AuthorityServeArgs) -> anyhow::Result<()> {
    let undo = Undo::prepare(&args.dir);
    let started = start(&args).await;
    let (running, emulator) = match started {
        Ok(s) => s,
        Err(e) => {
            undo.undo();
            return Err(e);
        }
    };
    // Install the signal handlers before the ready line: a supervisor may send SIGTERM as
    // soon as it has read it.
    let stop = StopSignals::install();
    let ready = match &emulator {
        Some(e) => certbound_authority::imds::ready_json(&running, e),
        None => running.ready_json(),
    };
    // Recorded for `authority register --write-config` (the issuer of the running authority).
    let recorded = args.dir.join(READY_FILE);
    if let Err(e) = std::fs::write(&recorded, format!("{ready}\n")) {
        super::err_line(format_args!(
            "warning: cannot write {}: {e} (`authority register --write-config` needs it)",
            recorded.display()
        ));
    }
    super::print_ready(&ready);
    stop.wait().await;
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}

/// Opens (or initialises) DIR and starts listening: everything that can fail before ready.
async fn start(
    args: &AuthorityServeArgs,
) -> anyhow::Result<(
    certbound_authority::RunningAuthority,
    Option<certbound_authority::imds::RunningEmulator>,
)> {
    let refused = || {
        anyhow::anyhow!(
            "--signing-alg `{}`: use ES256, RS256 or PS256",
            args.signing_alg.chars().take(20).collect::<String>()
        )
    };
    let signing_alg: JwsAlgorithm = args.signing_alg.parse().map_err(|_| refused())?;
    if signing_alg == JwsAlgorithm::ES384 {
        return Err(refused());
    }
    let options = AuthorityOptions {
        tenant: args.tenant.clone(),
        signing_alg,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime),
        dpop_nonce: args.dpop_nonce,
    };
    let authority = DevAuthority::open_or_init(&args.dir, options)
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
    Ok((running, emulator))
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
    require_initialised(&args.dir, "--dir")?;
    let config = match &args.write_config {
        Some(file) => Some(config_text(&args, file)?),
        None => None,
    };
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
    let subject_given = subject.is_some();
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
                "say how the client authenticates: --cert PEM (its certificate) or --secret S (a \
                 client secret), or a tls_client_auth subject (--subject-dn DN or one --san-*)"
            ),
        },
        _ => anyhow::bail!("give exactly one of --cert PEM or --secret S"),
    };
    // A certificate registered without --auth serves both ways Entra accepts a certificate
    // credential: the mTLS handshake (bound tokens) and a client assertion it signs
    // (private_key_jwt, what `token --scheme bearer|dpop|pop` sends). Name the methods with
    // --auth to allow fewer; the authority then refuses every other one.
    let methods = if methods.is_empty() && args.cert.is_some() && subject_given {
        methods
    } else if methods.is_empty() && args.cert.is_some() {
        vec![
            AuthMethod::SelfSignedTlsClientAuth,
            AuthMethod::PrivateKeyJwt,
        ]
    } else {
        methods
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
    DevAuthority::register_client(&args.dir, reg)
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
    if let (Some(file), Some(text)) = (&args.write_config, &config) {
        out["config"] = serde_json::json!(write_config(file, text)?);
    }
    outln!("{out}")?;
    Ok(())
}

/// The appsettings.json text of `authority register --write-config FILE` (checked before
/// anything is registered: the authority's recorded issuer, FILE not there yet).
fn config_text(args: &AuthorityRegisterArgs, file: &Path) -> anyhow::Result<String> {
    if std::fs::symlink_metadata(file).is_ok() {
        anyhow::bail!(
            "--write-config {}: the file exists; refusing to overwrite it (remove it, or \
             choose another FILE)",
            file.display()
        );
    }
    let recorded = args.dir.join(READY_FILE);
    let ready: serde_json::Value = std::fs::read(&recorded)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--write-config: {} does not say where the authority runs; start it with \
                 `certbound authority serve --dir {}` first (it records its issuer there)",
                recorded.display(),
                args.dir.display()
            )
        })?;
    let Some(issuer) = ready["issuer"].as_str() else {
        anyhow::bail!(
            "--write-config: {} has no issuer; restart `certbound authority serve --dir {}`",
            recorded.display(),
            args.dir.display()
        );
    };
    let Some(cert) = &args.cert else {
        anyhow::bail!("--write-config needs --cert PEM (the credential it names)");
    };
    let cert_path = std::path::absolute(cert)
        .with_context(|| format!("--cert {}: cannot make the path absolute", cert.display()))?;
    let audience = args.audience.first().map_or("api://my-api", String::as_str);
    let scope = format!("{}/.default", audience.trim_end_matches('/'));
    let config = serde_json::json!({
        "AzureAd": {
            "Authority": issuer,
            "ClientId": args.client_id,
            "ClientCredentials": [
                { "SourceType": "Path", "CertificateDiskPath": cert_path.display().to_string() }
            ]
        },
        "DownstreamApis": {
            "MyApi": {
                "BaseUrl": args.api_url,
                "RelativePath": "/whoami",
                "ProtocolScheme": "MTLS_POP",
                "RequestAppToken": true,
                "Scopes": [scope]
            }
        }
    });
    let mut text = serde_json::to_string_pretty(&config)?;
    text.push('\n');
    Ok(text)
}

/// Writes `text` to a new `file`; returns its path.
fn write_config(file: &Path, text: &str) -> anyhow::Result<String> {
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "--write-config {}: the file exists; refusing to overwrite it (remove it, or \
             choose another FILE)",
            file.display()
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "--write-config {}: cannot create it",
                file.display()
            )));
        }
    };
    use std::io::Write as _;
    f.write_all(text.as_bytes())
        .with_context(|| format!("--write-config {}: cannot write it", file.display()))?;
    Ok(file.display().to_string())
}
