# shellcheck shell=bash
# Sourced by the scripts here: node_start ARGS... starts valori-node ($VALORI_NODE_BIN, built
# if unset) on 127.0.0.1 and a port it picks, with data in $work/data, and sets $url;
# node_stop stops it with SIGTERM and fails unless it exits cleanly. $work is a temporary
# directory removed at exit (with the server, if still running).

if [ -z "${VALORI_NODE_BIN:-}" ]; then
  cargo build -q --release -p valori-node
  VALORI_NODE_BIN=$PWD/target/release/valori-node
fi
work=$(mktemp -d)
server=
url=
node_cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -KILL "$server"; fi
  rm -rf "$work"
}
trap node_cleanup EXIT

node_start() {
  "$VALORI_NODE_BIN" --data "$work/data" --listen 127.0.0.1:0 "$@" >"$work/out" 2>"$work/log" &
  server=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$work/out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/^valori-node listening on //p' "$work/out")
  [ -n "$url" ] || { cat "$work/log" >&2; echo "valori-node did not start" >&2; exit 1; }
}

node_stop() {
  if grep -n "panicked" "$work/log"; then echo "valori-node panicked" >&2; exit 1; fi
  kill -TERM "$server"
  wait "$server" || { tail -20 "$work/log" >&2; echo "valori-node did not exit cleanly" >&2; exit 1; }
  server=
}
