#!/usr/bin/env bash
# certbound benchmarks side by side with the tools users would pick instead (issue 8).
# One command: bash bench/run.sh
# Installs the peers from their registries into bench/.work/ (npm oidc-provider, PyPI msal,
# pyjwt[crypto] and matplotlib, crates.io azure_identity), builds everything in release mode,
# runs every comparison interleaved and writes BENCHMARKS.md, bench/ratios.png, bench/results.json.
# A peer that cannot be installed is named in BENCHMARKS.md and the run goes on without it.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_WORK:-$ROOT/bench/.work}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
PEERS="$WORK/peers.json"
echo '{}' > "$PEERS"
peer() { # peer NAME OK(0/1) FROM VERSION-OR-ERROR
  python3 - "$PEERS" "$@" <<'PY'
import json, sys
path, name, ok, src, detail = sys.argv[1:6]
d = json.load(open(path))
d[name] = {"ok": ok == "1", "from": src, ("version" if ok == "1" else "error"): detail}
if name == "oidc-provider": d[name]["dir"] = sys.argv[6]
json.dump(d, open(path, "w"))
PY
}

# Python peers (and matplotlib for the chart) in a private virtualenv.
PY=python3
if [ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv" >/dev/null 2>&1; then
  PY="$WORK/venv/bin/python"
else
  log "python3 -m venv failed; using the system python3"
fi
for spec in matplotlib msal "pyjwt[crypto]"; do
  mod=${spec%%[*}; mod=${mod/pyjwt/jwt}
  if ! "$PY" -c "import $mod" 2>/dev/null; then
    log "pip install $spec"
    "$PY" -m pip install -q "$spec" >"$WORK/pip-$mod.log" 2>&1 || log "pip install $spec failed (see $WORK/pip-$mod.log)"
  fi
done
v=$("$PY" -c "import msal; print(msal.__version__)" 2>/dev/null) && peer msal 1 "PyPI msal" "$v" || peer msal 0 "PyPI msal" "pip install msal failed"
v=$("$PY" -c "import jwt; print(jwt.__version__)" 2>/dev/null) && peer pyjwt 1 "PyPI pyjwt[crypto]" "$v" || peer pyjwt 0 "PyPI pyjwt[crypto]" "pip install pyjwt[crypto] failed"

# oidc-provider: the interop peer's server script (interop/oidc-provider, used unmodified) and
# its pinned npm package, installed into bench/.work/oidc-provider.
OIDC="$WORK/oidc-provider"
mkdir -p "$OIDC"
if cp "$ROOT/interop/oidc-provider/server.mjs" "$ROOT/interop/oidc-provider/package.json" "$OIDC/" 2>/dev/null \
   && (cd "$OIDC" && npm install --no-audit --no-fund >"$WORK/npm.log" 2>&1); then
  v=$(node -p "require('$OIDC/node_modules/oidc-provider/package.json').version" 2>/dev/null)
  peer oidc-provider 1 "npm oidc-provider" "$v" "$OIDC"
else
  peer oidc-provider 0 "npm oidc-provider" "npm install failed or interop/oidc-provider missing (see $WORK/npm.log)" "$OIDC"
fi

# Release builds of the committed tree (HEAD, exported to bench/.work/src: the checkout is shared
# and may hold other people's half-done edits); BENCH_SOURCE=worktree builds the working tree.
SRC="$ROOT"
if [ "${BENCH_SOURCE:-head}" = head ] && git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
  SRC="$WORK/src"
  rm -rf "$SRC" && mkdir -p "$SRC" && git -C "$ROOT" archive HEAD | tar -x -C "$SRC"
  log "building commit $(git -C "$ROOT" rev-parse --short HEAD)"
fi
log "cargo build --release (certbound, bench drivers, azure_identity peer)"
(cd "$SRC" && cargo build --release -q -p certbound) || { log "building certbound failed"; exit 1; }
cargo build --release -q --manifest-path "$SRC/bench/rust/Cargo.toml" || { log "building bench/rust failed"; exit 1; }
if cargo build --release -q --manifest-path "$SRC/bench/peers/azure-identity/Cargo.toml" >"$WORK/azure-build.log" 2>&1; then
  v=$(grep -A1 'name = "azure_identity"' "$SRC/bench/peers/azure-identity/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')
  peer azure_identity 1 "crates.io azure_identity" "$v"
else
  peer azure_identity 0 "crates.io azure_identity" "cargo build failed (see $WORK/azure-build.log)"
fi

log "running the comparisons"
"$PY" "$ROOT/bench/harness.py" --work "$WORK" --bin "$CARGO_TARGET_DIR/release" --peers "$PEERS" --root "$ROOT"
rc=$?
[ $rc -eq 0 ] && log "wrote $ROOT/BENCHMARKS.md and $ROOT/bench/ratios.png"
exit $rc
