#!/usr/bin/env bash
# The firmware footprint table (docs/embedded-quickstart.md): what valori adds to the flash of
# a firmware on each board, for the minimal integration (init, insert, search, state hash),
# then on the Cortex-M4F what each further family of calls adds and what leaving the cosine
# metric out saves. Each figure is examples-c/firmware/build.sh's FOOTPRINT line for one
# build; nothing is run (the golden replays and costs are in scripts/cross-hashes.sh).
#   --check   also fails if any board's minimal integration exceeds 32 KiB
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
limit=32768
work=target/firmware-footprint
mkdir -p "$work"

# footprint BOARD FEATURES DEFINES: bytes of flash valori adds.
footprint() {
  local out="$work/$1-$(tr -c 'a-zA-Z0-9\n' _ <<<"$2$3")"
  FIRMWARE_RUN=0 FIRMWARE_OUT="$out" VALORI_FEATURES="$2" FOOTPRINT_DEFS="$3" \
    bash examples-c/firmware/build.sh "$1" > "$out.log" 2>&1 || { cat "$out.log" >&2; return 1; }
  sed -n 's/^FOOTPRINT [^ ]* valori adds flash \([0-9]*\) bytes.*/\1/p' "$out.log"
}

# num VALUE: VALUE, or the end of the run if it is not a number (a build failed).
num() {
  case "$1" in
    '' | *[!0-9]*) echo "firmware-footprint: a build failed (its log is above)" >&2; exit 1 ;;
    *) echo "$1" ;;
  esac
}

failed=0
echo "| board | Rust target | valori adds (bytes of flash) |"
echo "|---|---|---|"
for row in "m4 thumbv7em-none-eabihf Cortex-M4F" "m3 thumbv7m-none-eabi Cortex-M3" \
           "m0 thumbv6m-none-eabi Cortex-M0/M0+" "rv32 riscv32imac-unknown-none-elf RV32IMAC"; do
  read -r board target name <<<"$row"
  n=$(num "$(footprint "$board" panic-handler,cosine "")")
  echo "| $name | \`$target\` | $n |"
  if [ "$n" -gt "$limit" ]; then failed=1; fi
done

base=$(num "$(footprint m4 panic-handler,cosine "")")
echo
echo "Cortex-M4F, from the minimal integration ($base bytes):"
echo
echo "| change | bytes of flash | difference |"
echo "|---|---|---|"
echo "| minimal: init, insert, search, state hash (all three metrics) | $base | |"
for row in "-DWITH_SNAPSHOT|+ snapshot and restore" "-DWITH_APPLY|+ the command decoder (valori_kernel_apply: every command, batches too)" \
           "-DWITH_GRAPH|+ graph calls (nodes, edges, traverse)" "-DWITH_META|+ metadata calls and delete"; do
  defs=${row%%|*}
  n=$(num "$(footprint m4 panic-handler,cosine "$defs")")
  echo "| ${row#*|} | $n | +$((n - base)) |"
done
n=$(num "$(footprint m4 panic-handler "")")
echo "| minimal, without the \`cosine\` feature | $n | $((n - base)) |"
n=$(num "$(footprint m4 panic-handler "-DWITH_SNAPSHOT -DWITH_APPLY -DWITH_GRAPH -DWITH_META")")
all=$(num "$(footprint m4 panic-handler,cosine "-DWITH_SNAPSHOT -DWITH_APPLY -DWITH_GRAPH -DWITH_META")")
echo "| every call above, with \`cosine\` | $all | +$((all - base)) |"
echo "| every call above, without \`cosine\` | $n | +$((n - base)) |"

if [ "$check" = 1 ]; then
  [ "$failed" = 0 ] || { echo "a board's minimal integration exceeds $limit bytes" >&2; exit 1; }
  echo
  echo "every board's minimal integration is within $limit bytes"
fi
