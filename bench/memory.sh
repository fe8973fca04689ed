#!/usr/bin/env bash
# Data-plane memory with a large configuration: a control plane and one data plane (release binaries, real
# processes, loopback), RSS of the node idle, after the first full sync of N routes (default 10,000), after
# 20 one-route writes (deltas), and after the same N routes are replaced by N others (a second full-size
# change). Prints one Markdown row per stage. Usage: bench/memory.sh [routes]
set -euo pipefail
cd "$(dirname "$0")/.."
routes="${1:-10000}"
cargo build --release -q -p control-plane -p data-plane
dir=$(mktemp -d)
cleanup() { kill "$cp" "$dp" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(free_port); cluster=$(free_port); proxy=$(free_port); status=$(free_port)
target/release/control-plane --data-dir "$dir/cp" --admin-listen "127.0.0.1:$admin" \
  --cluster-listen "127.0.0.1:$cluster" --manager-listen off 2>"$dir/cp.log" & cp=$!
A="http://127.0.0.1:$admin"
for _ in $(seq 200); do curl -sf "$A/status" >/dev/null && break; sleep 0.05; done
token=$(curl -sf -X POST "$A/clustering/pairing-tokens" -H 'content-type: application/json' -d '{"ttl":600}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
target/release/data-plane --data-dir "$dir/dp" --control-plane "127.0.0.1:$cluster" --pairing-token "$token" \
  --proxy-listen "127.0.0.1:$proxy" --proxy-listen-tls off --status-listen "127.0.0.1:$status" 2>"$dir/dp.log" & dp=$!
S="http://127.0.0.1:$status"
version() { curl -sf "$S/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["version"] or 0)' 2>/dev/null || echo 0; }
cp_version() { curl -sf "$A/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config_version"])'; }
wait_synced() { local want; want=$(cp_version); for _ in $(seq 1200); do [ "$(version)" -ge "$want" ] && return; sleep 0.05; done; echo "node did not sync" >&2; exit 1; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$dp/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$dp/status"; }
doc() { python3 -c "
import json,sys
n,tag=int(sys.argv[1]),sys.argv[2]
print(json.dumps({'_format_version':'3.0','services':[{'name':'up','url':'http://127.0.0.1:9','routes':[{'name':f'{tag}{i}','paths':[f'/{tag}/{i}']} for i in range(n)]}]}))" "$@"; }
for _ in $(seq 200); do curl -sf "$S/status" >/dev/null && break; sleep 0.05; done
sleep 1
echo "| stage | RSS | peak RSS |"
echo "|---|---:|---:|"
echo "| idle, paired, empty config | $(rss) MiB | $(hwm) MiB |"
doc "$routes" a > "$dir/a.json"
curl -sf -X POST "$A/config" -H 'content-type: application/json' --data-binary "@$dir/a.json" >/dev/null
wait_synced; sleep 2
echo "| $routes routes (first full sync) | $(rss) MiB | $(hwm) MiB |"
for i in $(seq 20); do
  curl -sf -X POST "$A/services/up/routes" -H 'content-type: application/json' -d "{\"paths\":[\"/w/$i\"]}" >/dev/null
done
wait_synced; sleep 2
echo "| + 20 one-route writes (deltas) | $(rss) MiB | $(hwm) MiB |"
doc "$routes" b > "$dir/b.json"
curl -sf -X POST "$A/config" -H 'content-type: application/json' --data-binary "@$dir/b.json" >/dev/null
wait_synced; sleep 2
echo "| all $routes routes replaced | $(rss) MiB | $(hwm) MiB |"
