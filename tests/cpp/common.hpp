// Shared helpers for the C++ tests.
#pragma once
#include <cstdlib>
#include <string>
#include <unistd.h>

inline std::string test_dir(const std::string &name) {
    const char *base = std::getenv("VALORI_TEST_DIR");
    std::string dir = std::string(base != nullptr ? base : "/tmp") + "/cpp-" + name + "-" + std::to_string(getpid());
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) return dir;
    return dir;
}
