//! `certbound call`.

use super::CallArgs;

/// Runs the command.
pub async fn run(_args: CallArgs) -> anyhow::Result<()> {
    anyhow::bail!("`call` is being built in this change set")
}
