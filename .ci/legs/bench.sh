# shellcheck shell=bash
# Leg "bench": the peer benchmarks (exact and approximate) in their tiny configurations (in the virtualenv the python leg
# builds; run alone, this leg builds the wheel into it first), the HTTP server next to the
# in-process API (quick), valori verify's rate (quick), the benches compile, and the engine
# bench runs in its quick configuration.

# The valori wheel of this checkout in target/pyenv (never `pip install valori`: that name on
# PyPI is another project).
bench_pyenv() {
  [ -z "${CI_PYENV_FRESH:-}" ] || return 0
  step "Python virtualenv with the valori wheel built from this repository"
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install -q --disable-pip-version-check -r python/requirements-dev.txt
  rm -rf target/wheels
  target/pyenv/bin/maturin build -q --release -m python/Cargo.toml -o target/wheels
  target/pyenv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    target/wheels/valori-*.whl
  CI_PYENV_FRESH=1
}

leg_bench() {
  setup_apt host
  setup_rust
  bench_pyenv
  step "peer benchmark (bench/peers.py) in its tiny configuration: faiss, usearch, hnswlib, sqlite-vec"
  target/pyenv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
  rm -rf target/bench-tiny
  target/pyenv/bin/python bench/peers.py --tiny --out target/bench-tiny --tmp target/bench-tiny/tmp
  local f
  for f in peers.md peers.json peers.png; do
    test -s "target/bench-tiny/$f" || die "bench/peers.py wrote no $f"
  done
  cat target/bench-tiny/peers.md

  step "approximate search (bench/peers.py ann, i.e. bench/ann.py) in its tiny configuration: valori, hnswlib, faiss, usearch"
  rm -rf target/ann-tiny
  target/pyenv/bin/python bench/peers.py ann --tiny --out target/ann-tiny --tmp target/ann-tiny/tmp
  for f in ann.md ann.json ann.png; do
    test -s "target/ann-tiny/$f" || die "bench/ann.py wrote no $f"
  done

  step "valori-node next to the in-process API (bench/node.py --quick)"
  cargo build -q --release -p valori-node
  target/pyenv/bin/python bench/node.py --quick --node target/release/valori-node

  step "valori verify's rate (bench/verify.sh --quick)"
  bash bench/verify.sh --quick

  step "benches compile; the engine bench runs in its quick configuration"
  cargo bench -p valori-kernel --no-run
  VALORI_BENCH_QUICK=1 cargo bench -p valori-engine --bench engine
}
