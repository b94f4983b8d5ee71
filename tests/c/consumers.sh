#!/usr/bin/env bash
# Builds the SDK directory, then the C examples against it two ways, and runs them:
# with `pkg-config --cflags --libs valori` (shared and --static) and with CMake
# find_package(valori). The quickstart's hash must equal the Rust quickstart's.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sdk="$work/sdk"
bash scripts/sdk.sh "$sdk"
export PKG_CONFIG_PATH="$sdk/lib/pkgconfig"
flags=(-std=c99 -Wall -Wextra -Wpedantic -Werror)

echo "== pkg-config: $(pkg-config --cflags --libs valori)"
# shellcheck disable=SC2046
gcc "${flags[@]}" examples-c/quickstart.c $(pkg-config --cflags --libs valori) -o "$work/quickstart-shared"
LD_LIBRARY_PATH="$sdk/lib" "$work/quickstart-shared" "$work/db-shared" | tee "$work/shared.txt"
# shellcheck disable=SC2046
gcc "${flags[@]}" examples-c/quickstart.c -Wl,-Bstatic $(pkg-config --cflags --libs-only-L valori) -lvalori -Wl,-Bdynamic \
  $(pkg-config --static --libs-only-l valori | sed 's/-lvalori//') -o "$work/quickstart-static"
"$work/quickstart-static" "$work/db-shared" | tee "$work/static.txt"
grep -q "^reopened" "$work/static.txt"

echo "== CMake find_package(valori)"
command -v cmake >/dev/null || { echo "cmake is required (apt-get install cmake)" >&2; exit 1; }
cmake -S examples-c -B "$work/build" -DCMAKE_PREFIX_PATH="$sdk" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/quickstart" "$work/db-cmake" | tee "$work/cmake.txt"
"$work/build/recovery" "$work/db-recovery"
"$work/build/recovery" "$work/db-recovery"

echo "== the same state hash from C (shared, static, CMake) and from Rust"
cargo run -q --release -p valori-engine --example quickstart -- "$work/db-rust" > "$work/rust.txt"
n=$(grep -h "^state hash:" "$work/shared.txt" "$work/static.txt" "$work/cmake.txt" "$work/rust.txt" | sort -u | wc -l)
grep -h "^state hash:" "$work/rust.txt"
if [ "$n" != 1 ]; then echo "state hashes differ between the C and Rust quickstarts" >&2; exit 1; fi
echo "== the SDK's valori tool reads what C wrote: same state hash, every file verified"
"$sdk/bin/valori" --version
"$sdk/bin/valori" verify "$work/db-shared"
"$sdk/bin/valori" info "$work/db-shared"
tool=$("$sdk/bin/valori" hash "$work/db-shared" | cut -d' ' -f1)
if ! grep -q "^state hash: $tool" "$work/static.txt"; then
  echo "valori hash ($tool) differs from the C quickstart's" >&2; exit 1
fi

echo "consumers: pkg-config (shared, static) and CMake built and ran; hashes agree"
