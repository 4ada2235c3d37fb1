"""Colour preservation for neural style transfer (Gatys et al. 2016, arXiv:1606.05897).

Two ways to keep the content image's colours while taking the style's texture:

* **Luminance-only transfer** (section 2.2): transfer style between the luminance
  channels only, after matching the style luminance's mean and standard deviation to the
  content's (`match_luminance`), then put the content's chrominance back
  (`combine_luminance`). Colour space YIQ, as in the paper.
* **Colour histogram matching** (section 2.1): recolour the *style* image before the
  transfer so that its pixels' RGB mean and covariance equal the content's
  (`match_color`): ``x' = A (x - mu_s) + mu_c`` with ``A Sigma_s A^T = Sigma_c``, ``A``
  from Cholesky factors or from symmetric matrix square roots (the "image analogies"
  variant).

Images are float RGB ``[..., H, W, 3]`` in [0, 1]; every function is pure jax.numpy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "COLOR_MATCH_MODES",
    "combine_luminance",
    "luminance",
    "match_color",
    "match_luminance",
    "rgb_to_yiq",
    "yiq_to_rgb",
]

COLOR_MATCH_MODES = ("cholesky", "eigen")

# NTSC YIQ (FCC 1953 coefficients); rows give Y, I, Q from R, G, B.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    np.float64,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

# Keeps the standard deviation (and covariance) of a flat image invertible.
_EPS = 1e-5


def _as_rgb(x: ArrayLike, name: str) -> jax.Array:
    """Converts `x` to a floating array with a trailing RGB axis, naming `name` in errors."""
    a = jnp.asarray(x)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be RGB with shape [..., 3]; got shape {a.shape}.")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    return a


def rgb_to_yiq(images: ArrayLike) -> jax.Array:
    """RGB to YIQ: ``[Y, I, Q] = M [R, G, B]`` with the NTSC matrix ``M``.

    Args:
      images: RGB, shape ``[..., 3]``.

    Returns:
      YIQ, shape ``[..., 3]``; Y (luminance) in [0, 1] for RGB in [0, 1].
    """
    x = _as_rgb(images, "images")
    return x @ jnp.asarray(_RGB_TO_YIQ.T, x.dtype)


def yiq_to_rgb(images: ArrayLike) -> jax.Array:
    """YIQ to RGB, the exact inverse of `rgb_to_yiq` (no clipping).

    Args:
      images: YIQ, shape ``[..., 3]``.

    Returns:
      RGB, shape ``[..., 3]``.
    """
    x = _as_rgb(images, "images")
    return x @ jnp.asarray(_YIQ_TO_RGB.T, x.dtype)


def luminance(images: ArrayLike) -> jax.Array:
    """The Y channel: ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Args:
      images: RGB, shape ``[..., 3]``.

    Returns:
      Luminance, shape ``[...]``.
    """
    return rgb_to_yiq(images)[..., 0]


def match_luminance(style: ArrayLike, content: ArrayLike) -> jax.Array:
    """The style's luminance, affinely matched to the content's mean and deviation.

    ``L_s' = sigma_c / sigma_s * (L_s - mu_s) + mu_c`` (Gatys et al. 2016, eq. 1), the
    statistics over all pixels of each image.

    Args:
      style: RGB style image, shape ``[H_s, W_s, 3]``.
      content: RGB content image, shape ``[H_c, W_c, 3]`` (any size).

    Returns:
      Matched luminance, shape ``[H_s, W_s]`` (not clipped).

    References:
      Gatys, Bethge, Hertzmann & Shechtman, Preserving Color in Neural Artistic Style
      Transfer, 2016 (arXiv:1606.05897).
    """
    ls, lc = luminance(style), luminance(content)
    return (ls - ls.mean()) * (lc.std() / (ls.std() + _EPS)) + lc.mean()


def combine_luminance(luma: ArrayLike, content: ArrayLike) -> jax.Array:
    """An RGB image with luminance ``luma`` and the chrominance (I, Q) of ``content``.

    Args:
      luma: luminance, shape ``[H, W]`` (e.g. of a luminance-only style transfer).
      content: RGB image of the same size, shape ``[H, W, 3]``.

    Returns:
      RGB, shape ``[H, W, 3]``, clipped to [0, 1].
    """
    c = rgb_to_yiq(content)
    y = jnp.asarray(luma, c.dtype)
    if y.shape != c.shape[:-1]:
        raise ValueError(
            f"luma must have shape {c.shape[:-1]} to match content of shape {c.shape}; "
            f"got {y.shape}."
        )
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y[..., None], c[..., 1:]], axis=-1)), 0.0, 1.0)


def _sqrtm(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Symmetric square root of an SPD matrix and its inverse, by eigendecomposition."""
    w, v = jnp.linalg.eigh(cov)
    w = jnp.maximum(w, _EPS)
    return (v * jnp.sqrt(w)) @ v.T, (v / jnp.sqrt(w)) @ v.T


def match_color(style: ArrayLike, content: ArrayLike, mode: str = "cholesky") -> jax.Array:
    """The style image recoloured so its RGB mean and covariance equal the content's.

    ``x' = A (x - mu_s) + mu_c`` for every style pixel ``x``, with ``A Sigma_s A^T =
    Sigma_c``:

    * ``"cholesky"``: ``A = L_c L_s^{-1}``, ``L`` the Cholesky factors.
    * ``"eigen"``: ``A = Sigma_c^{1/2} Sigma_s^{-1/2}`` (symmetric square roots; the
      image-analogies colour transfer of the paper).

    Args:
      style: RGB style image, shape ``[H_s, W_s, 3]``.
      content: RGB content image, shape ``[H_c, W_c, 3]`` (any size).
      mode: ``"cholesky"`` or ``"eigen"``.

    Returns:
      The recoloured style image, shape ``[H_s, W_s, 3]``, clipped to [0, 1] (clipping
      moves the statistics slightly when the transform leaves the cube).

    References:
      Gatys, Bethge, Hertzmann & Shechtman, Preserving Color in Neural Artistic Style
      Transfer, 2016 (arXiv:1606.05897), section 2.1.
    """
    if mode not in COLOR_MATCH_MODES:
        raise ValueError(f"mode must be one of {COLOR_MATCH_MODES}; got {mode!r}.")
    s = _as_rgb(style, "style")
    c = _as_rgb(content, "content")
    xs, xc = s.reshape(-1, 3), c.reshape(-1, 3)
    mu_s, mu_c = xs.mean(0), xc.mean(0)
    eye = _EPS * jnp.eye(3, dtype=s.dtype)
    cov_s = jnp.cov(xs, rowvar=False, bias=True) + eye
    cov_c = jnp.cov(xc, rowvar=False, bias=True) + eye
    if mode == "cholesky":
        l_s, l_c = jnp.linalg.cholesky(cov_s), jnp.linalg.cholesky(cov_c)
        a = l_c @ jnp.linalg.inv(l_s)
    else:
        sqrt_c, _ = _sqrtm(cov_c)
        _, inv_sqrt_s = _sqrtm(cov_s)
        a = sqrt_c @ inv_sqrt_s
    out = (xs - mu_s) @ a.T + mu_c
    return jnp.clip(out.reshape(s.shape), 0.0, 1.0)
