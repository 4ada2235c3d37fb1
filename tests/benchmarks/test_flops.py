"""benchmarks.flops: XLA's FLOP count, taken from a CPU compilation on every backend."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks import flops


def _conv(x, w):
    return lax.conv_general_dilated(
        x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


X = jnp.ones((2, 6, 6, 3))  # 2 images, 4x4 outputs of a 3x3 kernel, 3 -> 5 channels
W = jnp.ones((3, 3, 3, 5))
CONV_FLOPS = 2 * (2 * 4 * 4) * (3 * 3 * 3) * 5  # 2 per multiply-add


def test_counts_matmuls_and_convolutions():
    count, platform = flops.xla_flops(lambda a, b: a @ b, jnp.ones((4, 8)), jnp.ones((8, 3)))
    assert (count, platform) == (2 * 4 * 8 * 3, "cpu")
    count, _ = flops.xla_flops(_conv, X, W)
    assert count == CONV_FLOPS


def test_reuses_a_cpu_compilation():
    compiled = jax.jit(_conv).lower(X, W).compile()
    assert flops.xla_flops(_conv, X, W, compiled=compiled) == (flops.cost_flops(compiled), "cpu")


def test_on_another_backend_the_count_comes_from_a_cpu_compilation(monkeypatch):
    # As on a GPU machine: the default backend is not the CPU, whose analysis is used anyway.
    monkeypatch.setattr(flops.jax, "default_backend", lambda: "gpu")
    compiled_elsewhere = object()  # not analysed: the GPU's count would leave out cuDNN's work
    count, platform = flops.xla_flops(_conv, X, W, compiled=compiled_elsewhere)
    assert (count, platform) == (CONV_FLOPS, "cpu")
