"""Stacked MNIST: three independent digits as the channels of one image, 1,000 modes.

The mode-collapse benchmark of Metz et al. 2016 (Unrolled GANs, arXiv:1611.02163),
used by VEEGAN (arXiv:1705.07761) and PacGAN (arXiv:1712.04086): each 28x28x3 image
stacks three MNIST digits drawn independently and uniformly, one per channel, so its label
is one of 10**3 = 1,000 equally likely three-digit numbers

    label = 100 * digit(channel 0) + 10 * digit(channel 1) + digit(channel 2).

Here the digits come from the 5,000-digit MNIST subset (`gen_jax.data.mnist`), and the
sampler is a jittable function of a key, so a GAN step can draw its real batch on the
device like any other small dataset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from gen_jax.data.device import to_signed_unit

__all__ = ["NUM_STACKED_MNIST_MODES", "sample_stacked_mnist", "stacked_mnist_label"]

NUM_STACKED_MNIST_MODES = 1000


def stacked_mnist_label(digits: ArrayLike) -> jax.Array:
    """The three-digit mode of per-channel digits: 100 * d0 + 10 * d1 + d2.

    Args:
      digits: int [..., 3], each in [0, 9], channel 0 first.

    Returns:
      int32 [...] in [0, 999].
    """
    digits = jnp.asarray(digits, jnp.int32)
    return digits[..., 0] * 100 + digits[..., 1] * 10 + digits[..., 2]


def sample_stacked_mnist(
    key: jax.Array, images: ArrayLike, labels: ArrayLike, num_samples: int
) -> tuple[jax.Array, jax.Array]:
    """Draws stacked-MNIST images: three digits drawn uniformly with replacement, one per channel.

        i_c ~ Uniform{0, ..., M-1} independently for c = 0, 1, 2 and every sample
        x[..., c] = (images[i_c] - 127.5) / 127.5,   y = 100 l[i_0] + 10 l[i_1] + l[i_2]

    The modes are uniform when the source digits are balanced over the classes (the MNIST
    subset and both sides of its split are).

    Args:
      key: PRNG key.
      images: uint8 [M, 28, 28] digits (0 is background), e.g. from `load_mnist_subset`.
      labels: int [M] their digits in [0, 9].
      num_samples: N, a Python int >= 1 (static under jit).

    Returns:
      (x, y): float32 [N, 28, 28, 3] in [-1, 1] (the tanh scale of the generators), and
      int32 [N] modes in [0, 999].

    Raises:
      ValueError: (at trace time) wrong dtype or shapes, or N < 1.
    """
    images = jnp.asarray(images)
    labels = jnp.asarray(labels)
    if images.dtype != jnp.uint8 or images.ndim != 3:
        raise ValueError(
            f"images: expected uint8 [M, H, W] digits, found {images.dtype} {list(images.shape)}"
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"labels: expected shape [{images.shape[0]}] (one per image), found "
            f"{list(labels.shape)}"
        )
    if num_samples < 1:
        raise ValueError(f"num_samples: expected >= 1, found {num_samples}")
    idx = jax.random.randint(key, (num_samples, 3), 0, images.shape[0])
    x = to_signed_unit(jnp.moveaxis(images[idx], 1, -1))  # [N, 3, H, W] -> [N, H, W, 3]
    return x, stacked_mnist_label(labels[idx])
