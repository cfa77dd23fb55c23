//! `certbound cert`.

use super::CertNewArgs;

/// Runs the command.
pub async fn new(_args: CertNewArgs) -> anyhow::Result<()> {
    anyhow::bail!("`cert` is being built in this change set")
}
