//! `certbound demo`.

use super::DemoArgs;

/// Runs the command.
pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`demo` is being built in this change set")
}
