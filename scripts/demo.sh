#!/usr/bin/env bash
# The main job: set-up, then DCGAN on Fashion-MNIST (about ten minutes on a 2-core CPU).
# Writes runs/dcgan/{samples.png,samples/,metrics.jsonl,curves.png,checkpoints/,results.json};
# rerun to resume. Extra arguments are experiment overrides, e.g. --steps 5000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.jax_cache}
exec .venv/bin/python -m experiments.dcgan --workdir "${WORKDIR:-runs/dcgan}" "$@"
