//! `certbound token`.

use super::TokenArgs;

/// Runs the command.
pub async fn run(_args: TokenArgs) -> anyhow::Result<()> {
    anyhow::bail!("`token` is being built in this change set")
}
