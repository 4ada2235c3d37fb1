"""Feature inversion: the image whose features at one layer match a target's (Mahendran &
Vedaldi 2015, arXiv:1412.0035).

From noise, minimise over the image ``x`` (values in [0, 1], ``H x W`` pixels)::

    E(x) = ||Phi(x) - Phi_0||^2 / ||Phi_0||^2                        (normalised feature loss)
         + alpha_norm_weight * R_alpha(x) + tv_weight * R_TV(x)      (natural-image priors)

    R_alpha(x) = 1 / (H W B^alpha) * sum_{i,j,c} |x_ijc - m_c|^alpha
    R_TV(x)    = 1 / (H W V^beta)  * sum_{i,j,c} ((x_i,j+1,c - x_ijc)^2
                                                  + (x_i+1,j,c - x_ijc)^2)^(beta / 2)

``Phi`` is one layer of a fixed feature network, ``Phi_0`` its value on the target image,
``m`` the per-channel mean that the alpha-norm pulls towards (default the ImageNet mean).

Scaling of the regularisers (section 3.3 of the paper, in [0, 1] pixel units). The paper
balances the terms with two image statistics: ``B``, the typical Euclidean norm of a
mean-subtracted RGB pixel (80 on the 0-255 scale), and ``V = B / 6.5``, the typical size of
the differences between neighbouring pixels. Here ``B = 80 / 255 ~ 0.314`` and
``V = B / 6.5 ~ 0.048``, and both regularisers are divided by the number of pixels, so a
natural photograph scores ``R_alpha, R_TV ~ O(1)`` whatever its size, like the
normalised feature loss at the start from noise. The paper writes the same balance as a
constant ``C`` on the feature loss, chosen per layer, with unit regulariser weights;
``alpha_norm_weight`` and ``tv_weight`` play the role of ``1 / C`` (the defaults, 1e-4 and
1e-3, are set for a random VGG19 on 128-px photographs). The paper's exponents:
``alpha = 6``, ``beta = 2`` (``beta = 1`` gives sharper but spikier reconstructions).

The optimiser is `optimize_image` (L-BFGS by default, the whole run one XLA program)
rather than the paper's momentum gradient descent with jitter.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from gen_jax.losses.perceptual import total_variation
from gen_jax.models.features import as_variables, prepare
from gen_jax.synthesis.optimize import as_unit_image, optimize_with_terms, precision_scope

__all__ = [
    "IMAGENET_MEAN",
    "PIXEL_NORM",
    "PIXEL_VARIATION",
    "InversionLoss",
    "InversionResult",
    "alpha_norm",
    "invert_features",
    "tv_prior",
]

# The mean RGB colour of ImageNet in [0, 1] (the "torch" preprocessing of the VGGs).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
# Mahendran & Vedaldi's B = 80 (0-255 scale) and V = B / 6.5, in [0, 1] pixel units.
PIXEL_NORM = 80.0 / 255.0
PIXEL_VARIATION = PIXEL_NORM / 6.5


def alpha_norm(images: ArrayLike, mean: ArrayLike, alpha: float = 6.0) -> jax.Array:
    """The normalised alpha-norm prior ``R_alpha`` of Mahendran & Vedaldi, per image.

    ``R = 1 / (H W B^alpha) * sum_{i,j,c} |x_ijc - m_c|^alpha`` with ``B = PIXEL_NORM``.

    Args:
      images: ``[B, H, W, C]`` in [0, 1].
      mean: ``m``, ``[C]`` (or anything broadcasting against ``images``).
      alpha: exponent ``>= 1`` (the paper: 6).

    Returns:
      ``[B]``.

    References:
      Mahendran & Vedaldi, Understanding Deep Image Representations by Inverting Them,
      2014 (arXiv:1412.0035), eq. 6 and section 3.3.
    """
    x = jnp.asarray(images)
    h, w = x.shape[1], x.shape[2]
    d = jnp.abs(x - jnp.asarray(mean, x.dtype)) / PIXEL_NORM
    return jnp.sum(d**alpha, axis=(1, 2, 3)) / (h * w)


def tv_prior(images: ArrayLike, beta: float = 2.0) -> jax.Array:
    """The normalised total-variation prior ``R_TV`` of Mahendran & Vedaldi, per image.

    ``R = 1 / (H W V^beta) * TV^beta(x)`` with ``V = PIXEL_VARIATION`` and ``TV^beta``
    the isotropic `gen_jax.losses.perceptual.total_variation` (summed over channels).

    Args:
      images: ``[B, H, W, C]`` in [0, 1], ``H, W >= 2``.
      beta: exponent ``> 0`` (the paper: 2, or 1).

    Returns:
      ``[B]``.

    References:
      Mahendran & Vedaldi 2014 (arXiv:1412.0035), eq. 7 and section 3.3.
    """
    x = jnp.asarray(images)
    h, w = x.shape[1], x.shape[2]
    return total_variation(x, beta) / (h * w * PIXEL_VARIATION**beta)


@dataclasses.dataclass(frozen=True)
class InversionLoss:
    """The objective ``E(x)`` of the module docstring for one layer.

    A frozen dataclass (equal settings hash equal, so `optimize_image` reuses its compiled
    program). Call it as ``loss(image, params, target, mean)`` with ``image`` ``[H, W, C]``,
    ``target`` the layer's target features ``[H_l, W_l, C_l]`` (any shape the network
    returns for one image) and ``mean`` ``[C]``; ``params`` may also be what `prepare`
    returns.
    """

    module: Any
    layer: str
    alpha_norm_weight: float = 0.0
    alpha: float = 6.0
    tv_weight: float = 0.0
    beta: float = 2.0

    def terms(self, image: ArrayLike, params, target, mean) -> dict[str, jax.Array]:
        """Unweighted ``feature``, ``norm``, ``tv`` and the weighted ``total``."""
        x = jnp.asarray(image)[None]
        feats = self.module.apply(as_variables(params), x, outputs=(self.layer,))
        if self.layer not in feats:
            raise ValueError(
                f"the feature network returned no layer {self.layer!r}; got {sorted(feats)}."
            )
        phi = feats[self.layer][0]
        target = jnp.asarray(target, phi.dtype)
        # A tiny floor keeps an all-zero target (a dead layer) from dividing by zero.
        norm0 = jnp.maximum(jnp.sum(jnp.square(target)), 1e-12)
        feature = jnp.sum(jnp.square(phi - target)) / norm0
        norm = alpha_norm(x, mean, self.alpha)[0]
        tv = tv_prior(x, self.beta)[0]
        total = feature + self.alpha_norm_weight * norm + self.tv_weight * tv
        return {"total": total, "feature": feature, "norm": norm, "tv": tv}

    def __call__(self, image, params, target, mean) -> jax.Array:
        return self.terms(image, params, target, mean)["total"]

    def prepare(self, image, params, target, mean) -> tuple:
        """The arguments with the image-independent work on the network done once:
        ``params`` become `gen_jax.models.features.prepare`'s variables (`optimize_image`
        calls this before its loop; see `PerceptualLoss.prepare`)."""
        return prepare(self.module, params, jnp.asarray(image)[None], (self.layer,)), target, mean


class InversionResult(NamedTuple):
    """What `invert_features` returns.

    Attributes:
      image: the reconstruction, float ``[H, W, C]`` in [0, 1] (clipped).
      losses: ``[steps + 1]`` objective trace (`OptimizeResult.losses`).
      evaluations: ``[steps]`` loss evaluations per iteration.
      start: the terms (``total``, ``feature``, ``norm``, ``tv``; all but ``total``
        unweighted) at the initial noise, as Python floats.
      end: the same terms at the returned (clipped) image.
    """

    image: jax.Array
    losses: jax.Array
    evaluations: jax.Array
    start: dict[str, float]
    end: dict[str, float]


_terms = jax.jit(InversionLoss.terms, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _layer_features(module, params, image, layer):
    feats = module.apply({"params": params}, image[None], outputs=(layer,))
    return feats[layer][0]


def invert_features(
    module,
    params,
    target_image: ArrayLike | None = None,
    *,
    layer: str,
    target_features: ArrayLike | None = None,
    size: tuple[int, int] | None = None,
    channels: int = 3,
    alpha_norm_weight: float = 1e-4,
    alpha: float = 6.0,
    tv_weight: float = 1e-3,
    beta: float = 2.0,
    mean: ArrayLike | None = None,
    optimizer: str = "lbfgs",
    steps: int = 200,
    key: jax.Array | None = None,
    init: ArrayLike | None = None,
    learning_rate: float | None = None,
    parametrization: str = "pixels",
    chunk_steps: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    precision: str | None = "highest",
) -> InversionResult:
    """Reconstructs an image from its features at one layer (Mahendran & Vedaldi 2015).

    Minimises, from uniform noise, over the image ``x``::

        ||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + alpha_norm_weight * R_alpha(x)
            + tv_weight * R_TV(x)

    with the priors scaled as in the module docstring (``R ~ O(1)`` on a photograph).

    Args:
      module, params: the feature network, ``module.apply({"params": params}, images
        [B, H, W, C] in [0, 1], outputs=(layer,)) -> {layer: array}`` (the contract of
        `gen_jax.models.features.get_feature_net`).
      target_image: the image to reconstruct, ``[H, W, C]`` float in [0, 1]; gives
        ``Phi_0`` and the output size. Exactly one of it and ``target_features``.
      layer: the layer name whose features are matched, e.g. ``"relu3_1"``.
      target_features: ``Phi_0`` itself (the layer's output for one image, without the
        batch axis); then ``size`` is required.
      size: ``(H, W)`` of the reconstruction when only ``target_features`` are given.
      channels: ``C`` of the reconstruction when only ``target_features`` are given.
      alpha_norm_weight: weight of ``R_alpha`` (the paper's ``1 / C``).
      alpha: exponent of the alpha-norm prior (the paper: 6).
      tv_weight: weight of ``R_TV``.
      beta: exponent of the TV prior (the paper: 2, or 1).
      mean: ``[C]`` colour the alpha-norm pulls towards; default the ImageNet mean for
        ``C = 3`` (0.5 otherwise).
      optimizer: ``"lbfgs"`` or ``"adam"`` (`optimize_image`).
      steps: optimisation iterations.
      key: PRNG key of the noise start (required unless ``init`` is given).
      init: an explicit start image ``[H, W, C]`` instead of noise.
      learning_rate, parametrization, chunk_steps, callback: passed to `optimize_image`.
      precision: matmul and convolution precision of the target features and of the
        optimisation (`optimize_image`; ``"highest"``, float32, by default).

    Returns:
      An `InversionResult`.

    Raises:
      ValueError: both or neither of ``target_image`` / ``target_features``, features
        without ``size``, an image that is not float ``[H, W, C]`` in [0, 1], or
        ``alpha < 1``, ``beta <= 0``, negative weights, a missing key.

    References:
      Mahendran & Vedaldi, Understanding Deep Image Representations by Inverting Them,
      2014 (arXiv:1412.0035).
    """
    if (target_image is None) == (target_features is None):
        raise ValueError("invert_features needs exactly one of target_image and target_features.")
    if not alpha >= 1.0:
        raise ValueError(f"alpha must be >= 1 (the paper uses 6); got {alpha}.")
    if not beta > 0.0:
        raise ValueError(f"beta must be positive (the paper uses 2 or 1); got {beta}.")
    if alpha_norm_weight < 0 or tv_weight < 0:
        raise ValueError(
            f"alpha_norm_weight and tv_weight must be >= 0; got {alpha_norm_weight}, {tv_weight}."
        )
    if target_image is not None:
        target_img = as_unit_image(target_image, "target_image")
        shape = tuple(target_img.shape)
        with precision_scope(precision):
            target = _layer_features(module, params, target_img, layer)
    else:
        if size is None or len(tuple(size)) != 2 or min(size) < 2:
            raise ValueError(
                f"target_features needs size=(H, W) of the reconstruction (H, W >= 2); "
                f"got size={size!r}."
            )
        shape = (int(size[0]), int(size[1]), int(channels))
        target = jnp.asarray(target_features, jnp.float32)
    if init is not None:
        x0 = as_unit_image(init, "init")
        if x0.shape != shape:
            raise ValueError(f"init must have the reconstruction's shape {shape}; got {x0.shape}.")
    else:
        if key is None:
            raise ValueError("invert_features starts from noise and needs a PRNG key: key=...")
        x0 = jax.random.uniform(key, shape, jnp.float32)
    c = shape[-1]
    if mean is None:
        mean = IMAGENET_MEAN if c == 3 else (0.5,) * c
    mean = jnp.broadcast_to(jnp.asarray(mean, jnp.float32), (c,))

    loss = InversionLoss(
        module,
        layer=layer,
        alpha_norm_weight=float(alpha_norm_weight),
        alpha=float(alpha),
        tv_weight=float(tv_weight),
        beta=float(beta),
    )
    start, result, end = optimize_with_terms(
        loss,
        x0,
        params,
        target,
        mean,
        terms=functools.partial(_host_terms, loss),
        optimizer=optimizer,
        steps=steps,
        learning_rate=learning_rate,
        parametrization=parametrization,
        chunk_steps=chunk_steps,
        callback=callback,
        precision=precision,
    )
    return InversionResult(result.image, result.losses, result.evaluations, start, end)


def _host_terms(loss: InversionLoss, image, params, target, mean) -> dict[str, float]:
    """The loss terms of one image as Python floats (one compiled evaluation)."""
    terms = _terms(loss, image, params, target, mean)
    return {k: float(v) for k, v in jax.device_get(terms).items()}
