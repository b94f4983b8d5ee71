#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each one; fails if any target crashes.
#
#   scripts/fuzz.sh SECONDS [TARGET...]        each target (default: all) for SECONDS
#   scripts/fuzz.sh --runs N [TARGET...]       each target for N executions
#   options (before the positional arguments):
#     --jobs J     run J targets at a time (default 1; the machine has 2 cores)
#     --reseed     regenerate the seed corpora fuzz/corpus/ from tests/vectors/ first
#     --no-build   use the binaries of the last build
#
# Per target, first the reproducers in fuzz/regressions/TARGET/ must pass (each is an input
# that once crashed it), then libFuzzer runs with -rss_limit_mb=2048 -malloc_limit_mb=512 (a
# huge allocation is a crash), -timeout=30, the committed seeds fuzz/corpus/TARGET (read only)
# and a working corpus in fuzz/target/corpus/TARGET (kept between runs, never committed). A
# crash leaves its input in fuzz/artifacts/TARGET/. The table at the end gives executions,
# seconds and crashes per target. Installs the nightly toolchain and cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(command kernel_state kernel_snapshot wal_segment snapshot_file export recovery c_api
  c_api_db index)

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  echo "targets: ${all_targets[*]}" >&2
  exit 2
}

jobs=1 reseed=0 build=1 runs="" seconds=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --reseed) reseed=1; shift ;;
    --no-build) build=0; shift ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
if [ -z "$runs" ]; then
  [ "$#" -gt 0 ] || usage
  seconds=$1
  shift
fi
[[ "${seconds:-$runs}" =~ ^[0-9]+$ ]] || { echo "not a number: ${seconds:-$runs}" >&2; exit 2; }
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  case " ${all_targets[*]} " in *" $t "*) ;; *) echo "unknown target $t" >&2; usage ;; esac
done

# Tools: the nightly toolchain (sanitizer flags) and cargo-fuzz.
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "$reseed" = 1 ]; then
  echo "=== seed corpora from tests/vectors/"
  for t in command kernel_state kernel_snapshot wal_segment snapshot_file export recovery; do
    rm -rf "fuzz/corpus/$t"
  done
  cargo run -q --release --manifest-path fuzz/Cargo.toml -p valori-fuzz-seed -- tests/vectors fuzz/corpus
fi

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$host/release"
if [ "$build" = 1 ]; then
  echo "=== build (cargo +nightly fuzz build: release, debug assertions, AddressSanitizer)"
  start=$(date +%s)
  if [ "${#targets[@]}" = "${#all_targets[@]}" ]; then
    cargo +nightly fuzz build
  else
    for t in "${targets[@]}"; do cargo +nightly fuzz build "$t"; done
  fi
  echo "build: $(($(date +%s) - start)) s"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
logs=fuzz/target/logs
mkdir -p "$logs"

# run_target T: regressions, then fuzzing; writes $logs/T.log and $logs/T.result
# ("executions seconds crashes status").
run_target() {
  local t=$1 bin="$bin_dir/$1" log="$logs/$1.log" work="fuzz/target/corpus/$1"
  local artifacts="fuzz/artifacts/$1/" seeds=() limit start end rc=0 execs crashes=0 status=ok
  mkdir -p "$work" "$artifacts"
  : >"$log"
  local repro=()
  if [ -d "fuzz/regressions/$t" ]; then
    mapfile -t repro < <(find "fuzz/regressions/$t" -type f | sort)
  fi
  if [ "${#repro[@]}" -gt 0 ]; then
    echo "--- $t: ${#repro[@]} regression input(s)" >>"$log"
    if ! "$bin" -rss_limit_mb=2048 -malloc_limit_mb=512 "${repro[@]}" >>"$log" 2>&1; then
      echo "0 0 1 regression" >"$logs/$t.result"
      return 0
    fi
  fi
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
  start=$(date +%s.%N)
  "$bin" "$work" "${seeds[@]}" "${limit[@]}" -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts" >>"$log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if grep -q "libFuzzer: run interrupted" "$log"; then
    status="interrupted (a signal stopped it early)"
  elif [ "$rc" != 0 ]; then
    crashes=1
    status="crash (exit $rc)"
  fi
  echo "${execs:-0} $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }') $crashes $status" \
    >"$logs/$t.result"
}

echo "=== fuzz: ${targets[*]} (${runs:+$runs runs}${seconds:+$seconds s} each, $jobs at a time)"
running=0
for t in "${targets[@]}"; do
  rm -f "$logs/$t.result"
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
printf '\n%-16s %14s %9s %10s %8s  %s\n' target executions seconds "exec/s" crashes status
for t in "${targets[@]}"; do
  read -r execs secs crashes status <"$logs/$t.result"
  rate=$((secs > 0 ? execs / secs : execs))
  printf '%-16s %14s %9s %10s %8s  %s\n' "$t" "$execs" "$secs" "$rate" "$crashes" "$status"
  if [ "$status" != ok ] && [ "$crashes" = 0 ]; then
    failed=1
    echo "  $t: $status; see $logs/$t.log" >&2
  fi
  if [ "$crashes" != 0 ]; then
    failed=1
    if [ "$status" = regression ]; then
      echo "  $t: an input in fuzz/regressions/$t/ still fails; see $logs/$t.log" >&2
    else
      echo "  $t: see $logs/$t.log; the input is in fuzz/artifacts/$t/" >&2
    fi
    grep -m 3 -E "panicked at|assertion|ERROR: libFuzzer|ERROR: AddressSanitizer|out-of-memory" \
      "$logs/$t.log" | sed 's/^/    /' >&2 || true
  fi
done
if [ "$failed" = 1 ]; then
  echo "fuzz: a target crashed or did not finish" >&2
  exit 1
fi
echo "fuzz: no crashes"
