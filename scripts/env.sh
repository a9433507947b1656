# Sourced by the other scripts: what every build here needs, and nothing by hand.

# The cargo target directory outlives clones (CI included): oxigraph's RocksDB takes
# about 18 minutes to build cold on two cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quadmesh/target}"
mkdir -p "$CARGO_TARGET_DIR"

# RocksDB's bindings need clang and libclang.
ensure_build_deps() {
    if command -v clang >/dev/null 2>&1 && ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
        return
    fi
    echo "installing clang and libclang-dev (needed to build RocksDB)..." >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-dev >/dev/null
}
ensure_build_deps
