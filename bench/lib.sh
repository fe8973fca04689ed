# Shared by the bench scripts (sourced, not run): a scratch directory removed on exit with every process
# added to `pids`, free ports, waiting for an HTTP endpoint, and a control plane with a paired node.

dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 400); do curl -skf -o /dev/null "$1" && return; sleep 0.05; done; echo "$1 did not answer" >&2; exit 1; }

# Starts a control plane on core 0; sets A (its Admin API URL) and cluster (its cluster port).
start_control_plane() {
  local admin; admin=$(free_port); cluster=$(free_port)
  taskset -c 0 target/release/control-plane --data-dir "$dir/cp" --admin-listen "127.0.0.1:$admin" \
    --cluster-listen "127.0.0.1:$cluster" --manager-listen off 2>"$dir/cp.log" & pids+=($!)
  A="http://127.0.0.1:$admin"
  wait_http "$A/status"
}

# Starts a node on core 1 with one proxy worker, paired to the control plane, with extra flags "$@".
start_node() {
  local token
  token=$(curl -sf -X POST "$A/clustering/pairing-tokens" -H 'content-type: application/json' -d '{"ttl":600}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  printf '%s' "$token" > "$dir/pairing-token"
  taskset -c 1 target/release/data-plane --data-dir "$dir/dp" --control-plane "127.0.0.1:$cluster" \
    --pairing-token-file "$dir/pairing-token" --workers 1 "$@" 2>"$dir/dp.log" & pids+=($!)
}
