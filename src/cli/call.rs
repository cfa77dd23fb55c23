//! `certbound call`: calls a downstream API named in the configuration's `DownstreamApis`
//! and prints the response body. A non-2xx status exits non-zero with the status and the
//! `WWW-Authenticate` header on stderr.

use anyhow::{Context as _, bail};
use certbound_core::tls::TrustAnchors;
use certbound_downstream::{CallOptions, Downstream};

use super::CallArgs;

/// Runs the command.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let cfg = super::load_config(&args.config)?;
    if cfg.downstream_api(&args.api).is_none() {
        let known: Vec<_> = cfg
            .downstream_apis
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        bail!(
            "{}: no DownstreamApis entry named `{}` (known: {})",
            args.config.display(),
            args.api,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let mut anchors = TrustAnchors::system();
    let mut builder = crate::app_builder(cfg)?;
    for ca in &args.ca_cert {
        anchors
            .add_pem_file(ca)
            .with_context(|| format!("--ca-cert {}", ca.display()))?;
        builder = builder.add_ca_cert_file(ca);
    }
    let app = builder.build()?;
    let downstream = Downstream::for_app(app, anchors)?;
    let mut options = CallOptions::default();
    if let Some(p) = &args.path {
        options = options.path(p.clone());
    }
    if let Some(s) = &args.scheme {
        options = options.scheme(super::parse_scheme(s)?);
    }
    let resp = downstream.call(&args.api, options).await?;
    let status = resp.status();
    if status.is_success() {
        super::out_bytes(resp.body())?;
        if !resp.body().ends_with(b"\n") {
            super::out_bytes(b"\n")?;
        }
        return Ok(());
    }
    match resp.www_authenticate() {
        Some(w) => bail!("{} answered {status} (WWW-Authenticate: {w})", args.api),
        None => {
            let text = resp.text_lossy();
            let excerpt: String = text
                .chars()
                .take(200)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            bail!(
                "{} answered {status}{}",
                args.api,
                if excerpt.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", excerpt.trim())
                }
            )
        }
    }
}
