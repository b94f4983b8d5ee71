#!/usr/bin/env bash
# Prints one table: golden script -> final state hash on every architecture, and fails if any
# cell differs from x86_64 (or is missing where it should not be). Architectures: x86_64,
# aarch64 and s390x (big-endian) under qemu-user, wasm32-wasip1 under Node's WASI, the
# Cortex-M4F (mps2-an386), Cortex-M3 (lm3s6965evb) and Cortex-M0 (microbit) firmware under
# qemu-system-arm, and the same firmware on RV32IMAC under qemu-system-riscv32 (virt).
# The full kernel test suites on the hosted targets run separately (`bash .ci/run cross`).
#   --negative-control: builds the hosted legs with a planted native-endian field; the
#   s390x column must then differ (proves the table can fail). Its logs go to
#   target/cross-hashes-negative, so the normal run's logs stay. `bash .ci/run cross` runs
#   both and requires this one to fail on s390x only.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
work=target/cross-hashes
boards=(m4 m3 m0 rv32)
if [ "${1:-}" = "--negative-control" ]; then
  features=(--features negative-control-native-endian)
  work=target/cross-hashes-negative
  # The planted field is in the hosted legs only: the firmware columns would repeat the
  # normal run.
  boards=()
fi
rm -rf "$work"
mkdir -p "$work"

# Built optimised, with the test profile's debug assertions and overflow checks (the cross
# leg's kernel suites build the same way): QEMU runs unoptimised code far slower.
export CARGO_PROFILE_DEV_OPT_LEVEL=2 CARGO_PROFILE_TEST_OPT_LEVEL=2
for t in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu s390x-unknown-linux-gnu wasm32-wasip1; do
  cargo test -q -p valori-kernel --target "$t" "${features[@]}" --test golden -- --exact final_hashes \
    --nocapture > "$work/$t.log" 2>&1 || true
  grep '^HASH ' "$work/$t.log" > "$work/$t.txt" || true
  # The approximate index (docs/FORMAT.md §15): its hash and answers, on the hosted targets.
  cargo test -q -p valori-kernel --target "$t" "${features[@]}" --test hnsw -- --exact golden_index \
    --nocapture > "$work/$t-index.log" 2>&1 || true
  grep '^HASH ' "$work/$t-index.log" > "$work/$t-index.txt" || true
  # The indexed golden scripts' final index hashes (their approximate answers are checked
  # against the files by the same run).
  grep '^INDEX ' "$work/$t.log" >> "$work/$t-index.txt" || true
done
unset CARGO_PROFILE_DEV_OPT_LEVEL CARGO_PROFILE_TEST_OPT_LEVEL
for b in "${boards[@]}"; do
  bash examples-c/firmware/build.sh "$b" > "$work/firmware-$b.log" 2>&1 || true
  grep -E '^(HASH|SKIP) ' "$work/firmware-$b.log" > "$work/firmware-$b.txt" || true
done

python3 - "$work" "${boards[@]}" <<'PY'
import glob, os, sys
work = sys.argv[1]
boards = sys.argv[2:]
cols = [("x86_64", "x86_64-unknown-linux-gnu"), ("aarch64", "aarch64-unknown-linux-gnu"),
        ("s390x", "s390x-unknown-linux-gnu"), ("wasm32", "wasm32-wasip1"),
        ("cortex-m4", "firmware-m4"), ("cortex-m3", "firmware-m3"), ("cortex-m0", "firmware-m0"),
        ("riscv32", "firmware-rv32")]
cols = [c for c in cols if not c[1].startswith("firmware-") or c[1][len("firmware-"):] in boards]
# Boards whose RAM cannot hold every script: they may skip (the firmware says why).
small = ("cortex-m3", "cortex-m0")
table = {}
for col, f in cols:
    for line in open(os.path.join(work, f + ".txt")):
        kind, name = line.split()[:2]
        table.setdefault(name, {})[col] = line.split()[2] if kind == "HASH" else "skip"
names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob("tests/vectors/[0-9]*.json"))
bad = []
print("| golden script | " + " | ".join(c for c, _ in cols) + " |")
print("|---|" + "---|" * len(cols))
for n in names:
    row = table.get(n, {})
    ref = row.get("x86_64")
    cells = []
    for c, _ in cols:
        v = row.get(c, "missing")
        ok = v == ref or (v == "skip" and c in small)
        if not ok or ref is None:
            bad.append("%s on %s: %s" % (n, c, v))
        cells.append((v[:16] if v not in ("skip", "missing") else v) + ("" if ok else " ✗"))
    print("| %s | %s |" % (n, " | ".join(cells)))
# The approximate index: hosted targets only (the firmware kernel has no allocator, no index).
index = {}
for col, f in cols[:4]:
    for line in open(os.path.join(work, f + "-index.txt")):
        _, name, value = line.split()[:3]
        index.setdefault(name, {})[col] = value
print("\n| approximate index | " + " | ".join(c for c, _ in cols[:4]) + " |")
print("|---|" + "---|" * 4)
for n in sorted(index) or ["(no index hashes)"]:
    row = index.get(n, {})
    ref = row.get("x86_64")
    cells = []
    for c, _ in cols[:4]:
        v = row.get(c, "missing")
        ok = ref is not None and v == ref
        if not ok:
            bad.append("%s on %s: %s" % (n, c, v))
        cells.append((v[:16] if v != "missing" else v) + ("" if ok else " ✗"))
    print("| %s | %s |" % (n, " | ".join(cells)))
if len(index) != 9:
    bad.append("expected 9 index hashes (3 metrics x index and answers, 3 indexed golden scripts), "
               "x86_64 printed %d" % len(index))
if bad:
    print("\nDIFFERENT OR MISSING:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("\nall architectures agree on every golden script (cortex-m3 and cortex-m0 skip the scripts their RAM")
print("cannot hold: 64 KiB and 16 KiB)")
print("and the hosted ones on the approximate index's hash and answers for every metric")
PY
