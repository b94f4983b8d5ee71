# shellcheck shell=bash
# Leg "fuzz": the cargo-fuzz crate fuzz/ (its own workspace, nightly): format and lints, then
# scripts/fuzz.sh builds every target, replays the reproducers in fuzz/regressions/ and fuzzes
# each target briefly (CI_FUZZ_SECONDS, default 20 s; two targets at a time, one per core)
# from the seeds in fuzz/corpus/. Any crash fails the leg; its input is in
# fuzz/artifacts/TARGET/ and the log in fuzz/target/logs/.

# The nightly toolchain (sanitizer builds) and cargo-fuzz.
fuzz_setup() {
  [ -z "${SETUP_DONE_FUZZ:-}" ] || return 0
  step "nightly toolchain and cargo-fuzz"
  if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
  fi
  cargo +nightly --version
  cargo fuzz --version
  SETUP_DONE_FUZZ=1
}

leg_fuzz() {
  # libfuzzer-sys compiles libFuzzer with the C++ compiler.
  setup_apt host
  setup_rust
  fuzz_setup
  step "fuzz crate: format and lints"
  cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
  cargo clippy -q --manifest-path fuzz/Cargo.toml --workspace --all-targets -- -D warnings
  step "fuzz: every target for ${CI_FUZZ_SECONDS:-20} s after its regression inputs, two at a time"
  bash scripts/fuzz.sh --jobs 2 "${CI_FUZZ_SECONDS:-20}"
}
