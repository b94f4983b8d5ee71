# shellcheck shell=bash
# Sourced by .ci/run: the output helper and the setup steps. Every setup function is idempotent
# and fast when everything is already installed, and runs at most once per invocation, so each
# leg calls the ones it needs and a full run pays for them once.

# Each step says when it began (seconds since this run started): the slow steps show in the log.
step() { printf '\n=== %s  [%d s]\n' "$*" "$SECONDS"; }
die() { echo "$*" >&2; exit 1; }

# Debian packages by group. "host": the C/C++ toolchain, GoogleTest, valgrind, CMake, Python's
# venv, curl and openssl (the HTTP API examples, the TLS test); "cross": cross compilers and
# QEMU for the other architectures and the firmware.
apt_packages_host=(gcc g++ make cmake pkg-config valgrind python3 python3-venv libgtest-dev curl openssl)
# qemu-system-arm comes from bookworm (7.2); naming qemu-utils from the same release keeps a
# newer qemu-utils from blocking it.
apt_packages_cross=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-s390x-linux-gnu
  libc6-dev-s390x-cross gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
  qemu-system-arm qemu-utils/bookworm qemu-system-misc gcc-riscv64-unknown-elf
  picolibc-riscv64-unknown-elf)

# Does every tool of a group exist?
apt_group_present() {
  local tool
  case "$1" in
    host)
      for tool in cmake valgrind pkg-config g++ python3 curl openssl; do command -v "$tool" >/dev/null || return 1; done
      [ -f /usr/lib/x86_64-linux-gnu/libgtest.a ] || return 1
      python3 -c "import venv, ensurepip" 2>/dev/null || return 1 ;;
    cross)
      for tool in qemu-aarch64 qemu-s390x qemu-system-arm aarch64-linux-gnu-gcc s390x-linux-gnu-gcc \
                  arm-none-eabi-gcc qemu-system-riscv32 riscv64-unknown-elf-gcc; do
        command -v "$tool" >/dev/null || return 1
      done
      [ -f /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs ] || return 1 ;;
    *) die "unknown apt group $1" ;;
  esac
}

# setup_apt GROUP...: installs the packages of the named groups (one apt-get call) if any tool
# of them is missing, then prints the versions of the tools the groups provide.
setup_apt() {
  local want=() group need=0 pkgs=()
  for group in "$@"; do
    case " ${SETUP_DONE_APT:-} " in *" $group "*) continue ;; esac
    want+=("$group")
  done
  [ "${#want[@]}" -gt 0 ] || return 0
  local what=""
  for group in "${want[@]}"; do
    case "$group" in
      host) what+="${what:+; }C/C++ toolchain, GoogleTest, valgrind, CMake, Python venv" ;;
      cross) what+="${what:+; }cross compilers, QEMU" ;;
    esac
  done
  step "system packages ($what)"
  for group in "${want[@]}"; do
    apt_group_present "$group" || need=1
    case "$group" in
      host) pkgs+=("${apt_packages_host[@]}") ;;
      cross) pkgs+=("${apt_packages_cross[@]}") ;;
    esac
  done
  if [ "$need" = 1 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades --no-install-recommends \
      "${pkgs[@]}" >/dev/null
  fi
  for group in "${want[@]}"; do
    apt_group_present "$group" || die "apt group $group: tools still missing after apt-get install"
    case "$group" in
      host) gcc --version | head -n 1; cmake --version | head -n 1; valgrind --version ;;
      cross) qemu-system-arm --version | head -n 1; riscv64-unknown-elf-gcc --version | head -n 1 ;;
    esac
    SETUP_DONE_APT="${SETUP_DONE_APT:-} $group"
  done
}

# nats-server (Debian's 2.9, JetStream) for the replication tests (fleet/tests, the Python
# replication suite): they start their own servers on loopback ports and stop them. The
# package's systemd unit is not needed (and is not started where there is no systemd).
setup_nats() {
  [ -z "${SETUP_DONE_NATS:-}" ] || return 0
  if ! command -v nats-server >/dev/null; then
    step "system packages (nats-server)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null
  fi
  command -v nats-server >/dev/null || die "nats-server is still missing after apt-get install"
  nats-server --version
  SETUP_DONE_NATS=1
}

# Node (>= 20, with WASI) runs the wasm32-wasip1 tests (scripts/wasi-run).
setup_node() {
  [ -z "${SETUP_DONE_NODE:-}" ] || return 0
  command -v node >/dev/null || die "node (>= 20, with WASI) is required for the wasm32 leg"
  node --version
  SETUP_DONE_NODE=1
}

# The stable toolchain with rustfmt and clippy.
setup_rust() {
  [ -z "${SETUP_DONE_RUST:-}" ] || return 0
  step "toolchain"
  command -v cargo >/dev/null || die "cargo not found: this machine needs rustup's stable toolchain"
  rustup component add rustfmt clippy >/dev/null
  cargo --version
  rustc --version
  SETUP_DONE_RUST=1
}

# setup_targets TRIPLE...: rustup targets (rustup skips the installed ones quickly).
setup_targets() {
  local t missing=()
  setup_rust
  for t in "$@"; do
    case " ${SETUP_DONE_TARGETS:-} " in *" $t "*) ;; *) missing+=("$t") ;; esac
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  rustup target add "${missing[@]}" >/dev/null
  SETUP_DONE_TARGETS="${SETUP_DONE_TARGETS:-} ${missing[*]}"
}

all_targets=(thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi riscv32imac-unknown-none-elf
  aarch64-unknown-linux-gnu
  s390x-unknown-linux-gnu wasm32-wasip1)

# Everything every leg needs, in one go (what a plain `bash .ci/run` does first).
setup_all() {
  setup_apt host cross
  setup_nats
  setup_node
  setup_rust
  setup_targets "${all_targets[@]}"
}
