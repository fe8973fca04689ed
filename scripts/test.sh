#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, in-process end-to-end tests, process-level tests with
# the real binaries, and interop tests against a real OAuth 2.0 server (django-oauth-toolkit, installed here
# into a virtualenv under target/). Needs only the Rust toolchain and python3 with pip/venv; installs curl,
# PostgreSQL's server binaries (Debian's postgresql package) and Chromium with chromedriver when they are
# missing, promtool (Debian's prometheus package), Firefox ESR and geckodriver (from crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone gains nothing from incremental compilation caches, and they cost about a GiB of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The quickstart test runs the README's printed curl commands in a shell.
if ! command -v curl >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing curl"
  (apt-get update -qq && apt-get install -y -qq curl) >/dev/null
fi

# The PostgreSQL tests start throwaway servers of their own from Debian's server binaries.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  echo "== installing PostgreSQL (server binaries for the PostgreSQL tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
fi

# The rate-limiting tests start throwaway Redis servers of their own from Debian's redis-server.
if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing redis-server (the rate-limiting tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
fi

# The control plane's /metrics is checked with promtool (Debian's prometheus package; its server is not started).
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing prometheus (promtool, for the metrics test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null ||
    echo "could not install prometheus; the metrics test will print SKIPPED for promtool"
fi

# The sign-in test drives a real headless browser: Debian's Chromium and its WebDriver.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing Chromium and chromedriver (the real-browser sign-in test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null ||
    echo "could not install chromium; the real-browser test will print SKIPPED"
fi

# The console's browser tests run in Firefox too: Debian's Firefox ESR, and geckodriver (Firefox's WebDriver,
# not packaged by Debian) built from crates.io into cargo's own bin directory.
if ! command -v firefox-esr >/dev/null && ! command -v firefox >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing Firefox ESR (the console's browser tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr) >/dev/null ||
    echo "could not install firefox-esr; the console's Firefox tests will print SKIPPED"
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v geckodriver >/dev/null; then
  echo "== building geckodriver (the console's browser tests in Firefox)"
  cargo install --quiet --locked geckodriver@0.37.1 ||
    echo "could not build geckodriver; the console's Firefox tests will print SKIPPED"
fi

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets -- -D warnings

echo "== build (binaries are used by the process-level tests)"
cargo build --workspace --bins

echo "== interop identity provider (django-oauth-toolkit)"
scripts/interop-setup.sh

echo "== Admin API against its OpenAPI document (Schemathesis, every check)"
scripts/schemathesis.sh 25

echo "== fuzz targets, a short run of each (scripts/fuzz.sh 8)"
scripts/fuzz.sh 8
# The fuzz build (about 2 GB) is not used again by the suite: its space is freed before the tests build.
rm -rf fuzz/target

# Tests that need something a machine may lack (a Docker engine, permission to mount a tmpfs, Chromium) run in a
# step of their own with their output shown, so their SKIPPED lines and figures are seen.
can_skip=(a_node_on_a_ the_compose_cluster real_browser:: console_browser::)

echo "== tests"
PORTCULLIS_INTEROP_PYTHON="$PWD/target/interop-venv/bin/python" cargo test --workspace -- --test-threads=4 \
  "${can_skip[@]/#/--skip=}"

echo "== disk and container tests (output shown)"
cargo test -p tests --test e2e -- --nocapture --test-threads=1 "${can_skip[@]}"
