#!/usr/bin/env bash
# Makes the runtime base image portcullis/runtime-base:local without a registry: a root filesystem with
# only what the binaries load (the glibc and libgcc they link against, copied from this machine), the
# CA bundle, an unprivileged user 65532 ("nonroot", as in distroless images) and /tmp; no shell, no
# package manager. Loaded with `docker import`.
# Usage: scripts/docker-base.sh [dir-with-the-binaries]
set -euo pipefail
cd "$(dirname "$0")/.."
bins="${1:-target/release}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
for b in control-plane data-plane demo portcullis-probe; do
  ldd "$bins/$b" | awk '/=>/ {print $3} /^\s*\/.*ld-linux/ {print $1}'
done | sort -u | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The dynamic loader is found by its canonical path too.
if [ -d "$root/lib/x86_64-linux-gnu" ] && [ ! -e "$root/lib64/ld-linux-x86-64.so.2" ]; then
  mkdir -p "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
chmod 1777 "$root/tmp"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chown 65532:65532 "$root/home/nonroot"
tar -C "$root" -c . | docker import - portcullis/runtime-base:local >/dev/null
echo "base portcullis/runtime-base:local: $(du -sh "$root" | cut -f1) ($(find "$root" -type f | wc -l) files)"
