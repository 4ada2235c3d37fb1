"""Model FLOPs of a jitted function, counted by XLA's cost analysis of its CPU compilation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["cost_flops", "xla_flops"]


def cost_flops(compiled) -> float:
    """FLOPs of a compiled program from XLA's cost analysis (NaN if it has none)."""
    analysis = compiled.cost_analysis()
    # A dict in recent JAX, a list with one dict per program in older ones.
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops", math.nan)
    return float(flops) if flops is not None and flops > 0 else math.nan


def xla_flops(fn: Callable[..., Any], *args: Any, compiled=None) -> tuple[float, str]:
    """(FLOPs of ``jax.jit(fn)(*args)``, the platform that counted them), 2 per multiply-add.

    Counted on the CPU backend whatever device the benchmark runs on: XLA:GPU's cost
    analysis leaves out the operations it hands to libraries (cuDNN convolutions, cuBLAS
    matmuls). On an H200 it gave 16.7 GFLOP for a VGG19 style-transfer evaluation at 512 px
    that XLA:CPU counts as 392.6 (`benchmarks.synthesis_speed`, JAX 0.11.2).

    Args:
      fn: the function, as the benchmark jits it.
      *args: its arguments (copied to the CPU when the default backend is another).
      compiled: the benchmark's own compilation of ``fn``; reused when it is a CPU one.

    Returns:
      (flops, platform): NaN flops when the analysis has no count; platform is "cpu" unless
      JAX has no CPU backend here (then the default backend counted, likely too low).
    """
    if jax.default_backend() == "cpu":
        if compiled is None:
            compiled = jax.jit(fn).lower(*args).compile()
        return cost_flops(compiled), "cpu"
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:  # JAX_PLATFORMS leaves the CPU out
        if compiled is None:
            compiled = jax.jit(fn).lower(*args).compile()
        return cost_flops(compiled), jax.default_backend()
    # Arguments committed to the CPU make jit compile the program for it.
    on_cpu = jax.jit(fn).lower(*jax.device_put(args, cpu)).compile()
    return cost_flops(on_cpu), "cpu"
