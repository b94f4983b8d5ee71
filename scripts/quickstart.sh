#!/usr/bin/env bash
# The README's first command: builds libvalori (the SDK in dist/valori-sdk), compiles the C
# quickstart against it and runs it on the default data directory ./data/quickstart-c.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/sdk.sh dist/valori-sdk >/dev/null
export PKG_CONFIG_PATH="$PWD/dist/valori-sdk/lib/pkgconfig"
mkdir -p data target
# shellcheck disable=SC2046
gcc -std=c99 -Wall -Wextra -Wpedantic -Werror examples-c/quickstart.c \
  $(pkg-config --cflags valori) dist/valori-sdk/lib/libvalori.a \
  $(pkg-config --static --libs-only-l valori | sed 's/-lvalori//') -o target/quickstart-c
target/quickstart-c "${1:-data/quickstart-c}"
