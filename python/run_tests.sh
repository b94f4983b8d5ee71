#!/usr/bin/env bash
# Builds the valori wheel from this repository, installs it into a fresh virtualenv (never
# `pip install valori`: that name on PyPI is another project), and runs the pytest suite and
# the benchmark in its quick configuration. The KernelClient tests start valori-node servers
# (built here) on 127.0.0.1 and ports they pick, and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyenv
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-dev.txt
rm -rf target/wheels
"$venv/bin/maturin" build -q --release -m python/Cargo.toml -o target/wheels
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/valori-*.whl
cargo build -q --release -p valori-node
export VALORI_NODE_BIN="$PWD/target/release/valori-node"
"$venv/bin/python" -c "import valori, sys; print('valori', valori.__version__, 'from', valori.__file__)"
# From the repository root, so `import valori` finds the installed wheel, not python/valori.
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
"$venv/bin/python" python/bench/bench.py --quick
