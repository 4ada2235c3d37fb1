"""Likelihood units: nats per example <-> bits per dimension, with the discretisation term.

A *discrete* model of 8-bit pixels (PixelCNN's 256-way softmax) assigns probabilities
``P(k)`` to pixel values directly: its bits per dimension are ``-log P(k) / (D ln 2)``.

A *continuous* model with density ``p`` over pixel values rescaled to a range (``[0, 1]``,
``[-1, 1]``) is compared with discrete models through the probability it gives each
quantisation bin. With uniform dequantisation (Theis et al. 2016, arXiv:1511.01844) each
of the D dimensions has a bin of width ``w`` in the model's units, and
``-log P(bin) <= -log p(x) - D log w`` (in expectation over the dequantisation noise), so

    bpd = ( nll_nats - D ln w ) / (D ln 2) = nll_nats / (D ln 2) + log2(1 / w)

For 256 levels (k in {0..255} the pixel value, u ~ U[0, 1) the dequantisation noise):

* ``x = (k + u) / 256`` in [0, 1): w = 1/256, correction log2(1/w) = +8 bits/dim;
* ``x = 2 (k + u) / 256 - 1`` in [-1, 1): w = 1/128, correction +7 bits/dim;
* ``x = k + u`` in [0, 256), or a discrete model: w = 1, no correction;
* ``x = (k + u) / 255`` (scaling by 255): w = 1/255, correction log2(255).

The sign: a density over [0, 1) is 256 times higher per dimension than the same model over
[0, 256), so its ``-log p`` is 8 bits/dim *lower*; the correction adds them back. Check: a
uniform density on [0, 1)^D has nll 0 and gives exactly 8 bits/dim; one on [-1, 1)^D has
nll ``D ln 2`` and gives 1 + 7 = 8 bits/dim.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["bits_per_dim_to_nats", "nats_to_bits_per_dim", "quantization_bin_width"]


def _check_dims(num_dims: int, bin_width: float) -> None:
    """Raises ValueError unless num_dims >= 1 and bin_width > 0 (when not traced)."""
    if not isinstance(num_dims, numbers.Integral) or num_dims < 1:
        raise ValueError(f"num_dims: expected a positive int (e.g. H*W*C), found {num_dims!r}")
    if isinstance(bin_width, (int, float)) and not bin_width > 0:
        raise ValueError(f"bin_width: expected a positive number, found {bin_width!r}")


def quantization_bin_width(low: float, high: float, num_levels: int = 256) -> float:
    """Width of one quantisation bin when `num_levels` levels are spread over [low, high).

        w = (high - low) / num_levels

    Args:
      low: lower end of the model's data range (0 for [0, 1], -1 for [-1, 1]).
      high: upper end (1).
      num_levels: number of discrete pixel values (256 for 8-bit images).

    Returns:
      w, e.g. 1/256 for [0, 1] and 1/128 for [-1, 1].
    """
    if not high > low:
        raise ValueError(f"high: expected high > low = {low}, found {high}")
    if not isinstance(num_levels, numbers.Integral) or num_levels < 1:
        raise ValueError(f"num_levels: expected a positive int, found {num_levels!r}")
    return (high - low) / num_levels


def nats_to_bits_per_dim(
    nll_nats: ArrayLike, num_dims: int, *, bin_width: float = 1.0
) -> jax.Array:
    """Converts a negative log-likelihood in nats per example to bits per dimension.

        bpd = (nll_nats - D ln(bin_width)) / (D ln 2)

    ``bin_width = 1`` (default) is the plain unit change, right for discrete models and
    densities over raw 0..255 values; a density over rescaled pixels needs the bin width
    in its own units (``quantization_bin_width``; 1/256 for [0, 1]), see the module
    docstring.

    Args:
      nll_nats: -log p(x) in nats per example, any shape (e.g. [B] or a scalar mean).
      num_dims: D, the dimensions per example (H * W * C).
      bin_width: width of one quantisation bin in the model's data units.

    Returns:
      Bits per dimension, the shape of `nll_nats`.

    References:
      Theis, van den Oord and Bethge, A note on the evaluation of generative models, 2016
      (arXiv:1511.01844), Sec. 3.1.
    """
    _check_dims(num_dims, bin_width)
    nll = jnp.asarray(nll_nats)
    if not jnp.issubdtype(nll.dtype, jnp.floating):
        nll = nll.astype(jnp.float32)
    return (nll - num_dims * jnp.log(bin_width)) / (num_dims * math.log(2.0))


def bits_per_dim_to_nats(bpd: ArrayLike, num_dims: int, *, bin_width: float = 1.0) -> jax.Array:
    """Inverse of ``nats_to_bits_per_dim``: nats per example in the model's data units.

        nll_nats = D ln 2 * bpd + D ln(bin_width)

    Args:
      bpd: bits per dimension, any shape.
      num_dims: D, the dimensions per example.
      bin_width: width of one quantisation bin in the model's data units.

    Returns:
      -log p(x) in nats per example, the shape of `bpd`.

    References:
      Theis et al. 2016 (arXiv:1511.01844).
    """
    _check_dims(num_dims, bin_width)
    b = jnp.asarray(bpd)
    if not jnp.issubdtype(b.dtype, jnp.floating):
        b = b.astype(jnp.float32)
    return num_dims * math.log(2.0) * b + num_dims * jnp.log(bin_width)
