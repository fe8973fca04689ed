#!/usr/bin/env bash
# Installs django-oauth-toolkit and the Kong client aio-kong into target/interop-venv for the interop tests
# (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/interop-venv
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import oauth2_provider, django, kong" 2>/dev/null; then
  echo "interop virtualenv ready"
  exit 0
fi
mkdir -p target
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian ships venv separately.
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null
  fi
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r interop/requirements.txt
"$venv/bin/python" -c "import oauth2_provider, django; print('django', django.get_version(), 'oauth2_provider', oauth2_provider.__version__)"
