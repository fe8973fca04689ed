#!/usr/bin/env bash
# gRPC unary calls/s and WebSocket message round trips/s through a Portcullis node (one proxy worker,
# pinned to core 1) against the same calls made directly to the upstreams, interleaved in one run. The
# upstreams and the clients run in `portcullis-bench streams`, pinned to core 0 with the control plane.
# Prints a Markdown table. Usage: SECONDS_PER_RUN=10 RUNS=3 CONCURRENCY=32 bench/streams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER_RUN:-10}"
runs="${RUNS:-3}"
concurrency="${CONCURRENCY:-32}"
cargo build --release -q -p control-plane -p data-plane -p portcullis-bench
. bench/lib.sh

proxy=$(free_port); status=$(free_port)
start_control_plane
start_node --proxy-listen "127.0.0.1:$proxy" --proxy-listen-tls off --status-listen "127.0.0.1:$status"
wait_http "http://127.0.0.1:$status/status"
taskset -c 0 target/release/portcullis-bench streams --admin "$A" --proxy "127.0.0.1:$proxy" \
  --seconds "$secs" --runs "$runs" --concurrency "$concurrency"
