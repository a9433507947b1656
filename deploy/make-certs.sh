#!/usr/bin/env sh
# A private CA and one server certificate for quadmesh, with openssl: enough to try TLS
# locally, on Kubernetes or on Swarm (in production, use your CA or cert-manager).
#   deploy/make-certs.sh DIR NAME...
# NAMEs (DNS names or IP addresses) go into the certificate; the first is the common
# name. Include the peer name (QUADMESH_TLS_PEER_NAME) and every name clients use. The
# CA (DIR/ca.crt, DIR/ca.key) is made once and reused; the certificate is made anew
# (DIR/tls.crt, DIR/tls.key), which a running server picks up without a restart.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME..." >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
umask 077
if [ ! -s ca.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout ca.key -out ca.crt -subj "/CN=quadmesh CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
san=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) kind=DNS ;;
        *) kind=IP ;;
    esac
    case "$name" in *:*) kind=IP ;; esac
    san="${san:+$san,}$kind:$name"
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout tls.key.new -out tls.csr -subj "/CN=$1" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extfile tls.ext -out tls.crt.new 2>/dev/null
rm -f tls.csr tls.ext
# Key first, then certificate, each renamed into place whole.
mv tls.key.new tls.key
mv tls.crt.new tls.crt
chmod 644 ca.crt tls.crt
echo "$dir: ca.crt, tls.crt, tls.key for $san"
