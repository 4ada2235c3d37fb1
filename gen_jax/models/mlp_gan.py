"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014).

Used on low-dimensional data such as the 2-D Gaussian mixtures of the mode-collapse
benchmarks (Metz et al. 2017, arXiv:1611.02163; Lin et al. 2018, arXiv:1712.04086).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class MLPGenerator(nn.Module):
    """Maps latents z [B, latent_dim] to samples [B, out_dim] through ReLU hidden layers.

    The output layer is linear: the mixtures live on an unbounded plane. With
    `batch_norm=True` every hidden layer is Dense (no bias) -> BatchNorm -> ReLU, the
    generator of PacGAN's 2-D experiments (arXiv:1712.04086, after VEEGAN,
    arXiv:1705.07761); `train=True` normalises with the batch and updates the running
    statistics in the `batch_stats` collection, `train=False` uses them.
    """

    out_dim: int = 2
    hidden: Sequence[int] = (400, 400, 400)
    batch_norm: bool = False
    bn_momentum: float = 0.9
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        x = z
        for width in self.hidden:
            # The batch norm's shift makes a Dense bias redundant.
            x = nn.Dense(
                width, use_bias=not self.batch_norm, dtype=self.dtype, param_dtype=self.param_dtype
            )(x)
            if self.batch_norm:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=self.bn_momentum,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                )(x)
            x = nn.relu(x)
        out = nn.Dense(self.out_dim, dtype=self.dtype, param_dtype=self.param_dtype)(x)
        return out.astype(jnp.float32)  # Samples in float32 whatever the compute dtype.


class MLPDiscriminator(nn.Module):
    """Maps samples [B, D] to one logit per sample [B, 1] through ReLU or maxout layers.

    With `pack > 1` it is the PacGAN discriminator (Lin et al. 2018, arXiv:1712.04086): it
    judges `pack` consecutive samples jointly, as one row [B // pack, pack * D], and returns
    [B // pack, 1] logits. Samples in a pack share a label, so packing changes nothing else.

    With `maxout_pieces = k > 1` each hidden unit is the max of k affine pieces (Goodfellow
    et al. 2013, arXiv:1302.4389), the discriminator of the original GAN and of PacGAN's
    2-D experiments: k times the linear regions of a ReLU layer of the same width, which a
    D needs to carve sharp bumps around many small modes.

    `input_scale` multiplies the input before the first layer: the same as scaling that
    layer's initial weights and its effective learning rate by the same factor.
    """

    hidden: Sequence[int] = (200, 200)
    pack: int = 1
    maxout_pieces: int = 1
    input_scale: float = 1.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        if x.shape[0] % self.pack:
            raise ValueError(f"batch of {x.shape[0]} samples is not divisible by pack={self.pack}")
        if self.maxout_pieces < 1:
            raise ValueError(f"maxout_pieces must be >= 1, got {self.maxout_pieces}")
        x = x.reshape(x.shape[0] // self.pack, -1)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        k = self.maxout_pieces
        for width in self.hidden:
            x = nn.Dense(width * k, dtype=self.dtype, param_dtype=self.param_dtype)(x)
            # Maxout over k pieces; k = 1 is the ReLU layer (a max with the zero piece).
            x = x.reshape(*x.shape[:-1], width, k).max(-1) if k > 1 else nn.relu(x)
        logits = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype)(x)
        return logits.astype(jnp.float32)  # Losses are computed in float32.


# A tiny variant for tests.
TinyMLPGenerator = functools.partial(MLPGenerator, hidden=(16,))
TinyMLPDiscriminator = functools.partial(MLPDiscriminator, hidden=(16,))
