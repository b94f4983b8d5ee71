# shellcheck shell=bash
# Leg "cpp": valori.hpp's GoogleTest suites (ASan/UBSan, no-exceptions), the CMake example and
# the README's C++ snippet.

leg_cpp() {
  setup_apt host
  setup_rust
  step "C++: valori.hpp tests (GoogleTest, ASan/UBSan, no-exceptions) and the CMake example"
  bash tests/cpp/run.sh
  step "README: the C++ snippet compiles (C++17, -Wall -Wextra -Wpedantic -Werror) and runs"
  bash tests/readme/run.sh cpp
}
