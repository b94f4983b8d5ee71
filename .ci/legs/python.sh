# shellcheck shell=bash
# Leg "python": builds the wheel from this repository into the virtualenv target/pyenv, runs
# pytest and the package's quick benchmark.

leg_python() {
  setup_apt host
  setup_nats
  setup_rust
  step "Python: build the wheel from this repository, install it in a venv, pytest, quick benchmark"
  bash python/run_tests.sh
  # shellcheck disable=SC2034 # read by the bench leg: the venv has this checkout's wheel
  CI_PYENV_FRESH=1
}
