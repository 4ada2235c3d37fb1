"""The random multi-scale single-layer network of Ustyuzhaninov, Brendel, Gatys & Bethge
("What does it take to generate natural textures?", ICLR 2017; workshop version
arXiv:1606.00021), a texture model that needs no trained weights.

One convolutional layer, several filter sizes side by side, a ReLU, nothing else:

    x [B,H,W,3] RGB in [0,1] -> caffe preprocessing -> for k in (3,5,7,11,15,23,37,55):
        conv_k: k x k, 'same' zero padding, stride 1, 128 maps -> relu_k [B,H,W,128]
    relu = concat(relu_3, ..., relu_55)                          -> [B,H,W,1024]

The paper synthesises textures by matching the Gram matrix of `relu` alone, and reports
samples that rival Gatys et al.'s trained VGG19 on many textures.

Details follow the authors' released code (github.com/ivust/random-texture-synthesis,
`synthesise.py`), since the paper does not spell them out:

* filters: Glorot-uniform, U(-a, a) with a = sqrt(6 / ((3 + F) k^2)) for F maps of size
  k x k (Lasagne's `GlorotUniform`, the default of its `Conv2DLayer`), biases zero;
* input: Caffe VGG preprocessing (x 255, BGR, minus the per-channel means); no whitening;
* padding k // 2 on each side, stride 1 (no strided or 'valid' variant in the paper).

Deviation: the means are Keras' (103.939, 116.779, 123.68) rather than the code's
(104, 117, 123), so the module shares `gen_jax.models.features.vgg.preprocess`; the
difference is a constant shift of < 0.7/255 per channel.

Large filters are expensive as direct convolutions (the eight scales cost about 270 GFLOP
for one 256x256 image, forward only, and the 55x55 scale is over half of it), so scales of
`fft_min_size` and above are computed through the FFT: the same linear cross-correlation up
to float rounding, 4.7x faster forward+backward at 128x128 on a 2-core CPU. Pass the
parameters to a jitted function as arguments, not as closed-over constants, or XLA spends
a long compile constant-folding the kernels' FFTs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import scipy.fft

from gen_jax.models.features.vgg import PREPROCESSINGS, preprocess
from gen_jax.nn.xla_cpu import conv_general_dilated

__all__ = [
    "MULTISCALE_SIZES",
    "MultiscaleRandomFeatures",
    "multiscale_layer_names",
    "multiscale_params",
]

Dtype = Any
MULTISCALE_SIZES: tuple[int, ...] = (3, 5, 7, 11, 15, 23, 37, 55)


def _check_scales(scales: Sequence[int], features_per_scale: int) -> tuple[int, ...]:
    scales = tuple(scales)
    if not scales or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in scales):
        raise ValueError(f"scales must be positive odd filter sizes; got {scales!r}")
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales must be distinct; got {scales!r}")
    if not isinstance(features_per_scale, int) or features_per_scale < 1:
        raise ValueError(f"features_per_scale must be a positive int; got {features_per_scale!r}")
    return scales


def multiscale_layer_names(scales: Sequence[int] = MULTISCALE_SIZES) -> tuple[str, ...]:
    """Addressable outputs: "conv_k" and "relu_k" per scale, "conv" and "relu" concatenated.

    Args:
      scales: the filter sizes.

    Returns:
      The names accepted by `MultiscaleRandomFeatures.__call__(outputs=...)`.
    """
    per_scale = tuple(f"{kind}_{k}" for k in scales for kind in ("conv", "relu"))
    return (*per_scale, "conv", "relu")


def _glorot_uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Lasagne's GlorotUniform for an HWIO kernel: U(-a, a), a = sqrt(6 / ((I + O) H W))."""
    kh, kw, cin, cout = shape
    a = math.sqrt(6.0 / ((cin + cout) * kh * kw))
    # Drawn flat and reshaped: some 4-D random shapes compile slowly on the CPU.
    u = jax.random.uniform(key, (math.prod(shape),), dtype, minval=-a, maxval=a)
    return u.reshape(shape)


def multiscale_params(
    key: jax.Array,
    scales: Sequence[int] = MULTISCALE_SIZES,
    features_per_scale: int = 128,
) -> dict[str, dict[str, jax.Array]]:
    """Draws the random filters of `MultiscaleRandomFeatures`.

    Args:
      key: PRNG key; one subkey per scale, so the filters of a scale do not depend on the
        other scales.
      scales: odd filter sizes.
      features_per_scale: maps per scale (the paper: 128).

    Returns:
      {"conv_k": {"kernel": [k, k, 3, F] Glorot-uniform, "bias": [F] zeros}} float32.
    """
    scales = _check_scales(scales, features_per_scale)
    params = {}
    for k in scales:
        sub = jax.random.fold_in(key, k)
        params[f"conv_{k}"] = {
            "kernel": _glorot_uniform(sub, (k, k, 3, features_per_scale)),
            "bias": jnp.zeros((features_per_scale,), jnp.float32),
        }
    return params


def _fft_cross_correlate(
    x: jax.Array, kernels: dict[int, jax.Array], biases: dict[int, jax.Array]
) -> dict[int, jax.Array]:
    """'same' cross-correlation of x [B,H,W,C] with each HWIO kernel, through one FFT of x.

    Cross-correlation with w is linear convolution with the flipped kernel; the full
    convolution c has length H + k - 1 and the 'same' output is c[p : p + H], p = k // 2.
    The FFT size covers the largest kernel, so no scale wraps around.
    """
    _, h, w, _ = x.shape
    kmax = max(kernels)
    fh, fw = scipy.fft.next_fast_len(h + kmax - 1), scipy.fft.next_fast_len(w + kmax - 1)
    xf = jnp.fft.rfft2(x, s=(fh, fw), axes=(1, 2))
    out = {}
    for k, kernel in kernels.items():
        kf = jnp.fft.rfft2(kernel[::-1, ::-1], s=(fh, fw), axes=(0, 1))
        y = jnp.fft.irfft2(jnp.einsum("bhwc,hwcf->bhwf", xf, kf), s=(fh, fw), axes=(1, 2))
        p = k // 2
        out[k] = y[:, p : p + h, p : p + w, :] + biases[k]
    return out


class _Filters(nn.Module):
    """Holds one scale's kernel and bias, so the parameters read {"conv_k": {"kernel", "bias"}}."""

    shape: tuple[int, int, int, int]
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        kernel = self.param(
            "kernel", lambda key, s: _glorot_uniform(key, s, self.param_dtype), self.shape
        )
        bias = self.param("bias", nn.initializers.zeros_init(), self.shape[-1:], self.param_dtype)
        return kernel, bias


class MultiscaleRandomFeatures(nn.Module):
    """One random conv layer with several filter sizes and a ReLU (Ustyuzhaninov et al.).

    Attributes:
      scales: odd filter sizes (the paper: 3, 5, 7, 11, 15, 23, 37, 55).
      features_per_scale: maps per scale (the paper: 128, so 1024 in all).
      preprocessing: input normalisation, "caffe" as in the authors' code.
      fft_min_size: filters this size or larger are applied through the FFT; set it above
        the largest scale to use direct convolutions only.
      dtype: dtype of the direct convolutions; FFT scales run in float32.
    """

    scales: Sequence[int] = MULTISCALE_SIZES
    features_per_scale: int = 128
    preprocessing: str = "caffe"
    fft_min_size: int = 15
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, images: jax.Array, outputs: str | Sequence[str] | None = ("relu",)
    ) -> dict[str, jax.Array]:
        """Computes the requested maps; only the scales they need are convolved.

        Args:
          images: [B, H, W, 3], RGB in [0, 1], any H, W >= 1.
          outputs: names from `multiscale_layer_names(scales)` (static); None means all.

        Returns:
          {name: [B, H, W, C] float32}: C = features_per_scale for a scale, C =
          len(scales) * features_per_scale for "conv" / "relu" (scales in order).

        Raises:
          ValueError: an unknown name, bad options, or images not [B, H, W, 3].
        """
        scales = _check_scales(self.scales, self.features_per_scale)
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"preprocessing must be one of {PREPROCESSINGS}; got {self.preprocessing!r}"
            )
        valid = multiscale_layer_names(scales)
        if outputs is None:
            outputs = valid
        elif isinstance(outputs, str):
            outputs = (outputs,)
        outputs = tuple(outputs)
        unknown = [o for o in outputs if o not in valid]
        if unknown or not outputs:
            raise ValueError(f"unknown layer name(s) {unknown}; valid names are {valid}")
        images = jnp.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "MultiscaleRandomFeatures expects images of shape [batch, height, width, 3] "
                f"(RGB in [0, 1]); got shape {tuple(images.shape)}"
            )
        everything = "conv" in outputs or "relu" in outputs
        needed = [k for k in scales if everything or {f"conv_{k}", f"relu_{k}"} & set(outputs)]
        x = preprocess(images, self.preprocessing)
        kernels, biases = {}, {}
        for k in needed:
            kernels[k], biases[k] = _Filters(
                (k, k, 3, self.features_per_scale), self.param_dtype, name=f"conv_{k}"
            )()
        pre = {}
        direct = [k for k in needed if k < self.fft_min_size]
        for k in direct:
            pre[k] = conv_general_dilated(
                x.astype(self.dtype),
                kernels[k].astype(self.dtype),
                window_strides=(1, 1),
                padding=((k // 2, k // 2), (k // 2, k // 2)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            ).astype(jnp.float32) + biases[k].astype(jnp.float32)
        big = [k for k in needed if k >= self.fft_min_size]
        if big:
            pre.update(
                _fft_cross_correlate(
                    x,
                    {k: kernels[k].astype(jnp.float32) for k in big},
                    {k: biases[k].astype(jnp.float32) for k in big},
                )
            )
        feats = {}
        for k in needed:
            if f"conv_{k}" in outputs:
                feats[f"conv_{k}"] = pre[k]
            if f"relu_{k}" in outputs:
                feats[f"relu_{k}"] = nn.relu(pre[k])
        if "conv" in outputs:
            feats["conv"] = jnp.concatenate([pre[k] for k in scales], axis=-1)
        if "relu" in outputs:
            feats["relu"] = nn.relu(jnp.concatenate([pre[k] for k in scales], axis=-1))
        return feats
