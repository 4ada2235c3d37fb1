"""DeepDream: gradient ascent on a network's activations, octave by octave (Mordvintsev,
Olah & Tyka 2015, "Inceptionism: Going Deeper into Neural Networks", Google Research blog,
and the accompanying deepdream notebook; no arXiv paper).

The objective of an image ``x`` is a weighted sum over layers of the mean square
activation (``objective="squared"``, the notebook's L2 objective, whose gradient
``dL/da = a`` amplifies whatever the layer already responds to) or of the mean activation
(``objective="mean"``, the TensorFlow tutorial's; the one to use for a single logit)::

    L(x) = sum_l w_l * mean_{i,j,c} crop(a_l(x))_ijc^2        ("squared")
    L(x) = sum_l w_l * mean_{i,j,c} crop(a_l(x))_ijc          ("mean")

``crop`` drops a fraction ``crop_border`` of each side of every spatial map (the Keras
example's ``[2:-2, 2:-2]``), so that the zero-padded borders, where activations behave
differently, do not dominate the dream. Each step ascends the gradient normalised by its
mean absolute value, on an image rolled by a random offset (jitter, undone afterwards),
and clips to [0, 1]::

    x <- clip(x + step_size * g / mean(|g|)),    g = grad_x L(roll(x, d)) rolled back by -d

Octaves: the image is dreamed at ``num_octaves`` sizes, the smallest first, each ``octave_
scale`` (1.4) times the previous, the last the input's own size. At each new octave the
dreamed image is upsampled and the detail that downscaling removed from the original is
re-injected::

    x_k = up(x_{k-1}) + (base_k - up(base_{k-1})) = base_k + up(x_{k-1} - base_{k-1})

with ``base_k`` the original resized to octave ``k``'s size (both forms are equal because
resizing is linear; the second is computed, so that a dream without steps returns the
original exactly). ``max_loss`` stops an octave's ascent at the first step whose loss
exceeds it (the Keras example's guard against over-saturated dreams); the steps run in a
`lax.while_loop`, one compiled program per octave size.

Without trained weights (none can be downloaded here) a random VGG has learned nothing to
dream about: the dreams of ``random_vgg19`` are texture-like amplified edges and colour
blobs, not the dog faces and pagodas of a trained network. `ClassifierFeatures` dreams
with the project's Fashion-MNIST classifier instead (a logit or its hidden layer).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

__all__ = [
    "OBJECTIVES",
    "ClassifierFeatures",
    "DreamObjective",
    "DreamResult",
    "crop_border_fraction",
    "deep_dream",
    "dream_octave",
    "octave_shapes",
]

OBJECTIVES = ("squared", "mean")


def octave_shapes(height: int, width: int, num_octaves: int, octave_scale: float = 1.4) -> list:
    """The image sizes of the octaves, smallest first, the last ``(height, width)``.

    ``shape_k = (int(H / s^(n-1-k)), int(W / s^(n-1-k)))`` for ``k = 0 .. n-1`` (floored,
    as in the Keras deep_dream example).

    Args:
      height, width: the input's size.
      num_octaves: ``n >= 1``.
      octave_scale: ``s > 1``.

    Returns:
      A list of ``n`` ``(h, w)`` tuples.

    Raises:
      ValueError: ``n < 1``, ``s <= 1``, or an octave smaller than 1 pixel.
    """
    if num_octaves < 1:
        raise ValueError(f"num_octaves must be >= 1; got {num_octaves}.")
    if not octave_scale > 1.0:
        raise ValueError(f"octave_scale must be > 1; got {octave_scale}.")
    shapes = []
    for k in range(num_octaves):
        f = octave_scale ** (num_octaves - 1 - k)
        shape = (int(height / f), int(width / f))
        if min(shape) < 1:
            raise ValueError(
                f"octave {k} of a {height}x{width} image would be {shape[0]}x{shape[1]} pixels "
                f"with num_octaves={num_octaves}, octave_scale={octave_scale}; use fewer octaves."
            )
        shapes.append(shape)
    return shapes


def crop_border_fraction(a: jax.Array, fraction: float) -> jax.Array:
    """Drops ``int(fraction * size)`` rows/columns from each side of a ``[B, H, W, C]`` map.

    Non-spatial arrays (``ndim != 4``, e.g. logits ``[B, K]``) are returned unchanged; at
    least one row and column is always kept.
    """
    if a.ndim != 4 or fraction <= 0:
        return a
    h, w = a.shape[1], a.shape[2]
    ch = min(int(fraction * h), (h - 1) // 2)
    cw = min(int(fraction * w), (w - 1) // 2)
    return a[:, ch : h - ch, cw : w - cw, :]


@dataclasses.dataclass(frozen=True)
class DreamObjective:
    """``L(x) = sum_l w_l * mean(crop(a_l(x))^2)`` (or of ``crop(a_l(x))``), per image.

    A frozen dataclass: hashable, the static key of the compiled octave programs. Call it
    as ``objective(images [B, H, W, C], params) -> {"total": [B], layer: [B] ...}``.
    """

    module: Any
    layers: tuple[str, ...]
    layer_weights: tuple[float, ...]
    objective: str = "squared"
    crop_border: float = 0.0

    def __call__(self, images: jax.Array, params) -> dict[str, jax.Array]:
        feats = self.module.apply({"params": params}, images, outputs=self.layers)
        missing = [n for n in self.layers if n not in feats]
        if missing:
            raise ValueError(
                f"the feature network returned no layer {missing}; got {sorted(feats)}."
            )
        out = {}
        total = jnp.zeros((images.shape[0],), jnp.float32)
        for name, w in zip(self.layers, self.layer_weights):
            a = crop_border_fraction(jnp.asarray(feats[name], jnp.float32), self.crop_border)
            a = jnp.square(a) if self.objective == "squared" else a
            value = jnp.mean(a.reshape(a.shape[0], -1), axis=1)
            out[name] = value
            total = total + w * value
        out["total"] = total
        return out


def _ascend(objective, params, x, key, step_size, max_loss, steps, jitter, clip):
    """Up to `steps` ascent steps on one image [H, W, C]; stops when the loss > max_loss."""

    def loss_fn(img):
        return objective(img[None], params)["total"][0]

    grad_fn = jax.value_and_grad(loss_fn)

    def cond(carry):
        _, i, stopped, _ = carry
        return (i < steps) & ~stopped

    def body(carry):
        x, i, _, losses = carry
        shift = jax.random.randint(jax.random.fold_in(key, i), (2,), -jitter, jitter + 1)
        loss, g = grad_fn(jnp.roll(x, shift, axis=(0, 1)))
        g = jnp.roll(g, -shift, axis=(0, 1))
        # The notebook's normalisation: steps of a fixed mean size whatever the layer's scale.
        g = g / jnp.maximum(jnp.mean(jnp.abs(g)), 1e-8)
        stopped = loss > max_loss
        x_new = x + step_size * g
        x_new = jnp.clip(x_new, 0.0, 1.0) if clip else x_new
        x = jnp.where(stopped, x, x_new)
        losses = losses.at[i].set(loss)
        return x, i + 1, stopped, losses

    # One spare slot: with steps = 0 the (never run) body still indexes the buffer.
    losses = jnp.full((steps + 1,), jnp.nan, jnp.float32)
    init = (x, jnp.asarray(0, jnp.int32), jnp.asarray(False), losses)
    x, i, stopped, losses = lax.while_loop(cond, body, init)
    # Steps taken: iterations run, less the one that found the loss too high.
    return x, losses[:steps], i - stopped.astype(jnp.int32)


def _resize(x: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Bilinear resize of [H, W, C] to `shape`, antialiased when shrinking (still linear)."""
    if tuple(x.shape[:2]) == tuple(shape):
        return x
    return jax.image.resize(x, (*shape, x.shape[-1]), "linear", antialias=True)


@functools.partial(
    jax.jit, static_argnames=("objective", "shape", "steps", "jitter", "clip", "first")
)
def _octave(
    original,
    prev,
    prev_base,
    params,
    key,
    step_size,
    max_loss,
    *,
    objective,
    shape,
    steps,
    jitter,
    clip,
    first,
):
    """One whole octave in one program: re-injection, start terms, ascent, end terms."""
    base = _resize(original, shape)
    # Detail re-injection, x_k = base_k + up(x_{k-1} - base_{k-1}).
    x = base if first else base + _resize(prev - prev_base, shape)
    start = {k: v[0] for k, v in objective(x[None], params).items()}
    x, losses, taken = _ascend(objective, params, x, key, step_size, max_loss, steps, jitter, clip)
    end = {k: v[0] for k, v in objective(x[None], params).items()}
    return x, base, losses, taken, start, end


def _run_octave(
    objective,
    params,
    original,
    prev,
    prev_base,
    *,
    shape,
    steps,
    step_size,
    key,
    jitter,
    max_loss,
    clip,
):
    """`_octave` with host-side arguments; returns (x, base, losses, taken, start, end)."""
    first = prev is None
    x, base, losses, taken, start, end = _octave(
        original,
        original if first else prev,
        original if first else prev_base,
        params,
        key,
        jnp.float32(step_size),
        jnp.float32(jnp.inf if max_loss is None else max_loss),
        objective=objective,
        shape=tuple(shape),
        steps=int(steps),
        jitter=int(jitter),
        clip=bool(clip),
        first=first,
    )
    return x, base, losses, int(taken), _to_floats(start), _to_floats(end)


def dream_octave(
    objective: DreamObjective,
    params,
    image: ArrayLike,
    *,
    steps: int,
    step_size: float,
    key: jax.Array,
    jitter: int = 0,
    max_loss: float | None = None,
    clip: bool = True,
) -> tuple[jax.Array, jax.Array, int]:
    """One octave of DeepDream: up to ``steps`` normalised gradient-ascent steps.

    ``x <- clip(x + step_size * g / mean|g|)`` with ``g`` the jittered gradient of the
    objective; stops before the first step at which the objective exceeds ``max_loss``.

    Args:
      objective: a `DreamObjective`.
      params: the network's parameters.
      image: ``[H, W, C]``.
      steps: the most steps, ``>= 0``.
      step_size: the mean absolute change of a step, in [0, 1] pixel units.
      key: PRNG key of the jitter.
      jitter: largest roll, in pixels, along each axis.
      max_loss: stop threshold (None: never).
      clip: clip to [0, 1] after each step.

    Returns:
      ``(image [H, W, C], losses [steps] (NaN after a stop), steps_taken)``; ``losses[k]``
      is the objective before step ``k``.
    """
    x = jnp.asarray(image, jnp.float32)
    out = _run_octave(
        objective,
        params,
        x,
        None,
        None,
        shape=x.shape[:2],
        steps=steps,
        step_size=step_size,
        key=key,
        jitter=jitter,
        max_loss=max_loss,
        clip=clip,
    )
    return out[0], out[2], out[3]


class DreamResult(NamedTuple):
    """What `deep_dream` returns.

    Attributes:
      image: the dream, ``[H, W, C]`` (the input's shape), in [0, 1] when clipped.
      octaves: the dreamed image at the end of each octave, smallest first.
      shapes: the ``(h, w)`` of each octave.
      losses: per octave, ``[steps_per_octave]`` objective before each step (NaN after a
        ``max_loss`` stop).
      steps_taken: per octave, the ascent steps actually applied.
      start: per octave, the objective terms (``total`` and one per layer) at the octave's
        start image, as floats.
      end: the same at the octave's end image.
    """

    image: jax.Array
    octaves: list
    shapes: list
    losses: list
    steps_taken: list
    start: list
    end: list


def deep_dream(
    module,
    params,
    image: ArrayLike,
    *,
    layers: Sequence[str],
    layer_weights: Sequence[float] | None = None,
    objective: str = "squared",
    steps_per_octave: int = 10,
    step_size: float = 0.01,
    num_octaves: int = 4,
    octave_scale: float = 1.4,
    max_loss: float | None = None,
    jitter: int = 32,
    crop_border: float = 0.0,
    clip: bool = True,
    key: jax.Array | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> DreamResult:
    """DeepDream with octaves and detail re-injection (Mordvintsev et al. 2015).

    ``L(x) = sum_l w_l * mean(crop(a_l(x))^2)`` (``objective="squared"``) or
    ``sum_l w_l * mean(crop(a_l(x)))`` (``"mean"``), ascended with the normalised gradient
    step ``x <- clip(x + step_size * g / mean|g|)`` at each octave, smallest first; at each
    new octave ``x_k = base_k + up(x_{k-1} - base_{k-1})`` (see the module docstring).

    Args:
      module, params: the network, ``module.apply({"params": params}, images [B, H, W, C],
        outputs=layers) -> {layer: [B, ...]}`` (`get_feature_net`'s contract, or
        `ClassifierFeatures`).
      image: the start image ``[H, W, C]``, float in [0, 1].
      layers: the layers whose activations are amplified.
      layer_weights: ``w_l``, one per layer (default 1 each).
      objective: ``"squared"`` (mean square activation, the notebook's L2) or ``"mean"``.
      steps_per_octave: ascent steps per octave, ``>= 0``.
      step_size: mean absolute pixel change per step, in [0, 1] units (the notebook's 1.5
        on the 0-255 scale is 0.006).
      num_octaves: number of sizes, ``>= 1``.
      octave_scale: ratio of successive sizes (1.4 in the notebook).
      max_loss: an octave stops at the first step whose objective exceeds this.
      jitter: largest random roll of the image in pixels before each gradient (notebook: 32;
        0 disables it).
      crop_border: fraction of each side of every spatial activation map left out of the
        objective, in [0, 0.5).
      clip: clip the image to [0, 1] after each step.
      key: PRNG key of the jitter (required when ``jitter > 0``).
      callback: ``callback(octave_index, info)`` after each octave, with ``info`` the
        octave's ``shape``, ``steps_taken``, ``start`` and ``end`` objective terms.

    Returns:
      A `DreamResult`.

    Raises:
      ValueError: an image that is not float ``[H, W, C]`` in [0, 1], no layers, a weight
        count that differs from the layer count, an unknown objective, bad octave settings,
        ``crop_border`` outside [0, 0.5), negative steps or jitter, jitter without a key.
    """
    a = np.asarray(image)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"image must be a float image of shape [H, W, C] in [0, 1]; got shape {a.shape}, "
            f"dtype {a.dtype}."
        )
    if a.size and (float(a.min()) < -1e-3 or float(a.max()) > 1.0 + 1e-3):
        raise ValueError(
            f"image must have values in [0, 1]; got range [{a.min():.3g}, {a.max():.3g}]."
        )
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    if not layers:
        raise ValueError("deep_dream needs at least one layer.")
    if layer_weights is None:
        weights = (1.0,) * len(layers)
    else:
        weights = tuple(float(w) for w in layer_weights)
        if len(weights) != len(layers):
            raise ValueError(
                f"layer_weights must have one weight per layer ({len(layers)} for {layers}); "
                f"got {len(weights)}."
            )
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}.")
    if not 0.0 <= crop_border < 0.5:
        raise ValueError(f"crop_border must be a fraction in [0, 0.5); got {crop_border}.")
    if steps_per_octave < 0:
        raise ValueError(f"steps_per_octave must be >= 0; got {steps_per_octave}.")
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0 pixels; got {jitter}.")
    if jitter > 0 and steps_per_octave > 0 and key is None:
        raise ValueError("deep_dream jitters the image and needs a PRNG key: pass key=...")
    key = jax.random.PRNGKey(0) if key is None else key
    shapes = octave_shapes(a.shape[0], a.shape[1], num_octaves, octave_scale)

    obj = DreamObjective(
        module,
        layers=layers,
        layer_weights=weights,
        objective=objective,
        crop_border=float(crop_border),
    )
    original = jnp.asarray(a, jnp.float32)
    result = DreamResult(None, [], shapes, [], [], [], [])
    x = base = None
    for k, shape in enumerate(shapes):
        x, base, losses, taken, start, end = _run_octave(
            obj,
            params,
            original,
            x,
            base,
            shape=shape,
            steps=steps_per_octave,
            step_size=step_size,
            key=jax.random.fold_in(key, k),
            jitter=min(jitter, max(shape) - 1),
            max_loss=max_loss,
            clip=clip,
        )
        result.octaves.append(x)
        result.losses.append(losses)
        result.steps_taken.append(taken)
        result.start.append(start)
        result.end.append(end)
        if callback is not None:
            callback(k, {"shape": shape, "steps_taken": taken, "start": start, "end": end})
    return result._replace(image=x)


def _to_floats(terms: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(terms).items()}


@dataclasses.dataclass(frozen=True)
class ClassifierFeatures:
    """The project's 28x28 classifier behind the feature-net contract, for DeepDream.

    ``apply({"params": variables}, images [B, H, W, 1] in [0, 1], outputs=names)``
    resizes the images to ``input_size`` (bilinear, antialiased: a dream may run on an
    upsampled canvas), maps them to the classifier's [-1, 1] scale and returns the
    requested entries of::

        "hidden": [B, F] the penultimate ReLU features
        "logits": [B, K] all logits
        "logit<k>": [B, 1] the logit of class k (e.g. "logit3")

    ``variables`` are the classifier's full variables (``params`` and ``batch_stats``);
    the classifier runs in inference mode.

    Attributes:
      classifier: a `gen_jax.models.classifier.Classifier`.
      input_size: the classifier's input side (28).
    """

    classifier: Any
    input_size: int = 28

    def apply(self, variables, images, outputs=("hidden",)) -> dict[str, jax.Array]:
        variables = variables["params"]
        outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        x = jnp.asarray(images, jnp.float32)
        if x.ndim != 4 or x.shape[-1] != 1:
            raise ValueError(
                f"ClassifierFeatures expects grey images [B, H, W, 1] in [0, 1]; got shape "
                f"{tuple(x.shape)}."
            )
        s = self.input_size
        if x.shape[1:3] != (s, s):
            x = jax.image.resize(x, (x.shape[0], s, s, 1), "linear", antialias=True)
        logits, hidden = self.classifier.apply(
            variables, 2.0 * x - 1.0, train=False, return_features=True
        )
        out = {}
        for name in outputs:
            if name == "hidden":
                out[name] = hidden
            elif name == "logits":
                out[name] = logits
            elif (
                name.startswith("logit") and name[5:].isdigit() and int(name[5:]) < logits.shape[-1]
            ):
                k = int(name[5:])
                out[name] = logits[:, k : k + 1]
            else:
                raise ValueError(
                    f"ClassifierFeatures has no output {name!r}; expected 'hidden', 'logits' or "
                    f"'logit<k>' with k < {logits.shape[-1]}."
                )
        return out
