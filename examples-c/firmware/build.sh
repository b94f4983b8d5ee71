#!/usr/bin/env bash
# Builds and runs the firmware under QEMU, and prints its footprint.
#   build.sh m4    Cortex-M4F, thumbv7em-none-eabihf,        qemu-system-arm -M mps2-an386
#   build.sh m3    Cortex-M3,  thumbv7m-none-eabi,           qemu-system-arm -M lm3s6965evb
#   build.sh m0    Cortex-M0,  thumbv6m-none-eabi,           qemu-system-arm -M microbit
#   build.sh rv32  RV32IMAC,   riscv32imac-unknown-none-elf, qemu-system-riscv32 -M virt
# Also builds the same firmware without valori (baseline.elf) and with only the calls a
# minimal integration makes (footprint.elf: init, insert, search, state hash), and prints
#   FOOTPRINT <board> valori adds flash N bytes, static RAM M bytes
# QEMU runs with -icount shift=0 (one instruction per virtual nanosecond): the firmware's
# COST lines are instruction counts (docs/embedded-quickstart.md says how exact).
#
# VALORI_FEATURES (default "panic-handler,cosine") picks the Cargo features of the archive
# ("panic-handler" alone leaves the cosine metric out: docs/embedded-quickstart.md);
# FIRMWARE_OUT names the output directory (default target/firmware-<board>); FOOTPRINT_DEFS adds
# defines to footprint.elf (-DWITH_SNAPSHOT and the like: scripts/firmware-footprint.sh);
# FIRMWARE_RUN=0 builds without running.
set -euo pipefail
cd "$(dirname "$0")/../.."
board=${1:-m4}
features=${VALORI_FEATURES:-panic-handler,cosine}
gen=()
defs=()
case "$board" in
  m4) target=thumbv7em-none-eabihf; machine=(-M mps2-an386); ld=mps2_an386.ld
      cflags=(-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard); mem=$((1536 * 1024)) ;;
  m3) target=thumbv7m-none-eabi; machine=(-M lm3s6965evb); ld=lm3s6965.ld
      cflags=(-mcpu=cortex-m3 -mthumb -mfloat-abi=soft); mem=$((40 * 1024))
      # 256 KiB of flash and 64 KiB of RAM: the dimension-4096 scripts do not fit, nor does a
      # snapshot of the measured 256 x 16 kernel beside it (snapshot and restore are not timed).
      gen=(--max-dim 1024) ;;
  m0) target=thumbv6m-none-eabi; machine=(-M microbit); ld=microbit.ld
      cflags=(-mcpu=cortex-m0 -mthumb -mfloat-abi=soft); mem=$((7 * 1024))
      # nRF51822: 256 KiB of flash, 16 KiB of RAM. The kernel buffer is 7 KiB: the golden
      # scripts that fit, and for the measurements a 32 x 16 kernel with its snapshot after it;
      # stack painting covers 3 KiB.
      gen=(--max-dim 1024)
      defs=(-DMEASURE_RECORDS=32u -DPAINT_BYTES=3072u) ;;
  rv32) target=riscv32imac-unknown-none-elf; machine=(-M virt -bios none -m 16M); ld=
      cflags=(-march=rv32imac -mabi=ilp32 -mcmodel=medany); mem=$((1536 * 1024)) ;;
  *) echo "usage: $0 m4|m3|m0|rv32" >&2; exit 2 ;;
esac
out=${FIRMWARE_OUT:-target/firmware-$board}
mkdir -p "$out"
cargo rustc -q -p valori-c --profile embedded --target "$target" --no-default-features \
  --features "$features" --crate-type staticlib
lib="target/$target/embedded/libvalori.a"
python3 scripts/gen_firmware_vectors.py tests/vectors "$out/vectors.c" "${gen[@]}"
common=("${cflags[@]}" -Os -g -ffunction-sections -fdata-sections -std=c99 -Wall -Wextra -Werror
        -DVALORI_EMBEDDED_ONLY -DKERNEL_MEM_BYTES="$mem" "${defs[@]}" -Iinclude -Iexamples-c/firmware)
if [ "$board" = rv32 ]; then
  # Debian's riscv64-unknown-elf-gcc with picolibc (semihosting): QEMU virt loads the image at
  # the start of its RAM (0x80000000); 4 MiB of it is the "flash", the next 8 MiB RAM.
  cc=riscv64-unknown-elf-gcc
  size=riscv64-unknown-elf-size
  link=(--specs=picolibc.specs --oslib=semihost --crt0=semihost -Wl,--gc-sections
        -Wl,--defsym=__flash=0x80000000 -Wl,--defsym=__flash_size=0x400000
        -Wl,--defsym=__ram=0x80400000 -Wl,--defsym=__ram_size=0x800000
        -Wl,--defsym=__stack_size=0x4000)
  startup=()
  run=(qemu-system-riscv32)
else
  cc=arm-none-eabi-gcc
  size=arm-none-eabi-size
  link=(-T "examples-c/firmware/$ld" -Lexamples-c/firmware -nostartfiles --specs=nano.specs
        --specs=rdimon.specs -Wl,--gc-sections)
  startup=(examples-c/firmware/startup.c)
  run=(qemu-system-arm)
fi
"$cc" "${common[@]}" examples-c/firmware/main.c "${startup[@]}" "$out/vectors.c" "$lib" \
  "${link[@]}" -o "$out/firmware.elf"
# Footprint: the scaffolding alone (startup, semihosting printf, the caller's kernel buffer)
# against the same plus valori driving a kernel (init, insert, search, hash).
"$cc" "${common[@]}" examples-c/firmware/baseline.c "${startup[@]}" "${link[@]}" -o "$out/baseline.elf"
# shellcheck disable=SC2086 # FOOTPRINT_DEFS is a list of defines
"$cc" "${common[@]}" -DFOOTPRINT_ONLY ${FOOTPRINT_DEFS:-} examples-c/firmware/main.c "${startup[@]}" "$lib" \
  "${link[@]}" -o "$out/footprint.elf"
"$size" "$out/baseline.elf" "$out/footprint.elf" "$out/firmware.elf"
read -r base_text base_data base_bss _ < <("$size" "$out/baseline.elf" | tail -n 1)
read -r fp_text fp_data fp_bss _ < <("$size" "$out/footprint.elf" | tail -n 1)
echo "FOOTPRINT $board valori adds flash $((fp_text + fp_data - base_text - base_data)) bytes," \
  "static RAM $((fp_data + fp_bss - base_data - base_bss)) bytes"
[ "${FIRMWARE_RUN:-1}" = 1 ] || exit 0
timeout 600 "${run[@]}" "${machine[@]}" -nographic -monitor none -serial none -icount shift=0 \
  -semihosting-config enable=on,target=native -kernel "$out/firmware.elf" | tee "$out/run.txt"
