"""Perceptual losses of neural style transfer and texture synthesis: Gram, content, TV.

Convention, shared by every function in this module:

* Feature maps are channels-last, ``[batch, height, width, channels]`` (what a Flax conv
  net returns). ``M = height * width`` is the number of positions and ``N = channels``
  the number of filters, the notation of Gatys et al.
* Every loss returns per-example values of shape ``[batch]``; the caller reduces (the
  image optimisations of `gen_jax.synthesis` sum them).
* Targets (the content features ``P``, the style Gram ``A``) may carry the batch axis or
  omit it, in which case one target is broadcast over the batch.
* Nothing here knows about networks: the caller computes the features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "GRAM_NORMALIZATIONS",
    "content_loss",
    "gram_matrix",
    "style_layer_loss",
    "total_variation",
]

GRAM_NORMALIZATIONS = ("none", "positions", "elements")

# HIGHEST precision: on accelerators the default bf16 passes lose the small differences
# between Grams that the style loss is made of.
_HIGHEST = jax.lax.Precision.HIGHEST


@jax.custom_vjp
def _gram(flat: jax.Array) -> jax.Array:
    """``F^T F`` per example: [B, M, C] -> [B, C, C]."""
    return jnp.einsum("bmi,bmj->bij", flat, flat, precision=_HIGHEST)


def _gram_fwd(flat):
    return _gram(flat), flat


def _gram_bwd(flat, g):
    # d(F^T F) = dF^T F + F^T dF, so dL/dF = F (S + S^T) with S = dL/dG: one product of
    # the positions-major F, written out. JAX's own transpose of the einsum is two products
    # whose result XLA:CPU lays out channels-major, and the transposing reads that follow
    # cost more than the products (`python -m benchmarks.vgg_layer_speed`: 2x to 3.5x
    # slower on VGG's Gram layers). Plain JAX, so gradients of gradients still work.
    return (jnp.einsum("bmi,bij->bmj", flat, g + jnp.swapaxes(g, -1, -2), precision=_HIGHEST),)


_gram.defvjp(_gram_fwd, _gram_bwd)


def _as_features(x: ArrayLike, name: str) -> jax.Array:
    """Converts `x` to a floating array of shape [B, H, W, C], naming `name` in the error."""
    f = jnp.asarray(x)
    if f.ndim != 4:
        raise ValueError(
            f"{name} must be a feature map of shape [batch, height, width, channels]; "
            f"got shape {f.shape}."
        )
    if not jnp.issubdtype(f.dtype, jnp.inexact):
        f = f.astype(jnp.result_type(float))
    return f


def gram_matrix(features: ArrayLike, normalize: str = "none") -> jax.Array:
    """Gram matrix of a feature map: the inner products of its channels over positions.

    ``G[b, i, j] = sum_m F[b, m, i] F[b, m, j]`` with ``m`` running over the ``M = H * W``
    positions (Gatys et al.'s ``G^l_ij = sum_k F^l_ik F^l_jk``). ``normalize`` divides it:

    * ``"none"``: the plain sum, as in the paper.
    * ``"positions"``: by ``M``, a mean over positions; comparable across image sizes.
    * ``"elements"``: by ``N * M`` (Johnson et al. 2016, arXiv:1603.08155).

    Args:
      features: feature map ``F``, shape ``[B, H, W, C]``.
      normalize: one of ``"none"``, ``"positions"``, ``"elements"``.

    Returns:
      ``G``, shape ``[B, C, C]``, symmetric positive semi-definite.

    Its gradient is written out (one matrix product, see `_gram_bwd`), so reverse-mode
    differentiation, to any order, is supported and forward mode (`jax.jvp`) is not.

    References:
      Gatys, Ecker & Bethge, Texture Synthesis Using Convolutional Neural Networks, 2015
      (arXiv:1505.07376).
    """
    f = _as_features(features, "features")
    if normalize not in GRAM_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {GRAM_NORMALIZATIONS}; got {normalize!r}.")
    b, h, w, c = f.shape
    gram = _gram(f.reshape(b, h * w, c))
    if normalize == "positions":
        gram = gram / (h * w)
    elif normalize == "elements":
        gram = gram / (h * w * c)
    return gram


def style_layer_loss(
    features: ArrayLike, target_gram: ArrayLike, target_positions: int | None = None
) -> jax.Array:
    """Gatys et al.'s style (texture) loss of one layer: the squared distance of Grams.

    With ``G`` the (unnormalised) Gram matrix of ``features`` and ``A`` that of the
    target::

        E = 1 / (4 N^2 M^2) * sum_ij (G_ij - A_ij)^2

    ``N`` channels, ``M`` positions. When the target Gram comes from an image of another
    size, pass its number of positions ``M_A``: the loss becomes
    ``1 / (4 N^2) * sum_ij (G_ij / M - A_ij / M_A)^2``, which compares the per-position
    statistics and equals the formula above when ``M_A = M``.

    Args:
      features: feature map ``F`` of the image being optimised, shape ``[B, H, W, C]``.
      target_gram: the target's unnormalised Gram ``A``, shape ``[B, C, C]`` or ``[C, C]``
        (broadcast over the batch).
      target_positions: ``M_A``, the number of positions the target Gram summed over;
        ``None`` means ``M`` (same size as ``features``).

    Returns:
      Per-example loss ``E``, shape ``[B]``.

    References:
      Gatys, Ecker & Bethge, Texture Synthesis Using Convolutional Neural Networks, 2015
      (arXiv:1505.07376), eq. 4; A Neural Algorithm of Artistic Style, 2015
      (arXiv:1508.06576), eq. 4.
    """
    f = _as_features(features, "features")
    b, h, w, c = f.shape
    a = jnp.asarray(target_gram, f.dtype)
    if a.shape not in ((c, c), (b, c, c)):
        raise ValueError(
            f"target_gram must have shape [{c}, {c}] or [{b}, {c}, {c}] to match features of "
            f"shape {f.shape}; got {a.shape}."
        )
    m = h * w
    m_a = m if target_positions is None else target_positions
    if m_a <= 0:
        raise ValueError(f"target_positions must be positive; got {target_positions}.")
    # Both Grams divided by their own M: the same formula for equal and unequal sizes.
    diff = gram_matrix(f, "positions") - a / m_a
    return jnp.sum(jnp.square(diff), axis=(-2, -1)) / (4.0 * c * c)


def content_loss(features: ArrayLike, target_features: ArrayLike) -> jax.Array:
    """Gatys et al.'s content loss: half the squared error between feature maps.

    ``L = 1/2 * sum_ij (F_ij - P_ij)^2`` over all positions and channels.

    Args:
      features: feature map ``F`` of the image being optimised, shape ``[B, H, W, C]``.
      target_features: the content image's features ``P``, shape ``[B, H, W, C]`` or
        ``[H, W, C]`` (broadcast over the batch).

    Returns:
      Per-example loss, shape ``[B]``.

    References:
      Gatys, Ecker & Bethge, A Neural Algorithm of Artistic Style, 2015 (arXiv:1508.06576),
      eq. 1.
    """
    f = _as_features(features, "features")
    p = jnp.asarray(target_features, f.dtype)
    if p.shape not in (f.shape, f.shape[1:]):
        raise ValueError(
            f"target_features must have shape {f.shape} or {f.shape[1:]} to match features; "
            f"got {p.shape}."
        )
    return 0.5 * jnp.sum(jnp.square(f - p), axis=(1, 2, 3))


def total_variation(
    images: ArrayLike, beta: float = 2.0, *, isotropic: bool = True, eps: float = 1e-8
) -> jax.Array:
    """Total variation regulariser of Mahendran & Vedaldi, with exponent ``beta``.

    Isotropic (the default), over the ``(H-1) x (W-1)`` positions where both neighbours
    exist, summed over channels::

        R = sum_{i,j,c} ((x[i, j+1, c] - x[i, j, c])^2 + (x[i+1, j, c] - x[i, j, c])^2)^(beta/2)

    Anisotropic (``isotropic=False``), over every horizontal and vertical difference::

        R = sum |x[i, j+1, c] - x[i, j, c]|^beta + sum |x[i+1, j, c] - x[i, j, c]|^beta

    ``beta = 2`` (the default) is the squared TV, smooth everywhere; ``beta = 1`` is the
    usual TV norm. For ``beta != 2`` the base is ``d^2 + eps`` (not ``d^2``) so that the
    gradient stays finite where neighbours are equal.

    Args:
      images: images ``x``, shape ``[B, H, W, C]``, ``H, W >= 2``.
      beta: exponent ``beta > 0``.
      isotropic: the isotropic form above, or the anisotropic one.
      eps: smoothing added under the power when ``beta != 2``.

    Returns:
      Per-example regulariser, shape ``[B]``.

    References:
      Mahendran & Vedaldi, Understanding Deep Image Representations by Inverting Them, 2014
      (arXiv:1412.0035), eq. 7 (the ``R_{V^beta}`` regulariser).
    """
    x = _as_features(images, "images")
    if x.shape[1] < 2 or x.shape[2] < 2:
        raise ValueError(f"images must be at least 2x2 pixels; got shape {x.shape}.")
    if not beta > 0:
        raise ValueError(f"beta must be positive; got {beta}.")
    smooth = eps if beta != 2.0 else 0.0
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]  # [B, H, W-1, C]
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]  # [B, H-1, W, C]
    if isotropic:
        sq = jnp.square(dx[:, :-1, :, :]) + jnp.square(dy[:, :, :-1, :])
        terms = (sq + smooth) ** (beta / 2.0)
        return jnp.sum(terms, axis=(1, 2, 3))
    tx = (jnp.square(dx) + smooth) ** (beta / 2.0)
    ty = (jnp.square(dy) + smooth) ** (beta / 2.0)
    return jnp.sum(tx, axis=(1, 2, 3)) + jnp.sum(ty, axis=(1, 2, 3))
