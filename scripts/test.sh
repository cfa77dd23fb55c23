#!/usr/bin/env bash
# The whole test suite: format check, lint, and every test (unit, integration, interop).
# Installs the external peers the interop tests need when they are missing, so it works on a
# fresh machine: redis-server (Debian), the npm oidc-provider peer, Python's msal and azure-identity.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# --- external peers -------------------------------------------------------------------------
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package)"
  apt_install redis-server
fi
if ! command -v node >/dev/null 2>&1; then
  echo "installing nodejs and npm (Debian packages)"
  apt_install nodejs npm
fi
for dir in interop/*/; do
  if [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "installing npm packages in $dir"
    if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --no-audit --no-fund --silent);
    else (cd "$dir" && npm install --no-audit --no-fund --silent); fi
  fi
done
if ! python3 -c "import msal, azure.identity" >/dev/null 2>&1; then
  echo "installing Python packages msal and azure-identity"
  python3 -m pip install --quiet --disable-pip-version-check msal azure-identity
fi

# --- the suite ------------------------------------------------------------------------------
cargo fmt --all -- --check
# -D warnings includes clippy::incompatible_msrv: no std API newer than `rust-version` (the
# MSRV check; no second toolchain can be installed here).
cargo clippy --workspace --all-targets --locked -- -D warnings -D clippy::incompatible_msrv
# Architecture: no import cycle between the modules of a crate; the crate edges follow the data
# path (the authority does not depend on the resource server).
python3 scripts/module_cycles.py
# Small files: no Rust source (tests included) over 800 lines.
long=$(git ls-files '*.rs' | xargs wc -l | awk '$2 != "total" && $1 > 800 {print $2 " (" $1 " lines)"}')
if [ -n "$long" ]; then echo "files over 800 lines (split them by concern):"; echo "$long"; exit 1; fi
if cargo tree --locked -p certbound-authority --prefix none | grep -q '^certbound-resource '; then
  echo "certbound-authority must not depend on certbound-resource (ARCHITECTURE.md)"; exit 1
fi
# Features: users compile what they use. The client never pulls in the IMDS emulator's axum;
# the facade library builds without the CLI (clap, anyhow, tracing-subscriber, tempfile).
if cargo tree --locked -p certbound-client -e normal --no-default-features --prefix none | grep -q '^axum '; then
  echo "certbound-client must not depend on axum (the IMDS emulator is behind certbound-imds's emulator feature)"; exit 1
fi
if cargo tree --locked -p certbound -e normal --no-default-features --prefix none | grep -qE '^(clap|anyhow|tracing-subscriber|tempfile) '; then
  echo "the certbound library without its cli feature must not depend on the CLI's crates"; exit 1
fi
if cargo tree --locked -p certbound-client -e normal --prefix none | grep -q '^rcgen '; then
  echo "certbound-client must not depend on rcgen (the dev CA is behind certbound-core's dev-ca feature)"; exit 1
fi
if cargo tree --locked -p certbound-client -e normal --no-default-features --prefix none | grep -q '^p12-keystore '; then
  echo "certbound-client without default features must not depend on p12-keystore"; exit 1
fi
# The feature combinations that matter, each warning-free: every core feature alone, the
# client-side crates and the facade library without defaults.
for f in "" "--features pkcs12" "--features dev-ca" "--features server"; do
  cargo clippy --locked -p certbound-core --no-default-features $f -- -D warnings
done
cargo clippy --locked -p certbound-client -p certbound-downstream -p certbound-redis -p certbound-imds --no-default-features -- -D warnings
for f in "" "--features axum" "--features jwks"; do
  cargo clippy --locked -p certbound-resource --no-default-features $f -- -D warnings
done
cargo clippy --locked -p certbound --lib --no-default-features -- -D warnings
cargo clippy --locked -p certbound --lib --no-default-features --features local -- -D warnings
cargo test --workspace --locked
# Every example must run and exit 0 (already built by `cargo test`, so this takes seconds).
for ex in protocol_schemes client_credentials resource_server downstream_call managed_identity redis_l2; do
  cargo run --quiet --locked --example "$ex" >/dev/null || { echo "example $ex failed"; exit 1; }
done
# The container image: built from the test build's binary with buildah (no base image pulled;
# scripts/release.sh builds the release one), started as its non-root user.
bash scripts/image.sh "${CARGO_TARGET_DIR:-target}/debug/certbound" certbound:ci
# Release hygiene: cargo-deny (bans, licenses, sources), rustdoc with warnings denied, and the
# packaging of every crate (metadata, file lists, versions; the verifying rebuild of every
# crate from its .crate is left to release time: `bash scripts/checks.sh package`).
CHECKS_PACKAGE_VERIFY=0 bash scripts/checks.sh deny doc package
