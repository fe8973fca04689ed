#!/usr/bin/env bash
# TLS termination and balancing overhead, side by side in one run on this machine: nginx (one worker) and a
# Portcullis node (one proxy worker, the certificate as its default) terminate TLS with the same ECDSA
# P-256 certificate
# in front of the same upstream (`demo echo`), keep-alive and with a new connection (full handshake) per
# request; then Portcullis's plain listener to a Service on the upstream directly against a Service on an
# Upstream with that one Target. Gateways are pinned to core 1, wrk and the upstream to core 0. Installs
# nginx and wrk when missing. Prints Markdown rows. Usage: SECONDS_PER_RUN=10 RUNS=3 bench/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER_RUN:-10}"
runs="${RUNS:-3}"
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p control-plane -p data-plane -p demo
. bench/lib.sh

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

up=$(free_port)
taskset -c 0 target/release/demo echo --listen "127.0.0.1:$up" 2>"$dir/echo.log" & pids+=($!)
wait_http "http://127.0.0.1:$up/"

nginx_port=$(free_port)
cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  upstream echo { server 127.0.0.1:$up; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000;
    location / { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
taskset -c 1 nginx -c "$dir/nginx.conf" -e "$dir/nginx-error.log" & pids+=($!)
wait_http "https://127.0.0.1:$nginx_port/"

proxy=$(free_port); tls=$(free_port); status=$(free_port)
start_control_plane
curl -sf -X POST "$A/services" -d name=direct -d "url=http://127.0.0.1:$up" >/dev/null
curl -sf -X POST "$A/services/direct/routes" -d 'paths[]=/' -d name=direct >/dev/null
curl -sf -X POST "$A/upstreams" -d name=echo.internal >/dev/null
curl -sf -X POST "$A/upstreams/echo.internal/targets" -d "target=127.0.0.1:$up" >/dev/null
curl -sf -X POST "$A/services" -d name=balanced -d host=echo.internal -d port=80 >/dev/null
curl -sf -X POST "$A/services/balanced/routes" -d 'paths[]=/balanced' -d name=balanced -d strip_path=false >/dev/null
start_node --proxy-listen "127.0.0.1:$proxy" --proxy-listen-tls "127.0.0.1:$tls" \
  --proxy-tls-cert-file "$dir/cert.pem" --proxy-tls-key-file "$dir/key.pem" --status-listen "127.0.0.1:$status"
wait_http "https://127.0.0.1:$tls/balanced"
wait_http "http://127.0.0.1:$proxy/balanced"

# Median requests/s of $runs runs of wrk with the given arguments.
rps() {
  for _ in $(seq "$runs"); do
    taskset -c 0 wrk -t1 -c64 -d"${secs}s" "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}'
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3"; }
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}×')"; }

echo "| measurement | requests/s | ratio |"
echo "|---|---:|---:|"
n=$(rps "https://127.0.0.1:$nginx_port/"); p=$(rps "https://127.0.0.1:$tls/")
row "nginx, TLS, keep-alive" "$n" "1.00×"; row "Portcullis, TLS, keep-alive" "$p" "$(ratio "$p" "$n")"
n=$(rps -H 'Connection: close' "https://127.0.0.1:$nginx_port/"); p=$(rps -H 'Connection: close' "https://127.0.0.1:$tls/")
row "nginx, TLS, new connection per request" "$n" "1.00×"; row "Portcullis, TLS, new connection per request" "$p" "$(ratio "$p" "$n")"
d=$(rps "http://127.0.0.1:$proxy/"); b=$(rps "http://127.0.0.1:$proxy/balanced")
row "Portcullis, plain, Service on the upstream" "$d" "1.00×"; row "Portcullis, plain, Service on a one-Target Upstream" "$b" "$(ratio "$b" "$d")"
