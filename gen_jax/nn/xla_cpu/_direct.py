"""The direct convolution with loop-friendly gradients, and the primitives it shares.

A stride-1 NHWC/HWIO convolution whose backward pass is written out as two ordinary
convolutions in canonical form (Dumoulin & Visin 2016, arXiv:1603.07285, Sec. 4):

* the input gradient is the output gradient convolved with the kernel flipped in space and
  transposed in channels (HWOI -> HWIO, made an explicit array), padded k - 1 - pad;
* the kernel gradient (`kernel_gradient`) is a convolution of the padded input, with its
  channels as the batch and its batch as the channels, against the output gradient as a
  kernel of the output's spatial size.

Why: JAX's automatic transpose rule emits the same two products as convolutions whose
dimension labels XLA:CPU canonicalises only at the top level of a program. Inside a
`while` body (`lax.scan`, `lax.while_loop`, optax's L-BFGS line search) they run on a slow
generic path: `python -m benchmarks.xla_cpu_pitfalls` measures the input gradient of one
1x128x128x64 -> 64 convolution at about 3x, and the kernel gradient at about 30x, the
time of this form in a loop (one core). Outside loops the two forms take the same time.

A strided convolution (or one padded by more than k - 1) first becomes a VALID stride-1
one by space-to-depth (`space_to_depth`). `kernel_gradient` is shared with the Winograd
convolution (`_winograd`), whose kernel gradient is the same product.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from gen_jax.nn.xla_cpu._plan import NHWC


def space_to_depth(x, w, strides, pads):
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
        dimension_numbers=NHWC,
        precision=precision,
    ).transpose(1, 2, 0, 3)
    if dw.shape[:2] != tuple(kernel_size):
        raise ValueError(
            f"kernel_gradient: x {x.shape} padded by {pads} and g {g.shape} give a "
            f"{dw.shape[:2]} kernel, not {tuple(kernel_size)}."
        )
    return dw


def _forward(x, w, pads, precision, preferred_element_type):
    return lax.conv_general_dilated(
        x,
        w,
        (1, 1),
        pads,
        dimension_numbers=NHWC,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def direct_conv(x, w, pads, precision, preferred_element_type):
    """The stride-1 NHWC/HWIO convolution of ``x`` padded by ``pads`` (each >= 0 and at
    most k - 1), with the canonical gradients of the module docstring."""
    return _forward(x, w, pads, precision, preferred_element_type)


def _direct_fwd(x, w, pads, precision, preferred_element_type):
    return _forward(x, w, pads, precision, preferred_element_type), (x, w)


def _direct_bwd(pads, precision, preferred_element_type, residuals, g):
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
        g, w_t.astype(g.dtype), (1, 1), pads_t, dimension_numbers=NHWC, precision=precision
    )
    dw = kernel_gradient(x, g, pads, (kh, kw), precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


direct_conv.defvjp(_direct_fwd, _direct_bwd)
