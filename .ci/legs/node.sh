# shellcheck shell=bash
# Leg "node": valori-node's HTTP API examples (docs/HTTP-API.md, every sh block against a fresh
# server) and schemathesis against its /openapi.json. Its Rust tests run in the rust leg, the
# KernelClient suite (which starts servers, incl. the kill -9 test) in the python leg.

leg_node() {
  setup_apt host
  setup_rust
  step "valori-node: docs/HTTP-API.md examples, schemathesis"
  cargo build -q --release -p valori-node
  VALORI_NODE_BIN="$PWD/target/release/valori-node" bash tests/http-api/run.sh
  VALORI_NODE_BIN="$PWD/target/release/valori-node" bash tests/http-api/schemathesis.sh 50
}
