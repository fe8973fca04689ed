#!/usr/bin/env bash
# Builds the image portcullis:local with the repository's Dockerfile on a machine that cannot reach an
# image registry: the binaries are built here (release, or the debug build the tests already have) and
# copied in (BINARIES=prebuilt), and the runtime base is made here from this machine's own glibc and
# libgcc (scripts/docker-base.sh) instead of pulled.
# Usage: scripts/docker-build.sh [release|debug]     prints the image's size
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
case "$profile" in
  release) cargo build --release --locked -p control-plane -p data-plane -p demo --bins ;;
  debug) cargo build --locked -p control-plane -p data-plane -p demo --bins ;;
  *) echo "usage: $0 [release|debug]" >&2; exit 2 ;;
esac
scripts/docker-base.sh "target/$profile"
# BuildKit builds only the stages the image needs (so the compiler stage's base is never pulled): through
# buildx where the docker CLI has it, else through a CLI with BuildKit built in (docker 20.10).
if docker buildx version >/dev/null 2>&1; then
  build=(docker buildx build --load)
elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
  build=(env DOCKER_BUILDKIT=1 /usr/bin/docker build)
else
  build=(env DOCKER_BUILDKIT=1 docker build)
fi
"${build[@]}" --quiet \
  --build-arg RUNTIME_IMAGE=portcullis/runtime-base:local \
  --build-arg BINARIES=prebuilt \
  --build-arg PREBUILT_DIR="target/$profile" \
  -t portcullis:local . >/dev/null
size=$(docker image inspect portcullis:local --format '{{.Size}}')
echo "image portcullis:local ($profile binaries): $((size / 1024 / 1024)) MiB"
