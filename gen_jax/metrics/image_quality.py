"""Full-reference image quality: PSNR and SSIM, per image over [B, H, W, C] batches.

SSIM follows Wang et al. (2004): local statistics under an 11 x 11 Gaussian window with
sigma = 1.5, population (not sample) variances, ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``
with K1 = 0.01, K2 = 0.03 and L the data range. The SSIM map is evaluated only where the
window fits inside the image (a "valid" convolution, no padding), then averaged over the
map and over channels.

This is the convention of ``skimage.metrics.structural_similarity(..., gaussian_weights=
True, sigma=1.5, use_sample_covariance=False, data_range=L, channel_axis=-1)``: skimage
filters the whole image with reflected borders but then crops ``(win_size - 1) // 2 = 5``
pixels from every side before averaging, and the kept pixels are exactly those whose
window lies inside the image (its filter radius ``int(3.5 * 1.5 + 0.5) = 5``), so the two
agree to rounding. Images must be at least 11 x 11.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

__all__ = ["psnr", "ssim"]


def _as_image_pair(images: ArrayLike, reference: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Validates two [B, H, W, C] batches of one shape and casts them to a float dtype."""
    x = jnp.asarray(images)
    y = jnp.asarray(reference)
    if x.ndim != 4:
        raise ValueError(f"images: expected a [B, H, W, C] array, found shape {x.shape}")
    if y.shape != x.shape:
        raise ValueError(f"reference: expected shape {x.shape} like images, found {y.shape}")
    dtype = jnp.result_type(x.dtype, y.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.float32
    return x.astype(dtype), y.astype(dtype)


def _check_data_range(data_range: float) -> None:
    """Raises ValueError unless `data_range` is a positive number (when not traced)."""
    if isinstance(data_range, (int, float)) and not data_range > 0:
        raise ValueError(f"data_range: expected a positive number, found {data_range!r}")


def psnr(images: ArrayLike, reference: ArrayLike, *, data_range: float) -> jax.Array:
    """Peak signal-to-noise ratio of each image against its reference, in dB.

        PSNR = 10 log10( L^2 / MSE ),   MSE = mean over H, W, C of (x - y)^2

    Identical images give +inf.

    Args:
      images: [B, H, W, C] images.
      reference: [B, H, W, C] reference images.
      data_range: L, the span of the pixel values (1.0 for [0, 1], 2.0 for [-1, 1], 255 for
        uint8 pixels).

    Returns:
      [B] PSNR values.

    References:
      Wang and Bovik, Mean squared error: love it or leave it?, IEEE Signal Processing
      Magazine, 2009 (no arXiv id; the standard definition).
    """
    x, y = _as_image_pair(images, reference)
    _check_data_range(data_range)
    mse = jnp.mean(jnp.square(x - y), axis=(1, 2, 3))
    return 10 * jnp.log10(jnp.asarray(data_range, x.dtype) ** 2 / mse)


def _gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian weights exp(-t^2 / (2 sigma^2)), t = -radius..radius."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def ssim(
    images: ArrayLike,
    reference: ArrayLike,
    *,
    data_range: float,
    sigma: float = 1.5,
    filter_size: int = 11,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jax.Array:
    """Structural similarity of each image against its reference (Wang et al. 2004).

        mu_x = w * x,  sigma_x^2 = w * x^2 - mu_x^2,  sigma_xy = w * (x y) - mu_x mu_y
        SSIM map = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
                   / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
        C1 = (k1 L)^2,  C2 = (k2 L)^2

    with ``w *`` a valid convolution with the normalised ``filter_size``-tap Gaussian of
    width ``sigma``, separably along H and W, per channel. The result is the mean of the
    map over its valid region and over channels (see the module docstring for the match
    with scikit-image). Jittable with ``data_range`` traced or not.

    Args:
      images: [B, H, W, C] images, H, W >= filter_size.
      reference: [B, H, W, C] reference images.
      data_range: L, the span of the pixel values (1.0 for [0, 1], 2.0 for [-1, 1]).
      sigma: Gaussian window width.
      filter_size: odd window size.
      k1: luminance constant.
      k2: contrast constant.

    Returns:
      [B] SSIM values in [-1, 1] (1 for identical images).

    References:
      Wang, Bovik, Sheikh and Simoncelli, Image quality assessment: from error visibility
      to structural similarity, IEEE TIP 13(4), 2004 (no arXiv id).
    """
    x, y = _as_image_pair(images, reference)
    _check_data_range(data_range)
    if not isinstance(filter_size, int) or filter_size < 1 or filter_size % 2 == 0:
        raise ValueError(f"filter_size: expected an odd positive int, found {filter_size!r}")
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive number, found {sigma!r}")
    _, h, w, _ = x.shape
    if h < filter_size or w < filter_size:
        raise ValueError(
            f"images: expected H, W >= filter_size = {filter_size}, found shape {x.shape}"
        )
    dtype = x.dtype
    taps = jnp.asarray(_gaussian_taps(sigma, filter_size // 2), dtype)

    # All five local moments in one depthwise separable convolution: [B, H, W, 5C].
    stats = jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    channels = stats.shape[-1]
    kernel_h = jnp.tile(taps.reshape(filter_size, 1, 1, 1), (1, 1, 1, channels))
    kernel_w = kernel_h.reshape(1, filter_size, 1, channels)
    for kernel in (kernel_h, kernel_w):
        stats = lax.conv_general_dilated(
            stats,
            kernel,
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=channels,
            precision=lax.Precision.HIGHEST,
        )
    mu_x, mu_y, e_xx, e_yy, e_xy = jnp.split(stats, 5, axis=-1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    data_range = jnp.asarray(data_range, dtype)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    # Mean over the valid map per channel, then over channels: equal-size maps, so this is
    # one mean over (H', W', C).
    return jnp.mean(ssim_map, axis=(1, 2, 3))
