#!/usr/bin/env bash
# The test suite: set-up, then pytest on two workers. Long training tests are marked slow and
# excluded (run them with: bash scripts/test.sh -m slow). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}
exec .venv/bin/python -m pytest -n 2 "$@"
