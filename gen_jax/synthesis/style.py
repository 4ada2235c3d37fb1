"""Neural style transfer and texture synthesis by optimising pixels (Gatys et al.).

Both match statistics of a fixed feature network's activations. The network is any Flax
module whose ``apply({"params": params}, images, outputs=names)`` maps float RGB images
``[B, H, W, 3]`` in [0, 1] to a dict ``name -> [B, H_l, W_l, C_l]`` (the contract of
`gen_jax.models.features.get_feature_net`); these functions never build one. Before the
optimisation loop the network goes through the generic `gen_jax.models.features.prepare`
hook (`PerceptualLoss.prepare`), whatever network it is.

* Texture synthesis (arXiv:1505.07376): from noise, minimise
  ``sum_l w_l E_l`` where ``E_l`` is the Gram-matrix loss
  `gen_jax.losses.perceptual.style_layer_loss` against the source texture.
* Style transfer (arXiv:1508.06576): from the content image (or noise), minimise
  ``alpha * sum_{l in content} L_content,l + beta * sum_{l in style} w_l E_l + tv_weight * TV``.

The targets (content features, style Grams) are computed once, before the optimisation,
and enter the compiled loop as arrays. The style image may have another size than the
content image: the Grams are compared per position (see `style_layer_loss`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from gen_jax.losses.perceptual import (
    content_loss,
    gram_matrix,
    style_layer_loss,
    total_variation,
)
from gen_jax.models.features import as_variables, prepare
from gen_jax.synthesis import color
from gen_jax.synthesis.optimize import as_unit_image, optimize_with_terms, precision_scope

__all__ = [
    "GATYS_CONTENT_LAYERS",
    "GATYS_STYLE_LAYERS",
    "INITS",
    "PRESERVE_COLOR_MODES",
    "PerceptualLoss",
    "SynthesisResult",
    "content_targets",
    "style_grams",
    "style_transfer",
    "texture_synthesis",
]

# The layers of Gatys et al. 2015 (VGG-19 names).
GATYS_CONTENT_LAYERS = ("relu4_2",)
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise")
PRESERVE_COLOR_MODES = ("none", "luminance", "histogram")


class SynthesisResult(NamedTuple):
    """What `style_transfer` and `texture_synthesis` return.

    Attributes:
      image: the result, float RGB ``[H, W, 3]`` in [0, 1].
      losses: ``[steps + 1]`` objective trace (`OptimizeResult.losses`).
      evaluations: ``[steps]`` loss evaluations per iteration.
      start: the loss terms (``total``, ``content``, ``style``, ``tv``; unweighted except
        ``total``) at the initial image, as Python floats.
      end: the same terms at the returned (clipped) image; for the luminance-only mode
        they are those of the grey image that was optimised, before recolouring.
    """

    image: jax.Array
    losses: jax.Array
    evaluations: jax.Array
    start: dict[str, float]
    end: dict[str, float]


def _weights(weights: Sequence[float] | None, layers: Sequence[str], name: str) -> tuple:
    """Per-layer weights: equal ones summing to 1 by default, else checked against layers."""
    if weights is None:
        return tuple(1.0 / len(layers) for _ in layers) if layers else ()
    weights = tuple(float(w) for w in weights)
    if len(weights) != len(layers):
        raise ValueError(
            f"{name} must have one weight per layer ({len(layers)} for {tuple(layers)}); "
            f"got {len(weights)}."
        )
    return weights


def _features(module, params, images: jax.Array, layers: tuple[str, ...]) -> dict:
    """The named activations of `images` [B, H, W, 3]; checks that every layer came back.

    ``params`` are the module's parameters, or what `gen_jax.models.features.prepare`
    returned.
    """
    feats = module.apply(as_variables(params), images, outputs=layers)
    missing = [name for name in layers if name not in feats]
    if missing:
        raise ValueError(f"the feature network returned no layer {missing}; got {sorted(feats)}.")
    return feats


@functools.partial(jax.jit, static_argnums=(0, 3))
def _content_features(module, params, image, layers):
    feats = _features(module, params, image[None], layers)
    return {name: feats[name][0] for name in layers}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _per_position_grams(module, params, image, layers):
    feats = _features(module, params, image[None], layers)
    return {name: gram_matrix(feats[name], "positions")[0] for name in layers}


def content_targets(
    module, params, content: ArrayLike, layers: Sequence[str], *, precision: str | None = "highest"
) -> dict[str, jax.Array]:
    """The content image's features ``P_l`` at `layers`, computed once.

    Args:
      module, params: the feature network and its parameters.
      content: RGB image ``[H, W, 3]`` in [0, 1].
      layers: layer names.
      precision: matmul and convolution precision (`gen_jax.synthesis.optimize_image`);
        float32 by default, so that the targets are as exact as the optimisation.

    Returns:
      ``{layer: [H_l, W_l, C_l]}``.
    """
    layers = tuple(layers)
    if not layers:
        return {}
    image = as_unit_image(content, "content", channels=3)
    with precision_scope(precision):
        return _content_features(module, params, image, layers)


def style_grams(
    module, params, style: ArrayLike, layers: Sequence[str], *, precision: str | None = "highest"
) -> dict[str, jax.Array]:
    """The style (or texture) image's per-position Gram matrices ``A_l / M_l``.

    Divided by the number of positions so that they compare with an image of any size
    (`style_layer_loss` with ``target_positions=1``).

    Args:
      module, params: the feature network and its parameters.
      style: RGB image ``[H, W, 3]`` in [0, 1].
      layers: layer names.
      precision: as in `content_targets`.

    Returns:
      ``{layer: [C_l, C_l]}``.
    """
    layers = tuple(layers)
    if not layers:
        return {}
    image = as_unit_image(style, "style", channels=3)
    with precision_scope(precision):
        return _per_position_grams(module, params, image, layers)


@dataclasses.dataclass(frozen=True)
class PerceptualLoss:
    """The objective of Gatys et al.: weighted content, style and TV terms of one image.

    ``total = alpha * sum_l L_content(F_l, P_l) + beta * sum_l w_l E_l(F_l, A_l)
    + tv_weight * TV_tv_beta(x)``; each content layer has weight 1. A frozen dataclass, so
    equal settings hash equal and `optimize_image` reuses its compiled program.

    Call it as ``loss(image, params, content_targets, style_grams)`` with ``image``
    ``[H, W, 3]`` and the dicts of `content_targets` / `style_grams`; ``params`` may also
    be what `prepare` returns.
    """

    module: Any
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    style_layer_weights: tuple[float, ...] = ()
    alpha: float = 1.0
    beta: float = 1.0
    tv_weight: float = 0.0
    tv_beta: float = 2.0

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the loss reads, content and style, sorted."""
        return tuple(sorted(set(self.content_layers) | set(self.style_layers)))

    def terms(
        self, image: ArrayLike, params, content: Mapping[str, jax.Array], grams: Mapping
    ) -> dict[str, jax.Array]:
        """Unweighted ``content``, ``style`` (sum of ``w_l E_l``), ``tv`` and the ``total``."""
        x = jnp.asarray(image)[None]
        layers = self.layers
        feats = _features(self.module, params, x, layers) if layers else {}
        zero = jnp.zeros((), x.dtype)
        c = sum((content_loss(feats[n], content[n])[0] for n in self.content_layers), zero)
        s = sum(
            (
                w * style_layer_loss(feats[n], grams[n], target_positions=1)[0]
                for n, w in zip(self.style_layers, self.style_layer_weights)
            ),
            zero,
        )
        tv = total_variation(x, self.tv_beta)[0] if self.tv_weight else zero
        total = self.alpha * c + self.beta * s + self.tv_weight * tv
        return {"total": total, "content": c, "style": s, "tv": tv}

    def __call__(self, image, params, content, grams) -> jax.Array:
        return self.terms(image, params, content, grams)["total"]

    def prepare(self, image, params, content, grams) -> tuple:
        """The arguments with the image-independent work on the network done once.

        `optimize_image` calls this before its loop: ``params`` become the network's
        variables from `gen_jax.models.features.prepare` (for a VGG, with its Winograd
        kernel transforms, which XLA would otherwise recompute at every evaluation; for a
        network without a ``prepare`` method, just its parameters). The targets are
        returned unchanged.
        """
        if self.layers:
            params = prepare(self.module, params, jnp.asarray(image)[None], self.layers)
        return params, content, grams


_terms = jax.jit(PerceptualLoss.terms, static_argnums=0)


def _terms_on_host(loss: PerceptualLoss, image, params, content, grams) -> dict[str, float]:
    """The loss terms of one image as Python floats (one compiled evaluation)."""
    terms = _terms(loss, image, params, content, grams)
    return {k: float(v) for k, v in jax.device_get(terms).items()}


def _grey(luma: jax.Array) -> jax.Array:
    """Luminance [H, W] as an RGB image with Y in all three channels (the net reads RGB)."""
    return jnp.repeat(jnp.clip(luma, 0.0, 1.0)[..., None], 3, axis=-1)


def _noise(key: jax.Array | None, shape: tuple[int, ...], what: str) -> jax.Array:
    if key is None:
        raise ValueError(f"{what} starts from noise and needs a PRNG key: pass key=...")
    return jax.random.uniform(key, shape, jnp.float32)


def _optimize(
    loss: PerceptualLoss, init, params, content, grams, *, optimizer, steps, precision, **opt_kwargs
) -> SynthesisResult:
    start, result, end = optimize_with_terms(
        loss,
        init,
        params,
        content,
        grams,
        terms=functools.partial(_terms_on_host, loss),
        optimizer=optimizer,
        steps=steps,
        precision=precision,
        **opt_kwargs,
    )
    return SynthesisResult(result.image, result.losses, result.evaluations, start, end)


def style_transfer(
    module,
    params,
    content: ArrayLike,
    style: ArrayLike,
    *,
    content_layers: Sequence[str] = GATYS_CONTENT_LAYERS,
    style_layers: Sequence[str] = GATYS_STYLE_LAYERS,
    style_layer_weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    beta: float = 1e3,
    tv_weight: float = 0.0,
    init: str | ArrayLike = "content",
    optimizer: str = "lbfgs",
    steps: int = 500,
    key: jax.Array | None = None,
    preserve_color: bool | str = False,
    learning_rate: float | None = None,
    parametrization: str = "pixels",
    chunk_steps: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    precision: str | None = "highest",
) -> SynthesisResult:
    """Renders ``content`` in the style of ``style`` (Gatys, Ecker & Bethge 2015).

    Minimises over the image ``x``::

        alpha * sum_{l in content_layers} 1/2 ||F_l(x) - F_l(content)||^2
        + beta * sum_{l in style_layers} w_l E_l(x, style) + tv_weight * TV(x)

    with ``E_l`` the Gram loss of `style_layer_loss` (per-position Grams, so the two images
    may differ in size).

    Args:
      module, params: the feature network (see the module docstring).
      content: RGB content image ``[H, W, 3]`` in [0, 1]; the result has its size.
      style: RGB style image ``[H_s, W_s, 3]`` in [0, 1], any size.
      content_layers, style_layers: layer names of the network.
      style_layer_weights: ``w_l``, one per style layer (default ``1 / len(style_layers)``).
      alpha, beta: content and style weights (their ratio is what matters).
      tv_weight: weight of the squared total variation (``beta = 2``).
      init: start from the ``"content"`` image, from uniform ``"noise"`` (needs ``key``),
        or from a given image of the content's shape (e.g. to continue a run).
      optimizer: ``"lbfgs"`` or ``"adam"`` (`optimize_image`).
      steps: optimisation iterations.
      key: PRNG key for the noise start.
      preserve_color: ``False``/``"none"``; ``True``/``"luminance"``: luminance-only
        transfer with the content's colours (arXiv:1606.05897, section 2.2);
        ``"histogram"``: the style recoloured to the content's colour statistics first
        (section 2.1), see `gen_jax.synthesis.color`.
      learning_rate, parametrization, chunk_steps, callback: passed to `optimize_image`.
      precision: matmul and convolution precision of the targets and of the optimisation
        (`optimize_image`; ``"highest"``, float32, by default).

    Returns:
      A `SynthesisResult`.

    References:
      Gatys, Ecker & Bethge, A Neural Algorithm of Artistic Style, 2015 (arXiv:1508.06576).
    """
    mode = {True: "luminance", False: "none", None: "none"}.get(preserve_color, preserve_color)
    if mode not in PRESERVE_COLOR_MODES:
        raise ValueError(
            f"preserve_color must be a bool or one of {PRESERVE_COLOR_MODES}; "
            f"got {preserve_color!r}."
        )
    content_img = as_unit_image(content, "content", channels=3)
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} or an image; got {init!r}.")
    else:
        init = as_unit_image(init, "init", channels=3)
        if init.shape != content_img.shape:
            raise ValueError(
                f"init must have the content's shape {content_img.shape}; got {init.shape}."
            )
    style_img = as_unit_image(style, "style", channels=3)
    content_layers, style_layers = tuple(content_layers), tuple(style_layers)
    if not content_layers and not style_layers:
        raise ValueError("style_transfer needs at least one content or style layer.")
    weights = _weights(style_layer_weights, style_layers, "style_layer_weights")
    if isinstance(init, str) and init == "noise" and key is None:
        raise ValueError("init='noise' starts from noise and needs a PRNG key: pass key=...")

    target_img = content_img
    if mode == "histogram":
        style_img = color.match_color(style_img, content_img)
    elif mode == "luminance":
        style_img = _grey(color.match_luminance(style_img, content_img))
        target_img = _grey(color.luminance(content_img))

    loss = PerceptualLoss(
        module,
        content_layers=content_layers,
        style_layers=style_layers,
        style_layer_weights=weights,
        alpha=float(alpha),
        beta=float(beta),
        tv_weight=float(tv_weight),
    )
    targets = content_targets(module, params, target_img, content_layers, precision=precision)
    grams = style_grams(module, params, style_img, style_layers, precision=precision)
    if not isinstance(init, str):
        x0 = _grey(color.luminance(init)) if mode == "luminance" else init
    elif init == "content":
        x0 = target_img
    else:
        x0 = _noise(key, target_img.shape, "init='noise'")
    result = _optimize(
        loss,
        x0,
        params,
        targets,
        grams,
        optimizer=optimizer,
        steps=steps,
        learning_rate=learning_rate,
        parametrization=parametrization,
        chunk_steps=chunk_steps,
        callback=callback,
        precision=precision,
    )
    if mode == "luminance":
        image = color.combine_luminance(color.luminance(result.image), content_img)
        result = result._replace(image=image)
    return result


def texture_synthesis(
    module,
    params,
    source: ArrayLike,
    *,
    layers: Sequence[str] = GATYS_STYLE_LAYERS,
    layer_weights: Sequence[float] | None = None,
    size: int | tuple[int, int] | None = None,
    steps: int = 500,
    key: jax.Array | None = None,
    init: ArrayLike | None = None,
    tv_weight: float = 0.0,
    optimizer: str = "lbfgs",
    learning_rate: float | None = None,
    parametrization: str = "pixels",
    chunk_steps: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    precision: str | None = "highest",
) -> SynthesisResult:
    """Synthesises a new texture with the Gram statistics of ``source`` (Gatys et al. 2015).

    From uniform noise, minimises ``sum_l w_l E_l(x, source) + tv_weight * TV(x)`` over
    the image ``x``, ``E_l`` the Gram loss of `style_layer_loss`.

    Args:
      module, params: the feature network (see the module docstring).
      source: RGB texture ``[H_s, W_s, 3]`` in [0, 1].
      layers: layer names whose Grams are matched.
      layer_weights: ``w_l``, one per layer (default ``1 / len(layers)``).
      size: output size, ``S`` (square) or ``(H, W)``; default the source's size.
      steps: optimisation iterations.
      key: PRNG key for the noise start (required unless ``init`` is given).
      init: an explicit start image ``[H, W, 3]`` instead of noise (its size wins).
      tv_weight: weight of the squared total variation.
      optimizer, learning_rate, parametrization, chunk_steps, callback: passed to
        `optimize_image`.
      precision: matmul and convolution precision of the targets and of the optimisation
        (`optimize_image`; ``"highest"``, float32, by default).

    Returns:
      A `SynthesisResult` (its ``style`` terms are the texture loss).

    References:
      Gatys, Ecker & Bethge, Texture Synthesis Using Convolutional Neural Networks, 2015
      (arXiv:1505.07376).
    """
    source_img = as_unit_image(source, "source", channels=3)
    layers = tuple(layers)
    if not layers:
        raise ValueError("texture_synthesis needs at least one layer.")
    weights = _weights(layer_weights, layers, "layer_weights")
    if init is not None:
        x0 = as_unit_image(init, "init", channels=3)
    else:
        if size is None:
            shape = source_img.shape[:2]
        elif isinstance(size, int):
            shape = (size, size)
        else:
            shape = tuple(int(s) for s in size)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"size must be a positive int or (H, W); got {size!r}.")
        x0 = _noise(key, (*shape, 3), "texture_synthesis")
    loss = PerceptualLoss(
        module,
        style_layers=layers,
        style_layer_weights=weights,
        alpha=0.0,
        beta=1.0,
        tv_weight=float(tv_weight),
    )
    grams = style_grams(module, params, source_img, layers, precision=precision)
    return _optimize(
        loss,
        x0,
        params,
        {},
        grams,
        optimizer=optimizer,
        steps=steps,
        learning_rate=learning_rate,
        parametrization=parametrization,
        chunk_steps=chunk_steps,
        callback=callback,
        precision=precision,
    )
