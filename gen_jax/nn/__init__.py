"""Reusable Flax layers shared by the models (NHWC images; `train` as a keyword where it matters).

The CPU convolution backend (`gen_jax.nn.xla_cpu`) is imported by the layers that use it,
never re-exported here.
"""

from gen_jax.nn.conv_transpose import PhaseConvTranspose
from gen_jax.nn.minibatch import MinibatchDiscrimination, MinibatchStdDev
from gen_jax.nn.normalization import ConditionalBatchNorm
from gen_jax.nn.pixel_shuffle import PixelShuffle, PixelUnshuffle, pixel_shuffle, pixel_unshuffle
from gen_jax.nn.spectral_norm import SpectralNorm

__all__ = [
    "ConditionalBatchNorm",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "PhaseConvTranspose",
    "PixelShuffle",
    "PixelUnshuffle",
    "SpectralNorm",
    "pixel_shuffle",
    "pixel_unshuffle",
]
