#!/usr/bin/env bash
# C++: builds the SDK, the GoogleTest suites (ASan/UBSan, two translation units, a
# no-exceptions build) and the CMake example through find_package(valori), runs them, and
# checks that the example's state hash equals the C quickstart's and the Rust quickstart's.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -f /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake ] || [ -n "$(find /usr -name GTestConfig.cmake -print -quit 2>/dev/null)" ] \
  || { echo "GoogleTest is required (apt-get install libgtest-dev)" >&2; exit 1; }
bash scripts/sdk.sh "$work/sdk" >/dev/null
cmake -S tests/cpp -B "$work/tests" -DCMAKE_PREFIX_PATH="$work/sdk" >/dev/null
cmake --build "$work/tests" -j 2 >/dev/null
(cd "$work/tests" && VALORI_TEST_DIR="$work" ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure)

cmake -S examples-cpp -B "$work/example" -DCMAKE_PREFIX_PATH="$work/sdk" >/dev/null
cmake --build "$work/example" >/dev/null
"$work/example/robot_memory" "$work/robot" | tee "$work/cpp.txt"
"$work/example/robot_memory" "$work/robot" | grep -q "^reopened"
bash scripts/quickstart.sh "$work/c-db" > "$work/c.txt"
cargo run -q --release -p valori-engine --example quickstart -- "$work/rust-db" > "$work/rust.txt"
n=$(grep -h "^state hash:" "$work/cpp.txt" "$work/c.txt" "$work/rust.txt" | sort -u | wc -l)
if [ "$n" != 1 ]; then echo "C++, C and Rust quickstarts disagree on the state hash" >&2; exit 1; fi
echo "C++ example, C quickstart and Rust quickstart print the same state hash"
