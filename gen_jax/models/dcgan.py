"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

The architecture guidelines of the paper, section 3:
  * strided convolutions instead of pooling (D), fractionally-strided ones (G);
  * batch norm in both networks, except G's output layer and D's input layer;
  * no fully connected hidden layers (G's first layer is a projection of z);
  * ReLU in G with tanh at the output, LeakyReLU(0.2) in D;
  * weights initialised from N(0, 0.02).

Shape table (NHWC), `image_size=64` (the pytorch/examples/dcgan network, ngf = ndf = 64):

  G: z [B,1,1,nz] -> [B,4,4,8ngf] -> [B,8,8,4ngf] -> [B,16,16,2ngf] -> [B,32,32,ngf]
     -> [B,64,64,C]
  D: x [B,64,64,C] -> [B,32,32,ndf] -> [B,16,16,2ndf] -> [B,8,8,4ndf] -> [B,4,4,8ndf]
     -> logits [B,1,1,1]

`image_size=28` (Fashion-MNIST) starts from 7x7 instead of 4x4:

  G: z -> [B,7,7,2ngf] -> [B,14,14,ngf] -> [B,28,28,C];  D: mirror image, logits [B,1,1,1].

Conventions shared with PyTorch so the benchmark compares the same network: no biases
(every layer but the output is followed by batch norm, and the reference has none at the
output either), batch-norm momentum 0.1 in PyTorch terms (0.9 here) and epsilon 1e-5, and
4x4 kernels with padding 1 in the strided layers (G's are `PhaseConvTranspose`, the same
layer as a transposed convolution with a fast CPU gradient). D outputs logits; the sigmoid lives in
the loss.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.conv_transpose import PhaseConvTranspose
from gen_jax.nn.xla_cpu import conv_general_dilated

Dtype = Any


def _weight_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """N(0, 0.02), drawn flat and reshaped.

    With jax 0.10's default `jax_threefry_partitionable`, random draws of some 4-D shapes take
    seconds to compile on the CPU (a 4x4x4x8 kernel: ~7 s, against ~0.7 s drawn flat).
    """
    return 0.02 * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def _bn_scale_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """N(1, 0.02), the DCGAN initialisation of batch-norm scales."""
    return 1.0 + _weight_init(key, shape, dtype)


def _batch_norm(train: bool, dtype: Dtype, param_dtype: Dtype) -> nn.BatchNorm:
    """PyTorch's defaults (momentum 0.1 there, 0.9 here; epsilon 1e-5), DCGAN's scale init."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        scale_init=_bn_scale_init,
        dtype=dtype,
        param_dtype=param_dtype,
    )


def _num_upsamplings(image_size: int) -> tuple[int, int]:
    """(start resolution, number of 2x stages) for a supported image size."""
    for start in (4, 7):
        n, size = 0, start
        while size < image_size:
            size, n = size * 2, n + 1
        if size == image_size and n >= 1:
            return start, n
    raise ValueError(
        f"image_size={image_size} is not supported: expected 4 * 2**n or 7 * 2**n with n >= 1 "
        "(e.g. 28, 32, 64, 128)"
    )


class DCGANGenerator(nn.Module):
    """Maps latents z [B, nz] (or [B,1,1,nz]) to images [B, H, W, C] in [-1, 1]."""

    image_size: int = 64
    channels: int = 3
    ngf: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        start, n = _num_upsamplings(self.image_size)
        bn = functools.partial(_batch_norm, train, self.dtype, self.param_dtype)
        up = functools.partial(
            PhaseConvTranspose,
            kernel_init=_weight_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        x = z.reshape(z.shape[0], 1, 1, -1).astype(self.dtype)
        # Projection of z: a VALID transposed conv with a start x start kernel on a 1x1 input
        # is exactly a dense layer to a start x start x features map.
        x = nn.ConvTranspose(
            self.ngf * 2 ** (n - 1),
            kernel_size=(start, start),
            padding="VALID",
            use_bias=False,
            kernel_init=_weight_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )(x)
        x = nn.relu(bn()(x))
        for i in range(n - 1):
            x = nn.relu(bn()(up(self.ngf * 2 ** (n - 2 - i))(x)))
        x = up(self.channels)(x)
        return jnp.tanh(x).astype(jnp.float32)  # Images in float32 whatever the compute dtype.


class DCGANDiscriminator(nn.Module):
    """Maps images [B, H, W, C] to logits [B, 1, 1, 1]."""

    image_size: int = 64
    ndf: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        start, n = _num_upsamplings(self.image_size)
        if x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"DCGANDiscriminator(image_size={self.image_size}) got images of shape "
                f"{x.shape}; expected [B, {self.image_size}, {self.image_size}, C]"
            )
        bn = functools.partial(_batch_norm, train, self.dtype, self.param_dtype)
        conv = functools.partial(
            nn.Conv,
            kernel_size=(4, 4),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=_weight_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            # Gradients that stay fast inside lax.scan on XLA:CPU.
            conv_general_dilated=conv_general_dilated,
        )
        x = x.astype(self.dtype)
        for i in range(n):
            x = conv(self.ndf * 2**i)(x)
            if i > 0:  # No batch norm on the input layer (Radford et al., section 3).
                x = bn()(x)
            x = nn.leaky_relu(x, 0.2)
        x = conv(1, kernel_size=(start, start), strides=(1, 1), padding="VALID")(x)
        return x.astype(jnp.float32)


# Named variants. The 64x64 pair is the pytorch/examples network used by the benchmark.
DCGANGenerator28 = functools.partial(DCGANGenerator, image_size=28, channels=1)
DCGANDiscriminator28 = functools.partial(DCGANDiscriminator, image_size=28)
TinyDCGANGenerator = functools.partial(DCGANGenerator, image_size=28, channels=1, ngf=4)
TinyDCGANDiscriminator = functools.partial(DCGANDiscriminator, image_size=28, ndf=4)
