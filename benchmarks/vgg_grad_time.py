"""Seconds for one VGG19 forward+backward (to relu5_1) on one image: a probe for XLA flags.

    XLA_FLAGS=--xla_cpu_use_onednn=true python -m benchmarks.vgg_grad_time --size 128

Compiles once, then prints the median of `--repeats` timed calls. Run it once per
XLA_FLAGS setting to compare (XLA reads the flags at start-up, so one process per setting).
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp

from benchmarks.runner import median_seconds
from gen_jax.models.features import get_feature_net


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    module, params = get_feature_net("random_vgg19", key=jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (1, args.size, args.size, 3))

    def loss(x, params):
        return jnp.sum(module.apply({"params": params}, x, outputs=("relu5_1",))["relu5_1"] ** 2)

    median = median_seconds(jax.jit(jax.grad(loss)), x, params, repeats=args.repeats)
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}: {median:.3f} s per forward+backward")
    return median


if __name__ == "__main__":
    main()
