#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]
# The toolchain here is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z sanitizer flags.
# New corpus entries that reach new code land in fuzz/corpus/<target>/ (commit the small ones);
# crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"; shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list); fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t (${secs}s)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss|==|SUMMARY|#[0-9]+ +DONE)" || true
done
