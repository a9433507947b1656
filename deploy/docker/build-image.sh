#!/usr/bin/env bash
# Builds the quadmesh image on a machine that cannot pull images: the binary and the
# shared libraries it links, on an empty base, imported with `docker import`. The result
# has the layout of deploy/docker/Dockerfile's image: /usr/local/bin/quadmesh as the
# entry point, `serve` as the command, user 10001, /data as the data volume, port 10035.
# Usage: deploy/docker/build-image.sh [TAG]   (default quadmesh:local)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build -q -p quadmesh
binary="$CARGO_TARGET_DIR/debug/quadmesh"
tag="${1:-quadmesh:local}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$binary" "$root/usr/local/bin/quadmesh"
strip "$root/usr/local/bin/quadmesh" 2>/dev/null || true
for lib in $(ldd "$binary" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
mkdir -p "$root/data" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nquadmesh:x:10001:10001:quadmesh:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nquadmesh:x:10001:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
# CA certificates, for the HTTP client's TLS setup (peers speak plain HTTP on the
# cluster network; the bundle is public data, no secret).
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

# /data belongs to the quadmesh user; everything else to root.
tar -C "$root" --numeric-owner --owner=0 --group=0 --exclude=./data -cf "$root.tar" .
tar -C "$root" --numeric-owner --owner=10001 --group=10001 -rf "$root.tar" ./data
docker import \
    --change 'USER 10001:10001' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 10035' \
    --change 'VOLUME /data' \
    --change 'ENV QUADMESH_DATA_DIR=/data QUADMESH_BIND=0.0.0.0 QUADMESH_PORT=10035' \
    --change 'ENTRYPOINT ["/usr/local/bin/quadmesh"]' \
    --change 'CMD ["serve"]' \
    "$root.tar" "$tag" >/dev/null
rm -f "$root.tar"
echo "built $tag"
