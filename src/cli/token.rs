//! `certbound token`: acquires an app token with the client library and prints it.
//!
//! Scopes default to the first `DownstreamApis` entry's `Scopes`; the scheme defaults to
//! that entry's `ProtocolScheme` (MTLS_POP when it says so), else Bearer.

use anyhow::bail;
use certbound_client::{HeaderOptions, ProtocolScheme, TokenSource};
use serde_json::json;

use super::TokenArgs;

/// Runs the command.
pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let cfg = super::load_config(&args.config)?;
    let first_api = cfg
        .downstream_apis
        .first()
        .map(|(n, a)| (n.clone(), a.clone()));
    let scopes: Vec<String> = if !args.scope.is_empty() {
        args.scope.clone()
    } else {
        match &first_api {
            Some((_, api)) if !api.scopes.is_empty() => api.scopes.clone(),
            Some((name, _)) => bail!(
                "no --scope given and DownstreamApis.{name}.Scopes is empty in {}; pass --scope",
                args.config.display()
            ),
            None => bail!(
                "no --scope given and {} has no DownstreamApis entry to take Scopes from; pass --scope",
                args.config.display()
            ),
        }
    };
    let mut options = first_api
        .as_ref()
        .map(|(_, a)| HeaderOptions::for_downstream_api(a))
        .unwrap_or_default();
    match args.scheme.as_deref() {
        Some(s) => {
            options.scheme = super::parse_scheme(s)?;
            // The CLI only acquires app tokens.
            options.request_app_token = true;
        }
        None if first_api.is_none() => options.request_app_token = true,
        None => {}
    }
    if options.scheme == ProtocolScheme::Bearer {
        options.request_app_token = true;
    }
    options.force_refresh |= args.force_refresh;
    let mut builder = crate::app_builder(cfg)?;
    for ca in &args.ca_cert {
        builder = builder.add_ca_cert_file(ca);
    }
    let app = builder.build()?;
    let token = app.acquire_token_for_app(&scopes, &options).await?;
    let source = match token.source {
        TokenSource::IdentityProvider => "identity_provider",
        TokenSource::Cache => "cache",
        _ => "other",
    };
    let binding = token.binding_thumbprint.map(|t| t.to_base64url());
    let strength = binding_strength(binding.is_some());
    if args.json {
        let out = json!({
            "token_type": token.token_type,
            "access_token": token.access_token.expose(),
            "expires_on": token.expires_on,
            "binding_thumbprint": binding,
            "binding_strength": strength,
            "source": source,
        });
        outln!("{out}")?;
    } else {
        super::err_line(format_args!(
            "token_type: {}  expires_on: {} ({})  bound to: {}  source: {source}",
            token.token_type,
            token.expires_on,
            certbound_core::fmt_unix(token.expires_on),
            binding.as_deref().unwrap_or("(unbound)")
        ));
        outln!("{}", token.access_token.expose())?;
    }
    Ok(())
}

/// SPEC §7 `binding_strength`: `"software"` for a token bound to a key certbound can read
/// (file-backed, minted or generated keys), `"hardware"` for a non-exportable key (none is
/// supported yet), null for an unbound token.
fn binding_strength(bound: bool) -> Option<&'static str> {
    bound.then_some("software")
}
