#!/usr/bin/env bash
# The replication example as a user runs it (docs/REPLICATION.md): a nats-server on a loopback
# port, the writer and the follower of fleet/examples/fleet.rs in two processes; their last
# lines must be the same sequence number and state hash.
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
