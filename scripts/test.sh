#!/usr/bin/env bash
# The whole test suite: lint, format check, and every test (unit, integration, interop).
# Installs external peers the interop tests need (redis-server, node's oidc-provider)
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
