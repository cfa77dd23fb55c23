//! `certbound api`.

use super::ApiServeArgs;

/// Runs the command.
pub async fn serve(_args: ApiServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`api` is being built in this change set")
}
