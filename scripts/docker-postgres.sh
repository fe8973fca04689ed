#!/usr/bin/env bash
# Makes the image portcullis/postgres:local without a registry, for the compose cluster's HA profile
# (docker-compose.ha.yml) on machines that cannot pull the official postgres image: this machine's
# PostgreSQL server binaries (Debian's postgresql package, installed when missing), the libraries they
# load, the time zone data, and a data dir initialised here the way the official image does it from
# POSTGRES_USER=portcullis, POSTGRES_DB=portcullis and POSTGRES_PASSWORD_FILE (docker/secrets/
# postgres-password). No shell. Loaded with `docker import`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
fi
pgdir=$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -1)
pgdir=${pgdir%/}
ver=$(basename "$pgdir")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
mkdir -p "$root$pgdir" "$root/usr/share/postgresql" "$root/usr/share/zoneinfo" "$root/tmp" \
  "$root/var/lib/postgresql/data" "$root/etc"
cp -a "$pgdir/bin" "$pgdir/lib" "$root$pgdir/"
# Without the LLVM JIT (and so without libLLVM): PostgreSQL runs without it (jit is off then).
rm -rf "$root$pgdir"/lib/llvmjit* "$root$pgdir/lib/bitcode"
cp -a "/usr/share/postgresql/$ver" "$root/usr/share/postgresql/"
cp -a /usr/share/zoneinfo/. "$root/usr/share/zoneinfo/"
chmod 1777 "$root/tmp"
find "$root$pgdir/bin" "$root$pgdir/lib" -type f | while read -r f; do
  ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\s*\/.*ld-linux/ {print $1}'  || true
done | sort -u | while read -r lib; do
  [ -n "$lib" ] && [ -e "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
mkdir -p "$root/lib64"
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
uid=$(id -u postgres)
gid=$(id -g postgres)
printf 'root:x:0:0:root:/root:/sbin/nologin\npostgres:x:%s:%s:postgres:/var/lib/postgresql:/sbin/nologin\n' \
  "$uid" "$gid" > "$root/etc/passwd"
printf 'root:x:0:\npostgres:x:%s:\n' "$gid" > "$root/etc/group"

data="$root/var/lib/postgresql/data"
chown -R postgres:postgres "$root/var/lib/postgresql"
pwfile="$root/tmp/pw"
tr -d '\n' < docker/secrets/postgres-password > "$pwfile"
chown postgres "$pwfile"
runuser -u postgres -- "$pgdir/bin/initdb" -D "$data" -U portcullis --pwfile "$pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 --locale=C -E UTF8 --no-sync >/dev/null
rm -f "$pwfile"
echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
echo "CREATE DATABASE portcullis;" | runuser -u postgres -- "$pgdir/bin/postgres" --single -D "$data" postgres >/dev/null 2>&1
tar -C "$root" -c . | docker import \
  --change "USER postgres" \
  --change "ENV PATH=$pgdir/bin" \
  --change "EXPOSE 5432" \
  --change 'CMD ["postgres", "-D", "/var/lib/postgresql/data", "-c", "listen_addresses=*", "-k", "/tmp"]' \
  - portcullis/postgres:local >/dev/null
echo "image portcullis/postgres:local (PostgreSQL $ver): $(du -sh "$root" | cut -f1)"
