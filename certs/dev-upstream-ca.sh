#!/usr/bin/env bash
# Makes a development CA and a server certificate signed by it, for trying HTTPS upstreams locally.
# Usage: certs/dev-upstream-ca.sh OUT_DIR HOSTNAME   (never use these files in production)
set -euo pipefail
out=${1:?usage: $0 OUT_DIR HOSTNAME}
host=${2:?usage: $0 OUT_DIR HOSTNAME}
mkdir -p "$out"
cd "$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=Portcullis development upstream CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$host" > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile ext.cnf -out server.pem 2>/dev/null
chmod 600 ca.key server.key
rm -f server.csr ext.cnf ca.srl
echo "wrote $out/ca.pem, $out/server.pem, $out/server.key"
