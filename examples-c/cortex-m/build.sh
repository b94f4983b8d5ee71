#!/usr/bin/env bash
# Builds and runs the firmware under QEMU.
#   build.sh m4   Cortex-M4F, thumbv7em-none-eabihf, qemu-system-arm -M mps2-an386
#   build.sh m3   Cortex-M3,  thumbv7m-none-eabi,    qemu-system-arm -M lm3s6965evb
# Also builds the same firmware without valori, and prints the footprint both ways.
set -euo pipefail
cd "$(dirname "$0")/../.."
board=${1:-m4}
case "$board" in
  m4) target=thumbv7em-none-eabihf; machine=mps2-an386; ld=mps2_an386.ld
      cflags=(-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard); mem=$((1536 * 1024)); gen=() ;;
  m3) target=thumbv7m-none-eabi; machine=lm3s6965evb; ld=lm3s6965.ld
      cflags=(-mcpu=cortex-m3 -mthumb -mfloat-abi=soft); mem=$((40 * 1024))
      # 256 KiB of flash and 64 KiB of RAM: the dimension-4096 scripts do not fit.
      gen=(--max-dim 1024) ;;
  *) echo "usage: $0 m4|m3" >&2; exit 2 ;;
esac
out=target/firmware-$board
mkdir -p "$out"
cargo rustc -q -p valori-c --profile embedded --target "$target" --no-default-features \
  --features panic-handler --crate-type staticlib
python3 scripts/gen_firmware_vectors.py tests/vectors "$out/vectors.c" "${gen[@]}"
common=("${cflags[@]}" -Os -g -ffunction-sections -fdata-sections -std=c99 -Wall -Wextra -Werror
        -DVALORI_EMBEDDED_ONLY -DKERNEL_MEM_BYTES="$mem" -Iinclude -Iexamples-c/cortex-m)
link=(-T "examples-c/cortex-m/$ld" -Lexamples-c/cortex-m -nostartfiles --specs=nano.specs
      --specs=rdimon.specs -Wl,--gc-sections)
arm-none-eabi-gcc "${common[@]}" examples-c/cortex-m/main.c examples-c/cortex-m/startup.c \
  "$out/vectors.c" "target/$target/embedded/libvalori.a" "${link[@]}" -o "$out/firmware.elf"
# Footprint: the scaffolding alone (startup, semihosting printf, the caller's kernel buffer)
# against the same plus valori driving a 256 x 16 kernel (init, insert, search, hash).
arm-none-eabi-gcc "${common[@]}" examples-c/cortex-m/baseline.c examples-c/cortex-m/startup.c \
  "${link[@]}" -o "$out/baseline.elf"
arm-none-eabi-gcc "${common[@]}" -DFOOTPRINT_ONLY examples-c/cortex-m/main.c examples-c/cortex-m/startup.c \
  "target/$target/embedded/libvalori.a" "${link[@]}" -o "$out/footprint.elf"
arm-none-eabi-size "$out/baseline.elf" "$out/footprint.elf" "$out/firmware.elf"
read -r base_text base_data base_bss _ < <(arm-none-eabi-size "$out/baseline.elf" | tail -n 1)
read -r fp_text fp_data fp_bss _ < <(arm-none-eabi-size "$out/footprint.elf" | tail -n 1)
echo "FOOTPRINT $board valori adds flash $((fp_text + fp_data - base_text - base_data)) bytes," \
  "static RAM $((fp_data + fp_bss - base_data - base_bss)) bytes"
timeout 300 qemu-system-arm -M "$machine" -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel "$out/firmware.elf" | tee "$out/run.txt"
