#!/usr/bin/env bash
# Builds libvalori and runs the C test suite three ways: plain, with ASan + UBSan, and under
# valgrind (no errors, no leaks). Also checks that valori.h compiles as C11 and C++17.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build=target/c-tests
rm -rf "$build"
mkdir -p "$build"

cargo build -q -p valori-c --release
lib=target/release/libvalori.a
# The native libraries the Rust standard library needs when linking the static library.
native=$(cargo rustc -q -p valori-c --release --crate-type staticlib -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -n 1)
echo "native libraries: $native"
version=$(cargo pkgid -p valori-c | sed 's/.*@//')

python3 tests/c/gen_null_tests.py include/valori.h tests/c/test_valori.c > "$build/null_args.c"

cflags=(-std=c99 -Wall -Wextra -Wpedantic -Werror -g -Iinclude "-DEXPECTED_VERSION=\"$version\"")
srcs=(tests/c/test_valori.c "$build/null_args.c")

echo "== header compiles as C11 and C++17"
printf '#include "valori.h"\nint main(void) { return VALORI_OK; }\n' > "$build/hdr.c"
gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude -c "$build/hdr.c" -o "$build/hdr_c11.o"
cp "$build/hdr.c" "$build/hdr.cpp"
g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -Iinclude -c "$build/hdr.cpp" -o "$build/hdr_cpp17.o"
gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -DVALORI_EMBEDDED_ONLY -Iinclude -c "$build/hdr.c" -o "$build/hdr_embedded.o"

echo "== plain"
# shellcheck disable=SC2086
gcc "${cflags[@]}" "${srcs[@]}" "$lib" $native -lm -o "$build/test_plain"
mkdir -p "$build/plain"
"$build/test_plain" "$root/$build/plain"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
# shellcheck disable=SC2086
gcc "${cflags[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  "${srcs[@]}" "$lib" $native -lm -o "$build/test_asan"
mkdir -p "$build/asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$build/test_asan" "$root/$build/asan"

echo "== valgrind"
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$build/valgrind"
# The 1.1 GB oversize-batch test is left to the plain and ASan runs: valgrind's heap cannot
# hold it.
VALORI_TEST_NO_BIG=1 valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect "$build/test_plain" "$root/$build/valgrind"

echo "C suite: plain, ASan/UBSan and valgrind all passed"
