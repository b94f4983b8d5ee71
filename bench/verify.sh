#!/usr/bin/env bash
# How fast `valori verify` reads a log: builds the tool and the make_log example, writes two
# databases whose whole content is in one WAL segment (no checkpoint), and verifies each
# several times, printing the rate of every run and the median.
#   batches  VECTORS vectors of dimension 384 in batches of 1,000 (default 650,000: ~1 GB)
#   singles  VECTORS/0.65 one-insert records of dimension 16 (default 1,000,000: ~125 MB)
# Usage: bash bench/verify.sh [--quick] [WORK_DIR]   (--quick: 20,000 vectors, for CI)
set -euo pipefail
cd "$(dirname "$0")/.."
vectors=650000
runs=5
if [ "${1:-}" = "--quick" ]; then
  vectors=20000
  runs=2
  shift
fi
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cargo build -q --release -p valori-cli --bin valori --example make_log
python3 -c "import sys; sys.path.insert(0, 'bench'); import machine; print('CPU:', machine.cpu_name(), machine.simd())"
singles=$((vectors * 100 / 65))
for kind in batches singles; do
  db="$work/$kind"
  rm -rf "$db"
  if [ "$kind" = batches ]; then
    target/release/examples/make_log "$db" "$vectors" 384 1000
  else
    target/release/examples/make_log "$db" "$singles" 16 1
  fi
  rates=()
  for _ in $(seq "$runs"); do
    out=$(target/release/valori verify "$db" --json)
    rate=$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(round(v["wal_bytes"]/v["seconds"]/1e6))' "$out")
    rates+=("$rate")
  done
  bytes=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wal_bytes"])' "$out")
  records=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$out")
  median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$kind: $records records, $bytes WAL bytes: ${rates[*]} MB/s (median $median MB/s)"
  rm -rf "$db"
done
