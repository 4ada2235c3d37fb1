"""What the backend's fast path and Winograd can take, and the fixed rules between them.

The bottom of `gen_jax.nn.xla_cpu` (it imports nothing of the backend): the argument
checks that decide whether `conv_general_dilated` takes its fast path, the `Choice` of
how a stride-1 3x3 convolution is computed, and the rules of ``algorithm="winograd"`` and
``"auto"``. ``"tune"``'s measured choice (`_tuning`) falls back on ``"auto"``'s rule when
its budget is spent, so the rule lives below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")

# "auto" leaves layers thinner than this (input or output) to the direct convolution: the
# transforms cost O(C + K) per pixel against the products' O(C K), and VGG19's 3-channel
# conv1_1 would be 2-3x slower (`python -m benchmarks.vgg_layer_speed`). Its 64-channel
# layers gain: conv1_2 1.1-1.25x, conv2_1 1.4-1.6x, worth 10 % of a 512 px style-transfer
# evaluation. Winograd's rounding in front of pool1 moves some max-pool choices between
# near-tied inputs, which moves the style-transfer gradient 7.6e-4 (relative L2) from
# PyTorch's at the benchmark's 64 px check (1.5e-5 with these layers direct; 2e-5 at 128 px).
_AUTO_MIN_CHANNELS = 64
# Outputs smaller than this on a side use F(2x2, 3x3): 4x4 tiles would leave too few rows
# in each of the 36 matrix products (measured on VGG19's 16x16 and 32x32 maps).
_TILE4_MIN_SIDE = 24
# "auto" leaves maps smaller than this on a side to the direct convolution: little time to
# save there, and each Winograd layer adds to the compile time (the style-transfer smoke
# test: 60 s without this floor, 26 s with it).
_AUTO_MIN_SIDE = 16


class Choice(NamedTuple):
    """How a stride-1 3x3 convolution is computed: ``tile`` None is the direct
    convolution; 2 or 4 is Winograd F(tile x tile, 3 x 3) with the kernel on the left of
    its batched products when ``kernel_first`` (None: `winograd_conv3x3`'s rule)."""

    tile: int | None
    kernel_first: bool | None = None

    @property
    def name(self) -> str:
        if self.tile is None:
            return "direct"
        order = {None: "", False: ", data first", True: ", kernel first"}[self.kernel_first]
        return f"winograd{self.tile}{order}"


DIRECT = Choice(None, None)


def explicit_padding(
    padding: Any, in_shape, kernel_shape, strides: Sequence[int] = (1, 1)
) -> tuple[tuple[int, int], ...] | None:
    """Padding as ((lo, hi), (lo, hi)), or None when it is not a form we handle."""
    if isinstance(padding, str):
        try:
            pads = lax.padtype_to_pads(in_shape[1:3], kernel_shape[:2], tuple(strides), padding)
        except (TypeError, ValueError):
            return None
        return tuple((int(lo), int(hi)) for lo, hi in pads)
    try:
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        return None
    return pads if len(pads) == 2 else None


def _is_unit(v: Sequence[int] | None) -> bool:
    return v is None or all(int(s) == 1 for s in v)


def _is_nhwc(dimension_numbers: Any) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        # The numeric form of ('NHWC', 'HWIO', 'NHWC').
        return (
            tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2)
            and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1)
            and tuple(dimension_numbers.out_spec) == (0, 3, 1, 2)
        )
    return tuple(dimension_numbers) == NHWC


def fast_plan(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    window_strides: Sequence[int],
    padding: Any,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]] | None:
    """(strides, explicit pads) when the fast path applies, else None."""
    if len(lhs_shape) != 4 or len(rhs_shape) != 4:
        return None
    if not (_is_nhwc(dimension_numbers) and feature_group_count == 1 and batch_group_count == 1):
        return None
    if not (_is_unit(lhs_dilation) and _is_unit(rhs_dilation)):
        return None
    strides = tuple(int(s) for s in window_strides)
    if len(strides) != 2 or min(strides) < 1:
        return None
    pads = explicit_padding(padding, lhs_shape, rhs_shape, strides)
    if pads is None or min(p for pair in pads for p in pair) < 0:
        return None
    # At least one output pixel.
    if any(n + lo + hi < k for n, (lo, hi), k in zip(lhs_shape[1:3], pads, rhs_shape[:2])):
        return None
    return strides, pads


def fast_path_applies(lhs_shape, rhs_shape, window_strides, padding, **kwargs) -> bool:
    """Whether `conv_general_dilated` uses the loop-friendly gradients for these arguments.

    Takes `lax.conv_general_dilated`'s arguments, with shapes in place of arrays.
    """
    return fast_plan(lhs_shape, rhs_shape, window_strides, padding, **kwargs) is not None


def winograd_fits(rhs_shape: Sequence[int], strides: Sequence[int], pads) -> bool:
    """Whether Winograd can compute it: a 3x3 kernel, stride 1, padding 0..2 per side."""
    return (
        tuple(rhs_shape[:2]) == (3, 3)
        and tuple(strides) == (1, 1)
        and all(0 <= p <= 2 for pair in pads for p in pair)
    )


def output_side(lhs_shape: Sequence[int], pads) -> int:
    """The shorter side of a 3x3 convolution's output."""
    return min(n + lo + hi - 2 for n, (lo, hi) in zip(lhs_shape[1:3], pads))


def fixed_choice(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    pads,
    dtype: Any,
    algorithm: str,
    backend: str | None = None,
) -> Choice:
    """``"winograd"``'s or ``"auto"``'s `Choice` for a convolution that `winograd_fits`.

    ``"winograd"`` takes Winograd; ``"auto"`` only on the CPU backend (``backend``,
    default `jax.default_backend()`), in float32 or float64 (its transforms lose too much
    in 16-bit floats), with at least 64 input and output channels and an output of at
    least 16 pixels on a side. The tile is 4 unless the output is under 24 pixels on a
    side, then 2; the product order is left to `winograd_conv3x3`'s rule.
    """
    side = output_side(lhs_shape, pads)
    if algorithm == "auto":
        if (backend or jax.default_backend()) != "cpu":
            return DIRECT
        if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
            return DIRECT
        if min(rhs_shape[2], rhs_shape[3]) < _AUTO_MIN_CHANNELS or side < _AUTO_MIN_SIDE:
            return DIRECT
    return Choice(4 if side >= _TILE4_MIN_SIDE else 2, None)
