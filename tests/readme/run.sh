#!/usr/bin/env bash
# Compiles and runs the README's code snippets, so they cannot rot:
#   c    the ```c block under "## Using it from C", as C11
#   cpp  the ```cpp block under "## Using it from C++", as C++17
# Each block becomes the body of main() (its #include lines go above main), is compiled with
# -Wall -Wextra -Wpedantic -Werror against include/ and the static libvalori, and runs in an
# empty temporary directory; it must exit 0. A missing block fails.
# Usage: bash tests/readme/run.sh [c|cpp]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
langs=("$@")
[ "${#langs[@]}" -gt 0 ] || langs=(c cpp)
for lang in "${langs[@]}"; do
  case "$lang" in c|cpp) ;; *) echo "usage: $0 [c|cpp]..." >&2; exit 2 ;; esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build -q -p valori-c --release
lib=$root/target/release/libvalori.a
# The native libraries the Rust standard library needs when linking the static library.
native=$(cargo rustc -q -p valori-c --release --crate-type staticlib -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -n 1)

# extract LANG SECTION OUT: writes OUT as a translation unit: the block's #include lines, then
# main() around the rest, with #line directives pointing at README.md.
extract() {
  python3 - "$@" <<'PY'
import sys
lang, section, out = sys.argv[1:4]
lines = open("README.md", encoding="utf-8").read().split("\n")
try:
    start = lines.index(section)
except ValueError:
    sys.exit("README.md has no section %r" % section)
block, first = None, None
for i in range(start + 1, len(lines)):
    if lines[i].startswith("## "):
        break
    if lines[i].strip() == "```" + lang:
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            sys.exit("README.md: unterminated ```%s block in %r" % (lang, section))
        block, first = lines[i + 1:end], i + 2  # first: 1-based README line of the block
        break
if not block or not any(l.strip() for l in block):
    sys.exit("README.md: no ```%s block under %r" % (lang, section))
includes = [(n, l) for n, l in enumerate(block, first) if l.lstrip().startswith("#include")]
body = [(n, l) for n, l in enumerate(block, first) if not l.lstrip().startswith("#include")]
src = []
if lang == "c":
    src += ["#include <stdio.h>", '#include "valori.h"']
for n, l in includes:
    src += ['#line %d "README.md"' % n, l]
src += ["int main(void) {" if lang == "c" else "int main() {"]
src += ['#line %d "README.md"' % body[0][0]]
prev = None
for n, l in body:
    if prev is not None and n != prev + 1:
        src.append('#line %d "README.md"' % n)
    src.append(l)
    prev = n
src += ["    return 0;", "}", ""]
open(out, "w", encoding="utf-8").write("\n".join(src))
print("README.md line %d: %d lines of %s" % (first, len(block), lang))
PY
}

for lang in "${langs[@]}"; do
  mkdir -p "$work/$lang/run"
  case "$lang" in
    c)
      extract c "## Using it from C" "$work/c/readme.c"
      # shellcheck disable=SC2086
      gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude "$work/c/readme.c" "$lib" $native -lm \
        -o "$work/c/readme" ;;
    cpp)
      extract cpp "## Using it from C++" "$work/cpp/readme.cpp"
      # shellcheck disable=SC2086
      g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -Iinclude "$work/cpp/readme.cpp" "$lib" $native -lm \
        -o "$work/cpp/readme" ;;
  esac
  (cd "$work/$lang/run" && "$work/$lang/readme") || { echo "README $lang snippet: exit status $?" >&2; exit 1; }
  echo "README $lang snippet: compiled with -Wall -Wextra -Wpedantic -Werror and ran"
done
