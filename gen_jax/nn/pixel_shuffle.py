"""Sub-pixel upsampling (pixel shuffle) and its inverse (space-to-depth), in NHWC.

A convolution to ``C * r**2`` channels followed by a pixel shuffle is the efficient
sub-pixel convolution layer of Shi et al. 2016 (arXiv:1609.05158), SRGAN's upsampling
block (Ledig et al. 2017, arXiv:1609.04802). The shuffle itself has no parameters: it is
one reshape and one transpose, which XLA turns into a copy.

Channel order. Output pixel ``(h*r + i, w*r + j)``, channel ``c`` reads input channel
``c*r**2 + i*r + j`` of pixel ``(h, w)``:

    y[b, h*r + i, w*r + j, c] = x[b, h, w, c*r*r + i*r + j]

This is PyTorch's ``nn.PixelShuffle`` order (written there in NCHW), not TensorFlow's
``depth_to_space``, which reads channel ``(i*r + j)*C + c``. PyTorch's is kept because the
SRGAN references and their weights are PyTorch's: a converted checkpoint then needs only
its convolution kernels transposed (OIHW -> HWIO), no channel permutation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["PixelShuffle", "PixelUnshuffle", "pixel_shuffle", "pixel_unshuffle"]


def _check_factor(factor: int, name: str) -> int:
    """Returns `factor` as an int after checking it is a positive integer."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"{name} must be a positive integer; got {factor!r}.")
    return factor


def _check_nhwc(x: jax.Array, name: str) -> None:
    """Checks that `x` is a batch of images [B, H, W, C], naming the calling function."""
    if x.ndim != 4:
        raise ValueError(
            f"{name} expects images of shape [batch, height, width, channels] (NHWC); "
            f"got an array of shape {x.shape}."
        )


def pixel_shuffle(x: ArrayLike, upscale_factor: int) -> jax.Array:
    """Rearranges channels into space: [B, H, W, C*r*r] -> [B, H*r, W*r, C].

    ``y[b, h*r + i, w*r + j, c] = x[b, h, w, c*r*r + i*r + j]`` for ``0 <= i, j < r``
    (PyTorch's ``nn.PixelShuffle`` order; see the module docstring).

    Args:
      x: images, shape ``[batch, height, width, channels]`` with ``channels`` divisible
        by ``upscale_factor**2``; any dtype.
      upscale_factor: ``r``, a positive integer.

    Returns:
      ``x`` rearranged, shape ``[batch, height*r, width*r, channels // r**2]``, same dtype.

    References:
      Shi et al., Real-Time Single Image and Video Super-Resolution Using an Efficient
      Sub-Pixel Convolutional Neural Network, 2016 (arXiv:1609.05158).
    """
    r = _check_factor(upscale_factor, "upscale_factor")
    x = jnp.asarray(x)
    _check_nhwc(x, "pixel_shuffle")
    b, h, w, c = x.shape
    if c % (r * r):
        raise ValueError(
            f"pixel_shuffle with upscale_factor={r} needs channels divisible by "
            f"{r * r}; got x of shape {x.shape} ({c} channels)."
        )
    out_c = c // (r * r)
    # [B, H, W, C, i, j] -> [B, H, i, W, j, C]: channel c*r*r + i*r + j splits as (c, i, j).
    y = x.reshape(b, h, w, out_c, r, r).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(b, h * r, w * r, out_c)


def pixel_unshuffle(x: ArrayLike, downscale_factor: int) -> jax.Array:
    """Rearranges space into channels (space-to-depth): [B, H*r, W*r, C] -> [B, H, W, C*r*r].

    The inverse of ``pixel_shuffle``:
    ``y[b, h, w, c*r*r + i*r + j] = x[b, h*r + i, w*r + j, c]`` (PyTorch's
    ``nn.PixelUnshuffle`` order).

    Args:
      x: images, shape ``[batch, height, width, channels]`` with ``height`` and ``width``
        divisible by ``downscale_factor``; any dtype.
      downscale_factor: ``r``, a positive integer.

    Returns:
      ``x`` rearranged, shape ``[batch, height // r, width // r, channels * r**2]``, same
      dtype.

    References:
      Shi et al., 2016 (arXiv:1609.05158); the inverse is PyTorch's ``nn.PixelUnshuffle``.
    """
    r = _check_factor(downscale_factor, "downscale_factor")
    x = jnp.asarray(x)
    _check_nhwc(x, "pixel_unshuffle")
    b, h, w, c = x.shape
    if h % r or w % r:
        raise ValueError(
            f"pixel_unshuffle with downscale_factor={r} needs height and width divisible "
            f"by {r}; got x of shape {x.shape}."
        )
    # [B, H, i, W, j, C] -> [B, H, W, C, i, j], the exact inverse of pixel_shuffle's transpose.
    y = x.reshape(b, h // r, r, w // r, r, c).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(b, h // r, w // r, c * r * r)


class PixelShuffle(nn.Module):
    """``pixel_shuffle`` as a layer: [B, H, W, C*r*r] -> [B, H*r, W*r, C].

    No parameters and no ``dtype`` field: a rearrangement keeps the input's dtype.

    Attributes:
      upscale_factor: ``r``, a positive integer.
    """

    upscale_factor: int

    def __call__(self, x: jax.Array) -> jax.Array:
        return pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(nn.Module):
    """``pixel_unshuffle`` as a layer: [B, H*r, W*r, C] -> [B, H, W, C*r*r].

    No parameters and no ``dtype`` field: a rearrangement keeps the input's dtype.

    Attributes:
      downscale_factor: ``r``, a positive integer.
    """

    downscale_factor: int

    def __call__(self, x: jax.Array) -> jax.Array:
        return pixel_unshuffle(x, self.downscale_factor)
