# shellcheck shell=bash
# Leg "miri": Miri (nightly) over the kernel's unit tests, on x86_64 and on big-endian s390x
# (Miri interprets a foreign target without QEMU), and over the C ABI crate's unit tests and
# its FFI test (bindings/tests/miri_ffi.rs: NULL, short, misaligned and empty buffers through
# every kind of export, and a hosted database in a temporary directory, which is why the
# C ABI runs have the file system: -Zmiri-disable-isolation). Tests too slow for Miri carry
# #[cfg_attr(miri, ignore)] with the reason.

# The nightly toolchain with Miri and the standard library's source (Miri builds its own
# sysroot per target).
miri_setup() {
  [ -z "${SETUP_DONE_MIRI:-}" ] || return 0
  step "nightly toolchain with Miri"
  if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
  fi
  rustup component add miri rust-src --toolchain nightly >/dev/null
  cargo +nightly miri --version
  cargo +nightly miri setup
  SETUP_DONE_MIRI=1
}

leg_miri() {
  setup_rust
  miri_setup
  step "Miri: kernel unit tests (x86_64)"
  cargo +nightly miri test -p valori-kernel --lib
  step "Miri: C ABI crate unit tests and FFI pointer tests (x86_64)"
  # Without the fleet feature: Miri cannot run the NATS client's TLS and socket code, and the
  # followers' C functions only translate to it (their tests run with real servers).
  MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation" \
    cargo +nightly miri test -p valori-c --no-default-features --features hosted --lib --test miri_ffi
  step "Miri on big-endian s390x: kernel unit tests and FFI pointer tests"
  # .cargo/config.toml names qemu as the s390x runner; Miri needs its own.
  local runner
  runner="$(rustup +nightly which cargo-miri) runner"
  CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER="$runner" \
    cargo +nightly miri test --target s390x-unknown-linux-gnu -p valori-kernel --lib
  CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER="$runner" MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation" \
    cargo +nightly miri test --target s390x-unknown-linux-gnu -p valori-c --no-default-features --features hosted --test miri_ffi
}
