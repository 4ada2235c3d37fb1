"""`conv_general_dilated`: the backend's one convolution, dispatching to the others.

The top of `gen_jax.nn.xla_cpu`: it decides, per call, between `lax.conv_general_dilated`
(anything off the fast path), the direct convolution with loop-friendly gradients
(`_direct`, after space-to-depth for strides) and Winograd (`_winograd`), by
`winograd_plan`: a fixed rule (`_plan`) or the tuning table (`_tuning`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax import lax

from gen_jax.nn.xla_cpu import _tuning, _winograd
from gen_jax.nn.xla_cpu._direct import direct_conv, space_to_depth
from gen_jax.nn.xla_cpu._plan import DIRECT, Choice, fast_plan, fixed_choice, winograd_fits

ALGORITHMS = ("direct", "winograd", "auto", "tune")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}.")


def winograd_plan(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dtype: Any,
    algorithm: str = "auto",
    backend: str | None = None,
    precision: Any = None,
) -> Choice:
    """How `conv_general_dilated` computes a fast-path convolution: a `Choice` (``tile``
    None for the direct convolution; else Winograd's tile and the order of its batched
    products, None leaving that to `winograd_conv3x3`'s rule).

    Winograd needs a 3x3 kernel, stride 1 and padding of at most 2. ``"winograd"`` takes
    every such convolution; ``"auto"`` only those that run faster that way by a fixed rule:
    on the CPU backend (``backend``, default `jax.default_backend()`), in float32 or
    float64 (its transforms lose too much in 16-bit floats), with at least 64 input and
    output channels and an output of at least 16 pixels on a side; the tile is 4
    (F(4x4, 3x3)) unless the output is under 24 pixels on a side, then 2. ``"tune"``
    looks the convolution up in the tuning table, which measures every candidate on
    ``backend`` the first time it meets a key and keeps the fastest (see the package
    docstring; ``precision`` is part of the key).

    Args:
      lhs_shape, rhs_shape: NHWC input and HWIO kernel shapes.
      strides, pads: as planned by the fast path: (sh, sw) and ((top, bottom), (left, right)).
      dtype: the input's dtype.
      algorithm: one of `ALGORITHMS`.
      backend: the platform to decide for.
      precision: the convolution's precision (``"tune"`` measures at it).

    Raises:
      ValueError: an unknown ``algorithm``.
    """
    _check_algorithm(algorithm)
    if algorithm == "direct" or not winograd_fits(rhs_shape, strides, pads):
        return DIRECT
    if algorithm == "tune":
        return _tuning.tuned_choice(lhs_shape, rhs_shape, pads, dtype, precision, backend)
    return fixed_choice(lhs_shape, rhs_shape, pads, dtype, algorithm, backend)


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Any,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    algorithm: str = "direct",
) -> jax.Array:
    """`lax.conv_general_dilated`, with loop-friendly gradients on the fast path.

    Same arguments and result as `jax.lax.conv_general_dilated`. When
    `fast_path_applies(...)` (NHWC/HWIO, no dilation, one group, padding >= 0) the
    gradients are the canonical convolutions of the package docstring (a strided
    convolution first becomes a stride-1 one by space-to-depth); otherwise this is
    `lax.conv_general_dilated` itself.

    ``algorithm`` ("direct", "winograd", "auto" or "tune", keyword only) picks how a
    fast-path stride-1 3x3 convolution is computed; `winograd_plan` says when and how
    Winograd is used.
    Bind it with `functools.partial` to hand this to `flax.linen.Conv`.

    Raises:
      ValueError: an unknown ``algorithm``.
    """
    _check_algorithm(algorithm)
    kwargs = {
        "lhs_dilation": lhs_dilation,
        "rhs_dilation": rhs_dilation,
        "dimension_numbers": dimension_numbers,
        "feature_group_count": feature_group_count,
        "batch_group_count": batch_group_count,
    }
    plan = fast_plan(lhs.shape, rhs.shape, window_strides, padding, **kwargs)
    if plan is None:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            precision=precision,
            preferred_element_type=preferred_element_type,
            **kwargs,
        )
    strides, pads = plan
    if isinstance(precision, list):
        precision = tuple(precision)
    kh, kw = rhs.shape[:2]
    if strides != (1, 1) or not all(
        p <= k - 1 for (lo, hi), k in zip(pads, (kh, kw)) for p in (lo, hi)
    ):
        lhs, rhs = space_to_depth(lhs, rhs, strides, pads)
        pads = ((0, 0), (0, 0))
    elif preferred_element_type is None:
        choice = winograd_plan(
            lhs.shape, rhs.shape, strides, pads, lhs.dtype, algorithm, precision=precision
        )
        if choice.tile is not None:
            return _winograd.winograd_conv3x3(
                lhs,
                rhs,
                pads,
                tile=choice.tile,
                precision=precision,
                kernel_first=choice.kernel_first,
            )
    return direct_conv(lhs, rhs, pads, precision, preferred_element_type)
