#!/usr/bin/env bash
# Builds the C SDK into a distribution directory (default dist/valori-sdk):
#   include/valori.h  lib/libvalori.a  lib/libvalori.so  lib/pkgconfig/valori.pc
#   lib/cmake/valori/valoriConfig.cmake  lib/cmake/valori/valoriConfigVersion.cmake
#   bin/valori (the command-line tool: inspect, verify, history; docs/CLI.md)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist/valori-sdk}")
cargo build -q -p valori-c --release
cargo build -q -p valori-cli --release
version=$(cargo pkgid -p valori-c | sed 's/.*@//')
native=$(cargo rustc -q -p valori-c --release --crate-type staticlib -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -n 1)
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/pkgconfig" "$out/lib/cmake/valori" "$out/bin"
cp include/valori.h include/valori.hpp "$out/include/"
cp target/release/libvalori.a target/release/libvalori.so "$out/lib/"
cp target/release/valori "$out/bin/"

cat > "$out/lib/pkgconfig/valori.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: valori
Description: Deterministic memory engine for AI agents and robots (vectors + knowledge graph)
Version: $version
Libs: -L\${libdir} -lvalori
Libs.private: $native
Cflags: -I\${includedir}
PC

cat > "$out/lib/cmake/valori/valoriConfig.cmake" <<'CMAKE'
# valori::valori: the static library, with the native libraries it needs.
get_filename_component(_valori_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET valori::valori)
  add_library(valori::valori STATIC IMPORTED)
  set_target_properties(valori::valori PROPERTIES
    IMPORTED_LOCATION "${_valori_prefix}/lib/libvalori.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_valori_prefix}/include"
    INTERFACE_LINK_LIBRARIES "@NATIVE@")
endif()
if(NOT TARGET valori::valori_shared)
  add_library(valori::valori_shared SHARED IMPORTED)
  set_target_properties(valori::valori_shared PROPERTIES
    IMPORTED_LOCATION "${_valori_prefix}/lib/libvalori.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_valori_prefix}/include")
endif()
set(valori_FOUND TRUE)
CMAKE
# CMake wants a ;-list of plain library names for the native libraries.
cmake_native=$(echo "$native" | tr ' ' '\n' | sed -n 's/^-l//p' | tr '\n' ';' | sed 's/;$//')
sed -i "s|@NATIVE@|$cmake_native|" "$out/lib/cmake/valori/valoriConfig.cmake"

cat > "$out/lib/cmake/valori/valoriConfigVersion.cmake" <<CMAKE
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  string(REGEX MATCH "^[0-9]+\\\\.[0-9]+" _have "\${PACKAGE_VERSION}")
  string(REGEX MATCH "^[0-9]+\\\\.[0-9]+" _want "\${PACKAGE_FIND_VERSION}")
  if(_have STREQUAL _want OR "\${PACKAGE_FIND_VERSION}" STREQUAL "")
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  else()
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  endif()
endif()
if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
CMAKE
echo "SDK in $out"
