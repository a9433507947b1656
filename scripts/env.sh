# Sourced by the other scripts: what every build here needs, and nothing by hand.

# The cargo target directory outlives clones (CI included): oxigraph's RocksDB takes
# about 18 minutes to build cold on two cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quadmesh/target}"
mkdir -p "$CARGO_TARGET_DIR"

# Installs Debian packages (apt-get) by name.
install_debian_packages() {
    echo "installing $* ..." >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# ensure_commands COMMAND:PACKAGE ...: installs the Debian package of each missing
# command, and fails if the command is still missing after that. Tests never skip for
# want of a tool: what they need is installed here, or the test command stops.
ensure_commands() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] || install_debian_packages "${missing[@]}"
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || {
            echo "${pair%%:*} is still missing after installing ${pair#*:}" >&2
            return 1
        }
    done
}

# RocksDB's bindings need clang and libclang.
ensure_build_deps() {
    if command -v clang >/dev/null 2>&1 && ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
        return
    fi
    install_debian_packages clang libclang-dev
}
ensure_build_deps
