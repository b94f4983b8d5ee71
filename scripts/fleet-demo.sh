#!/usr/bin/env bash
# The replication example as a user runs it (docs/REPLICATION.md): a nats-server on a loopback
# port, the writer and the follower of fleet/examples/fleet.rs in two processes; their last
# lines must be the same sequence number and state hash. Without TARGET, a follower in C
# (examples-c/follow.c, linked with libvalori.a, valori_follow) must print the same line too.
# Then shared memory: two writers (the second built for TARGET, if given) submit commands to one
# stream at the same time; both must end with the same stream position and state hash.
#
#   bash scripts/fleet-demo.sh [TARGET]
#
# With TARGET (e.g. aarch64-unknown-linux-gnu) the follower is built for that architecture and
# run under its cargo runner (qemu-user, .cargo/config.toml): an x86_64 writer's stream, an
# aarch64 follower, the same hash.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p "$port" >"$work/nats.log" 2>&1 &
nats=$!
trap 'kill "$nats" 2>/dev/null || true; wait "$nats" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
target=${1:-}
cargo build -q -p valori-fleet --example fleet
follow=(target/debug/examples/fleet)
if [ -n "$target" ]; then
  cargo build -q -p valori-fleet --example fleet --target "$target"
  follow=(cargo run -q -p valori-fleet --example fleet --target "$target" --)
fi
target/debug/examples/fleet write "nats://127.0.0.1:$port" "$work/writer" 3 | tee "$work/writer.out"
seq=$(tail -n 1 "$work/writer.out" | cut -d' ' -f2)
timeout 300 "${follow[@]}" follow "nats://127.0.0.1:$port" "$work/follower" "$seq" | tee "$work/follower.out"
w=$(tail -n 1 "$work/writer.out")
f=$(tail -n 1 "$work/follower.out")
[ "$w" = "$f" ] || { echo "writer: $w / follower: $f" >&2; exit 1; }
echo "FLEET_DEMO writer (x86_64) and follower (${target:-x86_64}) agree: $w"
if [ -z "$target" ]; then
  cargo build -q -p valori-c
  gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -Iinclude examples-c/follow.c target/debug/libvalori.a \
    -lpthread -ldl -lm -lgcc_s -o "$work/follow-c"
  c=$(timeout 300 "$work/follow-c" "nats://127.0.0.1:$port" "$work/follower-c" "$seq")
  [ "$w" = "$c" ] || { echo "writer: $w / C follower: $c" >&2; exit 1; }
  echo "FLEET_DEMO writer and C follower (valori_follow) agree: $c"
fi

# Shared memory: two writers at once, each 4 commands; both wait for all 8.
target/debug/examples/fleet share "nats://127.0.0.1:$port" "$work/robot-a" robot-a 4 8 >"$work/a.out" &
a=$!
timeout 300 "${follow[@]}" share "nats://127.0.0.1:$port" "$work/robot-b" robot-b 4 8 >"$work/b.out"
wait "$a"
cat "$work/a.out" "$work/b.out"
ra=$(tail -n 1 "$work/a.out")
rb=$(tail -n 1 "$work/b.out")
[ "$ra" = "$rb" ] || { echo "robot-a: $ra / robot-b: $rb" >&2; exit 1; }
case "$ra" in "stream 8 seq 8 hash "*) ;; *) echo "unexpected: $ra" >&2; exit 1 ;; esac
echo "FLEET_DEMO shared memory: robot-a (x86_64) and robot-b (${target:-x86_64}) agree: $ra"
