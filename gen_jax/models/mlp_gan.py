"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014).

Used on low-dimensional data such as the 2-D Gaussian mixtures of the mode-collapse
benchmarks (Metz et al. 2017, arXiv:1611.02163; Lin et al. 2018, arXiv:1712.04086).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class MLPGenerator(nn.Module):
    """Maps latents z [B, latent_dim] to samples [B, out_dim] through ReLU hidden layers.

    The output layer is linear: the mixtures live on an unbounded plane.
    """

    out_dim: int = 2
    hidden: Sequence[int] = (400, 400, 400)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        del train  # No batch norm or dropout; kept for the shared module signature.
        x = z
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x))
        return nn.Dense(self.out_dim, dtype=self.dtype, param_dtype=self.param_dtype)(x)


class MLPDiscriminator(nn.Module):
    """Maps samples [B, D] to one logit per sample [B, 1] through ReLU hidden layers.

    With `pack > 1` it is the PacGAN discriminator (Lin et al. 2018, arXiv:1712.04086): it
    judges `pack` consecutive samples jointly, as one row [B // pack, pack * D], and returns
    [B // pack, 1] logits. Samples in a pack share a label, so packing changes nothing else.
    """

    hidden: Sequence[int] = (200, 200)
    pack: int = 1
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        if x.shape[0] % self.pack:
            raise ValueError(f"batch of {x.shape[0]} samples is not divisible by pack={self.pack}")
        x = x.reshape(x.shape[0] // self.pack, -1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x))
        return nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype)(x)


# A tiny variant for tests.
TinyMLPGenerator = functools.partial(MLPGenerator, hidden=(16,))
TinyMLPDiscriminator = functools.partial(MLPDiscriminator, hidden=(16,))
