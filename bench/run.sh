#!/usr/bin/env bash
# The benchmark suite in one command: installs nginx, HAProxy, Apache httpd with mod_oauth2, Redis and wrk (Debian
# packages) when missing, builds release binaries, runs the router micro-benchmark (criterion) and every hot-path, cold-path, propagation and
# snapshot measurement, and writes BENCHMARKS.md. Ratios compare columns measured in the same run.
#   SECONDS_PER_RUN=20 RUNS=3 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v haproxy >/dev/null || need+=(haproxy)
command -v redis-server >/dev/null || need+=(redis-server)
command -v apache2 >/dev/null || need+=(apache2)
[ -e /usr/lib/apache2/modules/mod_oauth2.so ] || need+=(libapache2-mod-oauth2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -p control-plane -p data-plane -p portcullis-bench
# The release profile reuses the artifacts built above instead of compiling everything again for `bench`.
cargo bench --profile release -p data-plane --bench router -- --warm-up-time 1 --measurement-time 3
target/release/portcullis-bench run --seconds "${SECONDS_PER_RUN:-20}" --runs "${RUNS:-3}" --out BENCHMARKS.md
