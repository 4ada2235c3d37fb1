"""A convolution whose gradients stay fast inside XLA:CPU loops.

`conv_general_dilated` is a drop-in for `jax.lax.conv_general_dilated` (and for the
`conv_general_dilated` field of `flax.linen.Conv`). On its fast path (NHWC input, HWIO
kernel, any stride, no dilation, one feature group, padding >= 0) the forward pass is a
stride-1 `lax` convolution, and the backward pass is written out as two ordinary
convolutions in canonical form (Dumoulin & Visin 2016, arXiv:1603.07285, Sec. 4):

* the input gradient is the output gradient convolved with the kernel flipped in space and
  transposed in channels (HWOI -> HWIO, made an explicit array), padded k - 1 - pad;
* the kernel gradient is a convolution of the padded input, with its channels as the
  batch and its batch as the channels, against the output gradient as a kernel of the
  output's spatial size.

Why: JAX's automatic transpose rule emits the same two products as convolutions whose
dimension labels XLA:CPU canonicalises only at the top level of a program. Inside a
`while` body (`lax.scan`, `lax.while_loop`, optax's L-BFGS line search) they run on a slow
generic path: `python -m benchmarks.xla_cpu_pitfalls` measures the input gradient of one
1x128x128x64 -> 64 convolution at about 3x, and the kernel gradient at about 30x, the
time of this form in a loop (one core). Outside loops the two forms take the same time.

A strided convolution (or one padded by more than k - 1) first becomes a VALID stride-1
one by space-to-depth: phase r of every stride-s window moves into the channels, and the
kernel is regrouped to match (with zero taps where s does not divide k). Every other
configuration (dilations, feature groups, other layouts) falls back to
`lax.conv_general_dilated` unchanged.

``algorithm="winograd"`` computes stride-1 3x3 convolutions on the fast path by
Winograd's F(m x m, 3 x 3) instead (`gen_jax.nn.winograd`: 2.25x to 4x fewer
multiplications); ``algorithm="auto"`` does so only where it pays by a fixed rule, see
`winograd_plan`, and ``algorithm="tune"`` where it measures fastest on the machine at hand
(`gen_jax.nn.conv_tune`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from gen_jax.nn import conv_tune, winograd

__all__ = [
    "ALGORITHMS",
    "conv_general_dilated",
    "explicit_padding",
    "fast_path_applies",
    "kernel_gradient",
    "winograd_plan",
]

ALGORITHMS = ("direct", "winograd", "auto", "tune")
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

_NHWC = ("NHWC", "HWIO", "NHWC")


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
    return tuple(dimension_numbers) == _NHWC


def _fast_plan(
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
    return _fast_plan(lhs_shape, rhs_shape, window_strides, padding, **kwargs) is not None


def winograd_plan(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dtype: Any,
    algorithm: str = "auto",
    backend: str | None = None,
    precision: Any = None,
) -> conv_tune.Choice:
    """How `conv_general_dilated` computes a fast-path convolution: a `conv_tune.Choice`
    (``tile`` None for the direct convolution; else Winograd's tile and the order of its
    batched products, None leaving that to `gen_jax.nn.winograd`'s rule).

    Winograd needs a 3x3 kernel, stride 1 and padding of at most 2. ``"winograd"`` takes
    every such convolution; ``"auto"`` only those that run faster that way by a fixed rule:
    on the CPU backend (``backend``, default `jax.default_backend()`), in float32 or
    float64 (its transforms lose too much in 16-bit floats), with at least 64 input and
    output channels and an output of at least 16 pixels on a side; the tile is 4
    (F(4x4, 3x3)) unless the output is under 24 pixels on a side, then 2. ``"tune"``
    measures every candidate on ``backend`` the first time it meets a shape and takes the
    fastest (`gen_jax.nn.conv_tune.tuned_choice`, which ``precision`` is passed to).

    Args:
      lhs_shape, rhs_shape: NHWC input and HWIO kernel shapes.
      strides, pads: as planned by the fast path: (sh, sw) and ((top, bottom), (left, right)).
      dtype: the input's dtype.
      algorithm: one of `ALGORITHMS`.
      backend: the platform to decide for.
      precision: the convolution's precision (``"tune"`` measures at it).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}.")
    direct = conv_tune.Choice(None, None)
    if algorithm == "direct":
        return direct
    if tuple(rhs_shape[:2]) != (3, 3) or tuple(strides) != (1, 1):
        return direct
    if not all(0 <= p <= 2 for pair in pads for p in pair):
        return direct
    if algorithm == "tune":
        return conv_tune.tuned_choice(lhs_shape, rhs_shape, pads, dtype, precision, backend)
    out_side = min(n + lo + hi - 2 for n, (lo, hi) in zip(lhs_shape[1:3], pads))
    if algorithm == "auto":
        if (backend or jax.default_backend()) != "cpu":
            return direct
        if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
            return direct
        if min(rhs_shape[2], rhs_shape[3]) < _AUTO_MIN_CHANNELS or out_side < _AUTO_MIN_SIDE:
            return direct
    return conv_tune.Choice(4 if out_side >= _TILE4_MIN_SIDE else 2, None)


def _space_to_depth(x, w, strides, pads):
    """A strided (or over-padded) convolution as a VALID stride-1 one: (x', w').

    With stride s, tap t = s q + r reads x_pad[s (i + q) + r]: phase r of the padded input
    (its pixels s m + r, moved into channels) convolved at stride 1 with the taps
    w[s q + r] (zero past the kernel). The output has the strided convolution's size.
    """
    b, _, _, c = x.shape
    kh, kw, _, k = w.shape
    sh, sw = strides
    qh, qw = -(-kh // sh), -(-kw // sw)
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    hp, wp = x.shape[1:3]
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    # Whole phases: rows past the padded input only meet the zero taps.
    rows, cols = (ho + qh - 1) * sh, (wo + qw - 1) * sw
    x = jnp.pad(x, ((0, 0), (0, max(rows - hp, 0)), (0, max(cols - wp, 0)), (0, 0)))
    x = x[:, :rows, :cols]
    x = x.reshape(b, rows // sh, sh, cols // sw, sw, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, rows // sh, cols // sw, sh * sw * c)
    w = jnp.pad(w, ((0, qh * sh - kh), (0, qw * sw - kw), (0, 0), (0, 0)))
    w = w.reshape(qh, sh, qw, sw, c, k).transpose(0, 2, 1, 3, 4, 5).reshape(qh, qw, sh * sw * c, k)
    return x, w


def _forward(x, w, pads, precision, preferred_element_type):
    return lax.conv_general_dilated(
        x,
        w,
        (1, 1),
        pads,
        dimension_numbers=_NHWC,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, pads, precision, preferred_element_type):
    return _forward(x, w, pads, precision, preferred_element_type)


def _conv_fwd(x, w, pads, precision, preferred_element_type):
    return _forward(x, w, pads, precision, preferred_element_type), (x, w)


def kernel_gradient(x, g, pads, kernel_size, precision=None) -> jax.Array:
    """The kernel gradient of a stride-1 NHWC/HWIO convolution, as one canonical convolution.

    ``dL/dw[a, b, i, o] = sum_{n, h, w} x_pad[n, h + a, w + b, i] g[n, h, w, o]``: a VALID
    convolution with the input channels ``i`` as the batch, ``n`` as the contracted
    feature, and ``g`` as the kernel over the output's (h, w).

    Args:
      x: [N, H, W, C] the convolution's input; g: [N, Ho, Wo, K] its output gradient.
      pads: ((top, bottom), (left, right)) the forward padding.
      kernel_size: (kh, kw), checked against the shapes.

    Returns:
      [kh, kw, C, K].
    """
    x_pad = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    dw = lax.conv_general_dilated(
        x_pad.transpose(3, 1, 2, 0),
        g.astype(x.dtype).transpose(1, 2, 0, 3),
        (1, 1),
        "VALID",
        dimension_numbers=_NHWC,
        precision=precision,
    ).transpose(1, 2, 0, 3)
    if dw.shape[:2] != tuple(kernel_size):
        raise ValueError(
            f"kernel_gradient: x {x.shape} padded by {pads} and g {g.shape} give a "
            f"{dw.shape[:2]} kernel, not {tuple(kernel_size)}."
        )
    return dw


def _conv_bwd(pads, precision, preferred_element_type, residuals, g):
    del preferred_element_type  # Cotangents take the dtypes of the primals.
    x, w = residuals
    kh, kw = w.shape[:2]
    g = g.astype(x.dtype)
    # dL/dx: the full correlation of g with the flipped kernel, channels swapped.
    w_t = w[::-1, ::-1].transpose(0, 1, 3, 2)
    pads_t = (
        (kh - 1 - pads[0][0], kh - 1 - pads[0][1]),
        (kw - 1 - pads[1][0], kw - 1 - pads[1][1]),
    )
    dx = lax.conv_general_dilated(
        g, w_t.astype(g.dtype), (1, 1), pads_t, dimension_numbers=_NHWC, precision=precision
    )
    dw = kernel_gradient(x, g, pads, (kh, kw), precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


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
    gradients are the canonical convolutions of the module docstring (a strided
    convolution first becomes a stride-1 one by space-to-depth); otherwise this is
    `lax.conv_general_dilated` itself.

    ``algorithm`` ("direct", "winograd", "auto" or "tune", keyword only) picks how a
    fast-path stride-1 3x3 convolution is computed; `winograd_plan` says when and how
    Winograd is used.
    Bind it with `functools.partial` to hand this to `flax.linen.Conv`.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}.")
    kwargs = {
        "lhs_dilation": lhs_dilation,
        "rhs_dilation": rhs_dilation,
        "dimension_numbers": dimension_numbers,
        "feature_group_count": feature_group_count,
        "batch_group_count": batch_group_count,
    }
    plan = _fast_plan(lhs.shape, rhs.shape, window_strides, padding, **kwargs)
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
        lhs, rhs = _space_to_depth(lhs, rhs, strides, pads)
        pads = ((0, 0), (0, 0))
    elif preferred_element_type is None:
        plan = winograd_plan(
            lhs.shape, rhs.shape, strides, pads, lhs.dtype, algorithm, precision=precision
        )
        if plan.tile is not None:
            return winograd.winograd_conv3x3(
                lhs, rhs, pads, tile=plan.tile, precision=precision, kernel_first=plan.kernel_first
            )
    return _conv(lhs, rhs, pads, precision, preferred_element_type)
