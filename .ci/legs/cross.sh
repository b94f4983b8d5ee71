# shellcheck shell=bash
# Leg "cross": the kernel suites on the other architectures, the golden-hash table on every
# architecture and the Cortex-M and RISC-V firmware under QEMU (with its footprint check), an aarch64 replication follower, then the
# table's negative control.
# Leg "cross-negative": the negative control alone.

# The kernel's tests under emulation are built optimised, with the test profile's debug
# assertions and overflow checks kept: QEMU runs unoptimised code so slowly that the index
# suite took about 160 s per architecture, against 9 s optimised. scripts/cross-hashes.sh
# builds its hosted columns the same way, so the builds are shared.
kernel_test_optimised=(env CARGO_PROFILE_DEV_OPT_LEVEL=2 CARGO_PROFILE_TEST_OPT_LEVEL=2)

cross_setup() {
  setup_apt cross
  setup_node
  # shellcheck disable=SC2154 # all_targets: .ci/setup.sh
  setup_targets "${all_targets[@]}"
}

cross_kernel_suites() {
  step "kernel suites (with the SIMD == scalar tests: NEON on aarch64) on aarch64 and s390x (qemu-user) and wasm32-wasip1 (Node WASI), optimised"
  local t
  for t in aarch64-unknown-linux-gnu s390x-unknown-linux-gnu wasm32-wasip1; do
    echo "-- $t"
    "${kernel_test_optimised[@]}" cargo test -q -p valori-kernel --target "$t"
  done
}

cross_hashes() {
  step "golden hashes on every architecture; Cortex-M4F, M3, M0 and RV32IMAC firmware under QEMU"
  bash scripts/cross-hashes.sh
  local b op log
  for b in m4 m3 m0 rv32; do
    log="target/cross-hashes/firmware-$b.log"
    grep -E "^(FOOTPRINT|COST|COUNTER|KERNEL_MEM|STACK|NOTE)" "$log"
    # The table checks the hashes; the firmware's own checks (the measurements, the restored
    # and the decoded kernels' hashes, the replay's stack against the heap) must pass too.
    if grep -E "^(FAIL|valori panicked)" "$log"; then die "firmware $b: a check failed (see $log)"; fi
    grep -qE "^[0-9]+ passed, 0 failed, [0-9]+ skipped$" "$log" || die "firmware $b: no clean result line (see $log)"
    for op in init insert search_k10 state_hash apply_insert; do
      grep -q "^COST $op " "$log" || die "firmware $b: no cost for $op (see $log)"
    done
    if [ "$b" != m3 ]; then
      for op in snapshot restore; do
        grep -q "^COST $op " "$log" || die "firmware $b: no cost for $op (see $log)"
      done
    fi
  done
  step "firmware footprint: every board within 32 KiB"
  bash scripts/firmware-footprint.sh --check
  step "the Cortex-M4F firmware without the cosine feature: every other golden script agrees"
  local log=target/firmware-m4-nocosine.log
  VALORI_FEATURES=panic-handler FIRMWARE_OUT=target/firmware-m4-nocosine \
    bash examples-c/firmware/build.sh m4 >"$log" 2>&1 || { cat "$log"; die "the firmware without cosine failed"; }
  grep -E "^(FOOTPRINT|SKIP|[0-9]+ passed)" "$log"
  [ "$(grep -c "^SKIP .*(the cosine metric is not in this build)" "$log")" = 2 ] \
    || die "the firmware without cosine must skip exactly the two cosine scripts"
  grep -q "^9 passed, 0 failed, 2 skipped" "$log" || die "the firmware without cosine: unexpected result"
}

# The table must be able to fail: with the kernel feature negative-control-native-endian (the
# dimension encoded in native byte order) the s390x column, and only it, must differ, because
# its golden test fails on a hash mismatch; x86_64 with the same feature must still pass.
cross_negative_control() {
  step "negative control: a planted native-endian field must make s390x, and only s390x, fail"
  local out=target/cross-hashes-negative.out work=target/cross-hashes-negative
  mkdir -p target
  if bash scripts/cross-hashes.sh --negative-control >"$out" 2>&1; then
    cat "$out"
    die "negative control: the table passed with a native-endian field planted; it cannot fail"
  fi
  cat "$out"
  grep -q "^test result: ok" "$work/x86_64-unknown-linux-gnu.log" \
    || die "negative control: the x86_64 golden test must pass with the feature (see $work/x86_64-unknown-linux-gnu.log)"
  # shellcheck disable=SC2016 # the backquotes are Rust's assert_eq! message, not a command
  grep -q 'assertion `left == right` failed: .*tests/vectors/[^ ]*\.json$' "$work/s390x-unknown-linux-gnu.log" \
    || die "negative control: the s390x golden test did not fail on a hash mismatch (see $work/s390x-unknown-linux-gnu.log)"
  local bad
  bad=$(sed -n '/^DIFFERENT OR MISSING:/,$p' "$out" | tail -n +2 | sed 's/^ *//' | grep -v '^$' || true)
  [ -n "$bad" ] || die "negative control: the table listed no differing cell"
  if grep -v ' on s390x: ' <<<"$bad"; then
    die "negative control: cells other than s390x differ (above); only the big-endian leg may"
  fi
  echo "negative control: s390x failed as it must ($(wc -l <<<"$bad") cells), every other leg agreed"
}

cross_fleet() {
  step "replication across architectures: an aarch64 follower (qemu-user) of an x86_64 writer's stream"
  setup_nats
  bash scripts/fleet-demo.sh aarch64-unknown-linux-gnu
}

leg_cross() {
  cross_setup
  cross_kernel_suites
  cross_hashes
  cross_fleet
  cross_negative_control
}

leg_cross_negative() {
  cross_setup
  cross_negative_control
}
