//! `certbound authority serve|register`.

use super::{AuthorityRegisterArgs, AuthorityServeArgs};

/// Serves the development authority.
pub async fn serve(_args: AuthorityServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`authority serve` is being built in this change set")
}

/// Registers a client.
pub async fn register(_args: AuthorityRegisterArgs) -> anyhow::Result<()> {
    anyhow::bail!("`authority register` is being built in this change set")
}
