# shellcheck shell=bash
# Leg "c": the C suite (plain, ASan/UBSan, valgrind; header as C11 and C++17), the SDK
# consumers (pkg-config, CMake find_package) and the README's C snippet.

leg_c() {
  setup_apt host
  setup_rust
  step "C suite: plain, ASan/UBSan, valgrind; header as C11 and C++17"
  bash tests/c/run.sh
  step "C SDK consumers: pkg-config and CMake find_package"
  bash tests/c/consumers.sh
  step "README: the C snippet compiles (C11, -Wall -Wextra -Wpedantic -Werror) and runs"
  bash tests/readme/run.sh c
}
