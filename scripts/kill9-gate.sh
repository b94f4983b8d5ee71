#!/usr/bin/env bash
# kill -9 gate (not run in CI): CYCLES kill -9 cycles in total (default 21000), split evenly
# over the three durability modes (fsync, group, none). Each cycle starts a writer process
# (three threads on one handle, each printing every acknowledged command), kills it with
# SIGKILL at a random moment, reopens the database and checks that its state is exactly the
# acknowledged commands plus at most the one each thread had in flight
# (engine/tests/kill9.rs, release build). Prints progress, a summary per mode, and exits
# non-zero on any failure; a failing cycle's directory is kept and named in the output.
#
#   scripts/kill9-gate.sh [CYCLES]
#
# VALORI_KILL9_DIR=/some/dir puts the databases on another file system (default: $TMPDIR or
# /tmp). VALORI_KILL9_MODES="fsync none" runs a subset of the modes.
set -euo pipefail

cycles=${1:-21000}
if ! [[ $cycles =~ ^[0-9]+$ ]] || ((cycles < 1)); then
    echo "usage: $0 [CYCLES]   (total kill -9 cycles, split over the durability modes)" >&2
    exit 2
fi
read -r -a modes <<<"${VALORI_KILL9_MODES:-fsync group none}"
per_mode=$(((cycles + ${#modes[@]} - 1) / ${#modes[@]}))

cd "$(dirname "$0")/.."
echo "kill -9 gate: $cycles cycles, $per_mode per mode (${modes[*]})" >&2
echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores" >&2
dbdir=${VALORI_KILL9_DIR:-${TMPDIR:-/tmp}}
echo "databases in: $dbdir ($(df -T "$dbdir" | awk 'NR == 2 { print $2 }'))" >&2

cargo test --release -p valori-engine --test kill9 --no-run >&2

declare -A test_of=([fsync]=kill9_loop_fsync [group]=kill9_loop_group_commit [none]=kill9_loop_none)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
started=$(date +%s)
for mode in "${modes[@]}"; do
    name=${test_of[$mode]:-}
    if [[ -z $name ]]; then
        echo "unknown mode $mode (fsync, group, none)" >&2
        exit 2
    fi
    echo "--- $mode: $per_mode cycles" >&2
    # Progress and the summary line go to stderr; keep a copy to read the summary back.
    if ! VALORI_KILL9_CYCLES=$per_mode cargo test --release -q -p valori-engine --test kill9 \
        -- --exact "$name" --nocapture --test-threads=1 2> >(tee -a "$log" >&2) >/dev/null; then
        status=1
    fi
done
wait

echo
printf '%-6s %8s %12s %14s %9s %9s\n' mode cycles acknowledged checked failures seconds
total_cycles=0 total_failures=0
for mode in "${modes[@]}"; do
    line=$(grep "^kill9 summary: mode=$mode " "$log" | tail -1 || true)
    if [[ -z $line ]]; then
        printf '%-6s %s\n' "$mode" "no summary: the loop did not finish"
        status=1
        continue
    fi
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf '%-6s %8s %12s %14s %9s %9s\n' "$mode" "$(field cycles)" "$(field acked)" \
        "$(field checks)" "$(field failures)" "$(field seconds)"
    total_cycles=$((total_cycles + $(field cycles)))
    total_failures=$((total_failures + $(field failures)))
done
echo "total: $total_cycles cycles, $total_failures failures, $(($(date +%s) - started)) s wall"
echo "(acknowledged: acknowledgments received; checked: acknowledged commands verified, each"
echo " one again after every later kill)"
if ((total_failures > 0 || status != 0)); then
    echo "kill -9 gate FAILED" >&2
    exit 1
fi
echo "kill -9 gate passed"
