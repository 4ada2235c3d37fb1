"""Winograd minimal-filtering 3x3 convolutions (Lavin & Gray 2016, arXiv:1509.09308).

A stride-1 3x3 convolution computes every m x m block of outputs from an (m + 2) x
(m + 2) tile of its input. Winograd's F(m x m, 3 x 3) does it with (m + 2)^2
multiplications per input-output channel pair instead of 9 m^2: the input tile ``d`` and
the kernel ``g`` are moved into a transform domain (``V = B^T d B``, ``U = G g G^T``),
multiplied elementwise there, and moved back (``Y = A^T (U . V) A``). Summed over the input
channels, the elementwise products become (m + 2)^2 independent matrix products
``[tiles, C] x [C, K]``, one per transform-domain position, which is where the time goes.

* ``tile=4``, F(4x4, 3x3): 36 products for 16 outputs, 4x fewer multiplications than the
  direct convolution. Interpolation points 0, +-1, +-2; float32 error about 1e-6
  relative to the direct result (tests pin it).
* ``tile=2``, F(2x2, 3x3): 16 products for 4 outputs (2.25x fewer), exact transforms of
  0 and +-1; better on small maps, where 4x4 tiles leave too few rows per product.

Why it is here: on XLA:CPU the 3x3 convolutions of VGG run at roughly half the machine's
peak, the same rate as PyTorch's oneDNN kernels, so doing less arithmetic is the only
way to be faster than them. `python -m benchmarks.synthesis_speed` measures the effect
on style transfer; `conv_general_dilated(..., algorithm="auto")` uses this module only
on the CPU backend, where it wins (GPU libraries choose their own algorithms).

The gradient is written out (`jax.custom_vjp`), like the direct convolution's
(`_direct`): the input gradient of a 3x3 convolution is another 3x3 convolution (the
output gradient against the kernel flipped in space and transposed in channels), so it
runs through the same Winograd path; the kernel gradient is `_direct.kernel_gradient`'s
canonical convolution, which XLA removes when nothing asks for it (image optimisation
over a fixed network).

Data layout: the input transform is elementwise combinations of strided slices, in two
separable passes that each write one stacked array; the kernel and output transforms are
each one matrix product against a Kronecker product of the small transform matrices, whose
result is already in the layout the next step reads.
The kernel transforms depend only on the kernel: `winograd_kernels` computes them once,
for loops XLA does not hoist them out of (a feature network's `prepare` hook,
`gen_jax.models.features.prepare`, does this for VGG).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax.nn.xla_cpu._direct import kernel_gradient

TILES = (2, 4)

# F(m x m, 3 x 3) transforms: input B^T [(m+2), (m+2)], kernel G [(m+2), 3], output
# A^T [m, (m+2)]; Lavin & Gray 2016, Sec. 4.1 (m = 2) and 4.2 (m = 4).
_TRANSFORMS = {
    2: (
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    ),
    4: (
        np.array(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            np.float64,
        ),
        np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ],
            np.float64,
        ),
        np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
            np.float64,
        ),
    ),
}


def _combine(matrix: np.ndarray, parts: Sequence[jax.Array]) -> list[jax.Array]:
    """``[sum_j matrix[i, j] * parts[j] for i]`` with the zero terms left out.

    The input transform's coefficients are small integers, so each row is a handful of
    adds that XLA fuses into one elementwise loop (a product against ``B^T kron B^T`` would
    first need a 2.25x copy of the overlapping tiles, and measured 2x slower).
    """
    rows = []
    for coefficients in matrix:
        acc = None
        for c, p in zip(coefficients, parts):
            if c == 0:
                continue
            term = p if c == 1 else (-p if c == -1 else p * p.dtype.type(c))
            acc = term if acc is None else acc + term
        rows.append(acc)
    return rows


def _kernel_transform(w: jax.Array, tile: int, flipped: bool) -> jax.Array:
    """``U = G w G^T`` for every channel pair, as [(m+2)^2, out, in].

    The forward convolution maps C to K: [3, 3, C, K] -> [(m+2)^2, K, C]. ``flipped``
    transforms the kernel turned by 180 degrees (G with its columns reversed), which the
    input gradient convolves with, mapping K back to C: [(m+2)^2, C, K]. One product
    ``(G kron G) [(m+2)^2, 9] x w [9, out in]`` each, whose result is already in the
    layout the batched products read (a stack of elementwise combinations, like the data
    transforms', is 3x slower here: it ends in a copy of all of U).
    """
    _, g, _ = _TRANSFORMS[tile]
    if flipped:
        g = g[:, ::-1]
    else:
        w = w.transpose(0, 1, 3, 2)
    gg = jnp.asarray(np.kron(g, g), w.dtype)
    u = jnp.dot(gg, w.reshape(9, -1), precision=lax.Precision.HIGHEST)
    return u.reshape(gg.shape[0], *w.shape[2:])


def winograd_kernels(w: jax.Array, tile: int = 4) -> tuple[jax.Array, jax.Array]:
    """The transformed kernels a `winograd_conv3x3` with this ``w`` and ``tile`` uses.

    ``(U, U_flipped)``: ``G w G^T`` for every channel pair, [(m+2)^2, K, C] (output
    channels first: the forward convolution maps C to K), and the same for the kernel
    turned by 180 degrees, which the input gradient convolves with, [(m+2)^2, C, K]
    (it maps K back to C). They depend only on ``w``: pass them as ``kernels=`` to
    compute them once for many convolutions with a fixed kernel. Inside L-BFGS's nested
    loops (a line search inside a conditional inside a scan) XLA does not move them out
    of the loop by itself, and recomputing them at every evaluation costs as much as a
    fifth of a VGG19 style-transfer evaluation (VGG's `prepare` hook does this for it).
    """
    if tile not in TILES:
        raise ValueError(f"tile must be one of {TILES}; got {tile!r}.")
    if w.ndim != 4 or w.shape[:2] != (3, 3):
        raise ValueError(f"w must be a [3, 3, C, K] kernel; got shape {w.shape}.")
    return _kernel_transform(w, tile, flipped=False), _kernel_transform(w, tile, flipped=True)


def _winograd(x, u, pads, tile, precision, kernel_first=None):
    """The VALID 3x3 convolution of ``x`` zero-padded by ``pads``, by F(m x m, 3 x 3).

    ``u`` is the transformed kernel [(m+2)^2, K, C] that maps the C channels of ``x`` to
    K (for the input gradient's convolution, whose kernel is ``w[::-1, ::-1]`` with its
    channels swapped, the flipped transform). ``kernel_first``: the order of the batched
    products (None: `_kernel_first`'s rule).
    """
    b_t, _, a_t = _TRANSFORMS[tile]
    a = tile + 2
    n, h, wd, c = x.shape
    k = u.shape[1]
    ho, wo = h + sum(pads[0]) - 2, wd + sum(pads[1]) - 2
    th, tw = -(-ho // tile), -(-wo // tile)
    # Pad on to whole tiles: rows past the output only meet zeros and are cropped below.
    x = jnp.pad(
        x,
        (
            (0, 0),
            (pads[0][0], tile * th + 2 - h - pads[0][0]),
            (pads[1][0], tile * tw + 2 - wd - pads[1][0]),
            (0, 0),
        ),
    )
    # V = B^T d B, separably, in two passes that each write one stacked array: first along
    # the columns (column j of every tile is the strided slice x[:, :, j::m]), then along
    # the rows of that. Combining the 36 outputs straight from x instead (one fusion per
    # output, each re-reading its strided slices) costs 1.2-1.7x more per layer.
    cols = jnp.stack(_combine(b_t, [x[:, :, j : j + tile * (tw - 1) + 1 : tile] for j in range(a)]))
    v = jnp.stack(_combine(b_t, [cols[:, :, i : i + tile * (th - 1) + 1 : tile] for i in range(a)]))
    v = v.reshape(a * a, n * th * tw, c)
    # The (m+2)^2 products [tiles, C] x [C, K], batched: the only O(C K) work. Which
    # operand goes on the left is `_kernel_first`'s choice (or the caller's).
    dims = (((2,), (2,)), ((0,), (0,)))
    if kernel_first is None:
        kernel_first = _kernel_first(n * th * tw, c, k)
    if kernel_first:
        m = lax.dot_general(u.astype(v.dtype), v, dims, precision=precision)
    else:
        m = lax.dot_general(v, u.astype(v.dtype), dims, precision=precision)
    # Y = A^T M A as one product (A kron A) [m^2, (m+2)^2] x M [(m+2)^2, tiles K], then
    # the m x m output blocks back into place.
    aa = jnp.asarray(np.kron(a_t, a_t), m.dtype)
    y = jnp.dot(aa, m.reshape(a * a, -1), precision=lax.Precision.HIGHEST)
    if kernel_first:
        y = y.reshape(tile, tile, k, n, th, tw).transpose(3, 4, 0, 5, 1, 2)
    else:
        y = y.reshape(tile, tile, n, th, tw, k).transpose(2, 3, 0, 4, 1, 5)
    return y.reshape(n, tile * th, tile * tw, k)[:, :ho, :wo]


def _kernel_first(tiles: int, c: int, k: int) -> bool:
    """Whether the batched products put the kernel on the left (see `_winograd`).

    The products alone favour the kernel on the left whenever there are fewer tiles than
    channels: the library behind XLA:CPU's products (YNNPACK) re-lays out its right-hand
    operand at every call, so the smaller operand should go there. But with the kernel on
    the left the product comes out as [(m+2)^2, K, tiles], and the output in NHWC then
    needs a transpose that XLA fuses into every consumer (bias, ReLU, the next layer's
    padding, the ReLU mask of the gradient), each reading with a stride of ``tiles``
    floats. That costs more than the product saves until the channels outnumber the
    tiles about 4 to 1. On VGG19 at 256 px (conv, bias and ReLU, forward and input
    gradient), conv4 and conv5 (64 tiles, 512 channels) run 1.17-1.28x faster with the
    kernel first; conv3 (256 tiles, 128 or 256 channels) 1.06-1.07x slower, though its
    products alone are as fast. At 512 px conv4 (256 tiles, 512 channels) is about even.
    `python -m benchmarks.vgg_layer_speed` times both orders, per product and per layer.
    """
    return 4 * tiles <= max(c, k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7, 8))
def _conv(x, w, u, u_other, pads, tile, precision, transposed, kernel_first):
    """Winograd convolution with ``u``; ``u_other`` is the transform its gradient uses.

    Both come from ``w`` (`winograd_kernels`); ``w`` itself only feeds the kernel
    gradient, and ``u``/``u_other`` get zero cotangents (``None``): the kernel gradient
    already is the whole derivative in ``w``.
    """
    return _winograd(x, u, pads, tile, precision, kernel_first)


def _conv_fwd(x, w, u, u_other, pads, tile, precision, transposed, kernel_first):
    y = _winograd(x, u, pads, tile, precision, kernel_first)
    return y, (x, w, u, u_other)


def _conv_bwd(pads, tile, precision, transposed, kernel_first, residuals, g):
    x, w, u, u_other = residuals
    g = g.astype(x.dtype)
    # dL/dx: the full correlation of g with the flipped, channel-transposed kernel, which
    # is again a 3x3 convolution (padded 2 - pad) through the same path; flipping twice
    # gives back the kernel itself, so the roles of the two transforms swap.
    pads_t = tuple((2 - lo, 2 - hi) for lo, hi in pads)
    dx = _conv(g, w, u_other, u, pads_t, tile, precision, not transposed, kernel_first)
    dw = kernel_gradient(x, g, pads, (3, 3), precision)
    if transposed:
        dw = dw[::-1, ::-1].transpose(0, 1, 3, 2)
    return dx.astype(x.dtype), dw.astype(w.dtype), None, None


_conv.defvjp(_conv_fwd, _conv_bwd)


def winograd_conv3x3(
    x: jax.Array,
    w: jax.Array,
    padding: Sequence[tuple[int, int]] = ((1, 1), (1, 1)),
    *,
    tile: int = 4,
    precision=None,
    kernels: tuple[jax.Array, jax.Array] | None = None,
    kernel_first: bool | None = None,
) -> jax.Array:
    """A stride-1 3x3 convolution, NHWC input and HWIO kernel, by Winograd's F(m x m, 3 x 3).

    The same result as ``lax.conv_general_dilated(x, w, (1, 1), padding,
    dimension_numbers=("NHWC", "HWIO", "NHWC"))`` up to float rounding (about 1e-6
    relative in float32 for ``tile=4``), with gradients for ``x`` and ``w``.

    Args:
      x: [N, H, W, C] input.
      w: [3, 3, C, K] kernel.
      padding: ((top, bottom), (left, right)) zero padding, each in 0..2.
      tile: m, the output tile's side: 2 or 4 (see the module docstring).
      precision: passed to the batched matrix product.
      kernels: ``winograd_kernels(w, tile)``, computed once ahead (None: computed here).
        They must be those of this ``w``: the kernel gradient is taken from ``w``.
      kernel_first: the order of the batched transform-domain products, in this
        convolution and its input gradient: the kernel on the left (True) or the
        transformed data (False); None picks by the shapes (`_kernel_first`). Only the
        speed depends on it.

    Returns:
      [N, H + top + bottom - 2, W + left + right - 2, K].

    Raises:
      ValueError: a kernel that is not 3x3, channels that do not match, a padding outside
        0..2, an unknown tile, or an input too small for one output pixel.
    """
    if tile not in TILES:
        raise ValueError(f"tile must be one of {TILES}; got {tile!r}.")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x must be [N, H, W, C] and w [3, 3, C, K]; got {x.shape} and {w.shape}.")
    if w.shape[:2] != (3, 3) or w.shape[2] != x.shape[3]:
        raise ValueError(
            f"w must be [3, 3, {x.shape[3]}, K] for x of shape {x.shape}; got {w.shape}."
        )
    try:
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2 or not all(0 <= p <= 2 for pair in pads for p in pair):
        raise ValueError(
            f"padding must be ((top, bottom), (left, right)) in 0..2; got {padding!r}."
        )
    if any(n + lo + hi < 3 for n, (lo, hi) in zip(x.shape[1:3], pads)):
        raise ValueError(f"x of shape {x.shape} padded by {pads} is smaller than the 3x3 kernel.")
    if isinstance(precision, list):
        precision = tuple(precision)
    a2 = (tile + 2) ** 2
    if kernels is None:
        kernels = winograd_kernels(w, tile)
    else:
        c, k = w.shape[2:]
        expected = [(a2, k, c), (a2, c, k)]
        if len(kernels) != 2 or [np.shape(u) for u in kernels] != expected:
            raise ValueError(
                f"kernels must be winograd_kernels(w, tile={tile}): arrays of shapes "
                f"{expected}; got shapes {[np.shape(u) for u in kernels]}."
            )
    u, u_flipped = kernels
    if kernel_first is not None:
        kernel_first = bool(kernel_first)
    return _conv(x, w, u, u_flipped, pads, tile, precision, False, kernel_first)
