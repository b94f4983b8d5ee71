#!/usr/bin/env bash
# Runs every ```sh block of docs/HTTP-API.md, in order, against a fresh valori-node on
# 127.0.0.1 and a port it picks (VALORI_URL points at it), in an empty directory; each block
# must exit 0 (the blocks use `curl -f`, and check the error answers they show with grep).
# Then stops the server with SIGTERM and requires a clean exit.
# Usage: bash tests/http-api/run.sh   (VALORI_NODE_BIN: a built binary; default: builds one)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/http-api/node.sh
source tests/http-api/node.sh
mkdir "$work/run"
node_start
VALORI_URL=$url
export VALORI_URL

python3 - "$work/blocks" <<'PY'
import os, sys
out = sys.argv[1]
os.makedirs(out)
lines = open("docs/HTTP-API.md", encoding="utf-8").read().split("\n")
n, block, start = 0, None, 0
for i, line in enumerate(lines, 1):
    if block is None and line.strip() == "```sh":
        block, start = [], i + 1
    elif block is not None and line.strip() == "```":
        n += 1
        with open(os.path.join(out, f"{n:02d}.sh"), "w") as f:
            f.write(f"# docs/HTTP-API.md line {start}\n" + "\n".join(block) + "\n")
        block = None
    elif block is not None:
        block.append(line)
if n == 0:
    sys.exit("docs/HTTP-API.md has no ```sh block")
print(f"{n} blocks")
PY
for b in "$work"/blocks/*.sh; do
  echo "--- $(head -n 1 "$b" | sed 's/^# //')"
  if ! (cd "$work/run" && bash -euo pipefail "$b" >"$work/block.out" 2>&1); then
    cat "$work/block.out" >&2
    echo "FAILED: $(head -n 1 "$b" | sed 's/^# //')" >&2
    exit 1
  fi
done
node_stop
echo "docs/HTTP-API.md: every sh block passed"
