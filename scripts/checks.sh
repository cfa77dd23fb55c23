#!/usr/bin/env bash
# Release-hygiene checks (called from scripts/test.sh). Each step prints the time it took, so
# its share of the CI budget (30 min on 2 cores) stays visible.
#   a. cargo deny check bans licenses sources   (deny.toml; installs cargo-deny when missing)
#   b. MSRV: clippy::incompatible_msrv against `rust-version` in Cargo.toml
#   c. rustdoc with warnings denied
#   d. cargo package of every crate (metadata complete, every crate builds from its .crate;
#      CHECKS_PACKAGE_VERIFY=0 skips the build)
#   e. semver: cargo semver-checks of every published crate against the previous release
#      (SEMVER_BASELINE, a git revision; default: the newest `v*` tag). Not in the default
#      steps: run by scripts/release.sh, and by hand with a baseline. Installs
#      cargo-semver-checks when missing (a long build: ~10 min on 2 cores).
# Usage: bash scripts/checks.sh [STEP…]   (steps: deny msrv doc package semver; default: the first four)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(deny msrv doc package)
failed=()
t_all=$SECONDS

run() { # run NAME COMMAND…
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  if "$@"; then
    echo "== $name: pass ($((SECONDS - t0)) s)"
  else
    echo "== $name: FAIL ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}

deny() {
  if ! command -v cargo-deny >/dev/null 2>&1; then
    local t0=$SECONDS
    echo "installing cargo-deny (cargo install cargo-deny --locked)"
    cargo install cargo-deny --locked --quiet
    echo "installed cargo-deny ($((SECONDS - t0)) s)"
  fi
  # `advisories` is left out: it clones the RustSec database from github.com, which CI cannot
  # reach (see deny.toml). Run `cargo deny check` with network access before a release.
  cargo deny --locked check bans licenses sources
}

msrv() {
  # No second toolchain can be installed here, so the MSRV is checked by clippy: any std/core
  # API stabilised after `rust-version` is an error. (Language features are not covered by
  # this lint; edition 2024 and let-chains set the floor, see CONTRIBUTING.md.)
  local v
  v=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  echo "rust-version = $v"
  cargo clippy --workspace --all-targets --locked -- -D clippy::incompatible_msrv
}

doc() {
  RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -Dwarnings" cargo doc --workspace --no-deps --locked
}

package() {
  # Packages every crate and builds each from its .crate file, resolving the unpublished
  # workspace crates locally (cargo's workspace packaging overlay). The verification builds
  # every crate on its own: 14 min on 2 cores from a cold target directory, much less when
  # `cargo test` has already built the dependencies. CHECKS_PACKAGE_VERIFY=0 only packages
  # (metadata, file list, dependency versions: seconds) when the CI budget is tight.
  if [ "${CHECKS_PACKAGE_VERIFY:-1}" = 0 ]; then
    cargo package --workspace --locked --no-verify
  else
    cargo package --workspace --locked
  fi
}

semver() {
  local baseline=${SEMVER_BASELINE:-$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)}
  if [ -z "$baseline" ]; then
    echo "no baseline: set SEMVER_BASELINE to the previous release's git revision (no v* tag exists)"
    return 1
  fi
  if ! command -v cargo-semver-checks >/dev/null 2>&1; then
    echo "installing cargo-semver-checks (cargo install cargo-semver-checks --locked)"
    cargo install cargo-semver-checks --locked --quiet
  fi
  echo "baseline: $baseline ($(git rev-parse --short "$baseline"))"
  # The version in Cargo.toml says which kind of release this is (0.x: a minor bump may
  # break); the check fails when the API changed more than that allows.
  cargo semver-checks check-release --workspace --baseline-rev "$baseline"
}

for s in "${steps[@]}"; do
  case "$s" in
    deny) run "cargo deny check bans licenses sources" deny ;;
    msrv) run "MSRV (clippy::incompatible_msrv)" msrv ;;
    doc) run "cargo doc -Dwarnings" doc ;;
    package) run "cargo package --workspace" package ;;
    semver) run "cargo semver-checks (baseline ${SEMVER_BASELINE:-newest v* tag})" semver ;;
    *) echo "unknown step: $s (deny msrv doc package semver)"; exit 2 ;;
  esac
done

echo "== checks: $((SECONDS - t_all)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
