#!/usr/bin/env bash
# Reproducible release build: the `certbound` binary built with `cargo auditable` (the
# dependency tree embedded in the binary, readable with `cargo audit bin` / syft / trivy)
# and a CycloneDX SBOM of the workspace, both written to dist/.
# Installs cargo-auditable and cargo-cyclonedx from crates.io when they are missing.
# Usage: bash scripts/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Reproducibility: no timestamps or local paths leak into the artefacts.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/certbound --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
target_dir="${CARGO_TARGET_DIR:-target}"
dist=dist
version=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="certbound"))')

step() { # step NAME COMMAND…: run, print the time it took
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  "$@"
  echo "== $name: ok ($((SECONDS - t0)) s)"
}

# The API against the previous release (SEMVER_BASELINE or the newest v* tag): a release whose
# version does not say what changed stops here. RELEASE_SEMVER=0 skips it for the first release.
if [ "${RELEASE_SEMVER:-1}" != 0 ]; then
  step "semver" bash scripts/checks.sh semver
fi

command -v cargo-auditable >/dev/null 2>&1 || step "install cargo-auditable" cargo install cargo-auditable --locked
command -v cargo-cyclonedx >/dev/null 2>&1 || step "install cargo-cyclonedx" cargo install cargo-cyclonedx --locked

step "cargo auditable build --release" cargo auditable build --release --locked --bin certbound

rm -rf "$dist"; mkdir -p "$dist"
install -m 0755 "$target_dir/release/certbound" "$dist/certbound-$version-$(uname -m)-linux-gnu"

# One SBOM per crate lands next to its Cargo.toml; collect them into dist/.
host=$(rustc -vV | sed -n 's/^host: //p')
step "cargo cyclonedx" cargo cyclonedx --format json --spec-version 1.5 --target "$host"
find . -name '*.cdx.json' -not -path './target/*' -not -path "./$dist/*" -not -path './fuzz/*' \
  -exec mv -t "$dist/" {} +

# The container image (buildah, no base image pulled): non-root, the auditable binary.
step "image" bash scripts/image.sh "$dist/certbound-$version-$(uname -m)-linux-gnu" "certbound:$version"

(cd "$dist" && sha256sum -- * > SHA256SUMS)
echo "dist/:"; ls -l "$dist"
