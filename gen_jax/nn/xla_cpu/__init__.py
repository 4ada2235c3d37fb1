"""The CPU convolution backend: fast loop gradients, Winograd, and measured choices.

This package is the one entry point: import from ``gen_jax.nn.xla_cpu``, never from its
modules (``tests/test_imports.py`` enforces it). Plug it into Flax as
``flax.linen.Conv(..., conv_general_dilated=functools.partial(conv_general_dilated,
algorithm=...))``.

`conv_general_dilated` is a drop-in for `jax.lax.conv_general_dilated`. On its fast path
(NHWC input, HWIO kernel, any stride, no dilation, one feature group, padding >= 0;
`fast_path_applies`) the forward pass is a stride-1 `lax` convolution and the backward
pass is written out as two ordinary convolutions in canonical form (Dumoulin & Visin
2016, arXiv:1603.07285, Sec. 4): JAX's automatic transpose rule emits convolutions whose
dimension labels XLA:CPU canonicalises only at the top level of a program, so inside a
``while`` body (``lax.scan``, optax's L-BFGS line search) they run on a slow generic path
(``python -m benchmarks.xla_cpu_pitfalls``: about 3x for the input gradient and 30x for
the kernel gradient of one 1x128x128x64 -> 64 convolution). A strided convolution first
becomes a stride-1 one by space-to-depth; every other configuration falls back to
`lax.conv_general_dilated` unchanged.

``algorithm`` picks how a fast-path stride-1 3x3 convolution is computed (`ALGORITHMS`,
`winograd_plan`): ``"direct"``; ``"winograd"``, Winograd's F(m x m, 3 x 3)
(`winograd_conv3x3`, Lavin & Gray 2016, arXiv:1509.09308: 2.25x to 4x fewer
multiplications); ``"auto"``, Winograd only where it pays by a fixed rule measured on a
CPU; ``"tune"``, the fastest on the machine at hand, from the tuning table.

The tuning table (``"tune"``): one entry per convolution key (backend, device kind,
shapes, padding, dtype, precision), looked up on every trace and measured only when
missing, so the same inputs compile to the same program; `tuning_records` lists it,
`save_tuning` / `load_tuning` carry it to another process (a JSON file), `clear_tuning`
empties it, `set_tuning_budget` caps the time spent measuring.

Modules of the package, each importing only those before it in this list: `_plan` (fast-path
checks, `Choice`, the fixed rules), `_direct` (the loop-friendly direct convolution and
`kernel_gradient`), `_winograd`, `_tuning`, `_dispatch` (`conv_general_dilated`).
"""

from gen_jax.nn.xla_cpu._dispatch import ALGORITHMS, conv_general_dilated, winograd_plan
from gen_jax.nn.xla_cpu._plan import Choice, fast_path_applies
from gen_jax.nn.xla_cpu._tuning import (
    candidates,
    clear_tuning,
    load_tuning,
    relative_l2,
    save_tuning,
    set_tuning_budget,
    tuning_budget,
    tuning_records,
)
from gen_jax.nn.xla_cpu._winograd import TILES, winograd_conv3x3, winograd_kernels

__all__ = [
    "ALGORITHMS",
    "TILES",
    "Choice",
    "candidates",
    "clear_tuning",
    "conv_general_dilated",
    "fast_path_applies",
    "load_tuning",
    "relative_l2",
    "save_tuning",
    "set_tuning_budget",
    "tuning_budget",
    "tuning_records",
    "winograd_conv3x3",
    "winograd_kernels",
    "winograd_plan",
]
