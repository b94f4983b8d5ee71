# shellcheck shell=bash
# Leg "rust": formatting, lints, the workspace tests, the C header's freshness and the
# bare-metal builds. Leg "quick": formatting, lints and the workspace tests only.

rust_fmt() {
  step "format"
  cargo fmt --all -- --check
}

rust_clippy() {
  step "clippy (host, every feature set of the kernel)"
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy -p valori-kernel --lib --no-default-features -- -D warnings
  cargo clippy -p valori-kernel --lib --no-default-features --features alloc -- -D warnings
}

rust_tests() {
  step "tests"
  cargo test --workspace
  step "golden hashes, snapshots and format checks without std (the bare-metal BLAKE3 and square root)"
  cargo test -q -p valori-kernel --no-default-features --features alloc,cosine \
    --test golden --test snapshot --test format
  step "golden scripts without the cosine feature (the others must still agree; cosine is refused)"
  cargo test -q -p valori-kernel --no-default-features --features alloc --test golden
}

rust_header() {
  step "C header is fresh (pinned cbindgen)"
  cargo run -q -p valori-gen-header -- --verify
}

rust_bare_metal() {
  step "bare metal: thumbv7em-none-eabihf, no default features, no allocator"
  cargo build -p valori-kernel --target thumbv7em-none-eabihf --no-default-features
  # The probe links the kernel into a no_std binary that has no #[global_allocator]: the link
  # fails if any crate in the kernel's dependency graph uses `alloc`.
  CARGO_TARGET_DIR=target/nostd-probe \
    cargo build --manifest-path .ci/nostd-probe/Cargo.toml --target thumbv7em-none-eabihf --release
  CARGO_TARGET_DIR=target/nostd-probe \
    cargo clippy --manifest-path .ci/nostd-probe/Cargo.toml --target thumbv7em-none-eabihf --release \
    -- -D warnings
  # The embedded libvalori.a: kernel API only, with the firmware panic hook.
  cargo rustc -q -p valori-c --release --target thumbv7em-none-eabihf --no-default-features \
    --features panic-handler,cosine --crate-type staticlib
  cargo clippy -q -p valori-c --target thumbv7em-none-eabihf --no-default-features \
    --features panic-handler,cosine -- -D warnings
  local embedded_lib=target/thumbv7em-none-eabihf/release/libvalori.a
  grep -aq valori_kernel_init "$embedded_lib" || die "embedded libvalori.a lacks the kernel API"
  if grep -aq valori_open "$embedded_lib"; then die "embedded libvalori.a contains hosted functions"; fi
  ls -l "$embedded_lib"
}

leg_rust() {
  setup_rust
  setup_nats
  setup_targets thumbv7em-none-eabihf
  rust_fmt
  rust_clippy
  rust_tests
  rust_header
  rust_bare_metal
}

leg_quick() {
  setup_rust
  setup_nats
  rust_fmt
  rust_clippy
  rust_tests
}
