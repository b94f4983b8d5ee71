# shellcheck shell=bash
# Leg "quickstart": the README's first command, the Rust quickstart and the kernel example
# must print the same state hash; the README's valori commands run on the quickstart's database;
# the replication example's writer and follower agree.

leg_quickstart() {
  setup_apt host
  setup_rust
  step "quickstart (the README's first command), the Rust quickstart and the kernel example agree"
  local data_dir hashes
  data_dir=$(mktemp -d)
  bash scripts/quickstart.sh "$data_dir/c-db" | tee "$data_dir/c.txt"
  step "the README's valori commands on the quickstart's database"
  local cmds tool_hash
  cmds=$(grep '^dist/valori-sdk/bin/valori ' README.md | sed "s|data/quickstart-c|$data_dir/c-db|; s| *#.*||")
  [ "$(echo "$cmds" | wc -l)" -ge 3 ] || die "the README lost its valori commands"
  while read -r cmd; do
    echo "+ $cmd"
    bash -c "$cmd"
  done <<< "$cmds"
  tool_hash=$(dist/valori-sdk/bin/valori hash "$data_dir/c-db" | cut -d' ' -f1)
  grep -q "^state hash: $tool_hash" "$data_dir/c.txt" || die "valori hash differs from the quickstart's"
  VALORI_DATA_DIR="$data_dir" cargo run --release -p valori-engine --example quickstart | tee "$data_dir/first.txt"
  VALORI_DATA_DIR="$data_dir" cargo run --release -p valori-engine --example quickstart | tee "$data_dir/second.txt"
  grep -q "^reopened" "$data_dir/second.txt"
  cargo run --release -p valori-kernel --example snapshot -- "$data_dir" | tee "$data_dir/kernel.txt"
  hashes=$(grep -h "^state hash:" "$data_dir/c.txt" "$data_dir/first.txt" "$data_dir/second.txt" \
    "$data_dir/kernel.txt" | sort -u | wc -l)
  if [ "$hashes" != 1 ]; then
    die "state hashes differ between the engine quickstart runs and the kernel example"
  fi
  rm -rf "$data_dir"
  step "the replication example: a writer and a follower through nats-server print the same hash"
  setup_nats
  bash scripts/fleet-demo.sh
}
