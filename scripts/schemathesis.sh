#!/usr/bin/env bash
# Fuzzes the Admin API from its own OpenAPI document with Schemathesis (every check on, per-operation
# exceptions in scripts/schemathesis.toml): a real control plane on free ports with an admin token, a
# bounded number of examples per operation, and the summary of what was sent. Fails on any server
# error or any mismatch between the document and the server.
# Usage: scripts/schemathesis.sh [max-examples-per-operation]   (needs target/debug/control-plane)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$venv" 2>/dev/null || {
    (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-schemathesis.txt
fi

work=$(mktemp -d)
token="schemathesis-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" > "$work/admin-token"
chmod 600 "$work/admin-token"
target/debug/control-plane --data-dir "$work/cp" --admin-listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 --manager-listen off \
  --admin-token-file "$work/admin-token" --log-format json 2> "$work/cp.log" &
cp_pid=$!
trap 'kill "$cp_pid" 2>/dev/null; wait "$cp_pid" 2>/dev/null; rm -rf "$work"' EXIT
admin=""
for _ in $(seq 1 100); do
  admin=$(sed -n 's/.*"message":"control plane started".*"admin":"\([^"]*\)".*/\1/p' "$work/cp.log" | head -n1)
  [ -n "$admin" ] && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/cp.log"; exit 1; }
  sleep 0.1
done
[ -n "$admin" ] || { echo "control plane did not start"; cat "$work/cp.log"; exit 1; }

started=$(date +%s)
status=0
# Run from the scratch dir: Schemathesis and Hypothesis keep caches in the working directory, and a
# cache would make one run depend on the last.
repo=$PWD
(cd "$work" && "$repo/$venv/bin/schemathesis" --config-file "$repo/scripts/schemathesis.toml" run "http://$admin/openapi.json" \
  -H "Authorization: Bearer $token" --max-examples "$examples" --workers 1 \
  --seed "${SCHEMATHESIS_SEED:-1}" --no-color > "$work/report.txt" 2>&1) || status=$?
grep -E "^(API Operations|Test cases|  Selected|  Tested|.*generated|.*passed|.*failed)" "$work/report.txt" || true
if [ "$status" -ne 0 ]; then
  cat "$work/report.txt"
  echo "schemathesis: FAILED (exit $status)"
  exit "$status"
fi
echo "schemathesis: 0 failures, $(grep -oE '[0-9]+ generated' "$work/report.txt" | head -n1) test cases in $(( $(date +%s) - started )) s"
