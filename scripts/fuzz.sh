#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each and prints how many inputs each ran.
# Parsing runs on a thread with a tokio worker's 2 MiB stack (fuzz/src/lib.rs) and inputs may be up to
# 1 MiB, so recursion that would overflow a worker is found. The committed corpus (fuzz/corpus/<target>)
# seeds each run and is never written; new inputs go to a scratch copy. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script.
# Usage: scripts/fuzz.sh [seconds-per-target] [target ...]
# Installs cargo-fuzz (crates.io) when missing. The project's one toolchain is stable; cargo-fuzz's -Z
# flags are enabled with RUSTC_BOOTSTRAP=1, and no sanitizer is used (the code under test has no unsafe).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  log="$work/$t.log"
  if ! cargo fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=1048576 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (input saved under fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  total=$((total + ${runs:-0}))
  printf 'fuzz: %-22s %10s inputs in %s s, no crash\n' "$t" "${runs:-?}" "$seconds"
done
echo "fuzz: ${#targets[@]} targets, $total inputs, 0 crashes"
