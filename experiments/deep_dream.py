"""DeepDream on a photograph or a Fashion-MNIST garment (Mordvintsev, Olah & Tyka 2015).

    python -m experiments.deep_dream --workdir runs/dream
    python -m experiments.deep_dream --workdir runs/dream_vgg --net vgg19 --weights vgg19.h5
    python -m experiments.deep_dream --workdir runs/dream_fm --net classifier --layers logit8

`gen_jax.synthesis.deep_dream.deep_dream`: normalised gradient ascent on the mean square
activation of some layers, with jitter, border cropping, octaves (scale 1.4, smallest
first) and detail re-injection, each octave one compiled `lax.while_loop`.

Networks (``--net``):

* ``random_vgg19`` (default): VGG19 with random weights rescaled layer by layer on the
  photograph (no ImageNet weights can be downloaded here). It has learned nothing, so the
  dream amplifies random oriented edges and colour contrasts into texture-like patterns,
  not the dog faces and pagodas of the blog post; with ``--net vgg19 --weights FILE``
  (Keras notop .h5 or torchvision .pth) the trained network dreams the real thing.
* ``classifier``: the project's Fashion-MNIST classifier (gen_jax/assets/classifiers, or
  ``--weights`` a .npz of `save_classifier_weights`) dreaming a grey test garment
  (``--index``) upsampled to ``--size`` (the network sees it downsampled to 28x28);
  layers ``hidden`` (the 128 penultimate features), ``logits`` or ``logit<k>`` (one class,
  dreamed with the "mean" objective, i.e. the logit itself).

Outputs: ``dream.png`` (original | dream), ``octaves.png`` (the dream at the end of each
octave), ``results.json`` (octave sizes, the objective before and after each octave, the
steps taken under ``max_loss``, seconds; for the classifier the class probabilities before
and after).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config as config_lib
from gen_jax.data.images import load_image, resize, save_image, side_by_side
from gen_jax.models.features import get_feature_net
from gen_jax.synthesis.deep_dream import ClassifierFeatures, deep_dream

NETS = ("random_vgg19", "vgg19", "vgg16", "classifier")
_DEFAULT_LAYERS = {"classifier": ("hidden",)}
_VGG_DEFAULT_LAYERS = ("relu3_1", "relu4_1")


@dataclasses.dataclass(frozen=True)
class Config:
    net: str = "random_vgg19"  # random_vgg19 | vgg19 | vgg16 (need --weights) | classifier
    weights: str = ""  # VGG weights file, or a classifier .npz (default: the shipped one)
    image: str = "astronaut"  # skimage.data name or path (VGG nets)
    index: int = 0  # Fashion-MNIST test image (classifier)
    size: int = 160  # longer side of the canvas in pixels
    layers: tuple[str, ...] = ()  # empty: relu3_1,relu4_1 (VGG) or hidden (classifier)
    layer_weights: tuple[float, ...] = ()  # empty: 1 per layer
    objective: str = ""  # squared | mean; empty: mean for logit layers, else squared
    steps_per_octave: int = 10
    step_size: float = 0.01
    num_octaves: int = 4
    octave_scale: float = 1.4
    max_loss: float = 0.0  # <= 0: no limit
    jitter: int = 16
    crop_border: float = 0.1
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(size=32, layers=("relu2_1",), steps_per_octave=2, num_octaves=2, jitter=2)


def _setup(cfg: Config):
    """(module, params, start image [H, W, C], layers, objective, classes or None)."""
    if cfg.net not in NETS:
        raise ValueError(f"--net: expected one of {NETS}, got {cfg.net!r}")
    layers = cfg.layers or _DEFAULT_LAYERS.get(cfg.net, _VGG_DEFAULT_LAYERS)
    objective = cfg.objective or (
        "mean"
        if all(name.startswith("logit") and name != "logits" for name in layers)
        else "squared"
    )
    key = jax.random.PRNGKey(cfg.seed)
    if cfg.net == "classifier":
        from gen_jax.data import FASHION_MNIST_CLASSES, load_fashion_mnist
        from gen_jax.models.classifier import load_classifier_weights, load_pretrained_classifier

        if cfg.weights:
            classifier, variables, _ = load_classifier_weights(cfg.weights)
        else:
            classifier, variables = load_pretrained_classifier("fashion_mnist")
        images, _ = load_fashion_mnist("test")
        if not 0 <= cfg.index < len(images):
            raise ValueError(f"--index: expected 0 <= index < {len(images)}, got {cfg.index}")
        grey = images[cfg.index].astype(np.float32)[..., None] / 255.0
        image = resize(grey, cfg.size, cfg.size)
        return (
            ClassifierFeatures(classifier),
            variables,
            image,
            layers,
            objective,
            (FASHION_MNIST_CLASSES),
        )
    image = load_image(cfg.image, max_side=cfg.size)
    if cfg.net == "random_vgg19":
        if cfg.weights:
            raise ValueError(
                "--weights is for --net vgg19/vgg16/classifier; random_vgg19 takes none"
            )
        module, params = get_feature_net("random_vgg19", key=key, images=jnp.asarray(image)[None])
    else:
        if not cfg.weights:
            raise ValueError(f"--net {cfg.net} needs --weights FILE (.h5 Keras notop or .pth)")
        module, params = get_feature_net(cfg.net, cfg.weights)
    return module, params, image, layers, objective, None


def _class_probabilities(module, params, image, classes) -> dict[str, float]:
    logits = module.apply({"params": params}, jnp.asarray(image)[None], outputs=("logits",))
    p = np.asarray(jax.nn.softmax(logits["logits"][0]))
    return {name: float(v) for name, v in zip(classes, p)}


def run(cfg: Config, workdir: str) -> dict:
    """Dreams once; returns results.json's contents."""
    if cfg.size < 16:
        raise ValueError(f"--size: expected >= 16 pixels, got {cfg.size}")
    module, params, image, layers, objective, classes = _setup(cfg)
    config_lib.prepare_workdir(workdir, cfg)
    t0 = time.perf_counter()

    def progress(k, info):
        s, e = info["start"]["total"], info["end"]["total"]
        h, w = info["shape"]
        print(
            f"octave {k + 1}/{cfg.num_octaves} {h}x{w}: objective {s:.4g} -> {e:.4g} "
            f"({info['steps_taken']} steps, {time.perf_counter() - t0:.0f}s)",
            flush=True,
        )

    r = deep_dream(
        module,
        params,
        image,
        layers=layers,
        layer_weights=tuple(float(w) for w in cfg.layer_weights) or None,
        objective=objective,
        steps_per_octave=cfg.steps_per_octave,
        step_size=cfg.step_size,
        num_octaves=cfg.num_octaves,
        octave_scale=cfg.octave_scale,
        max_loss=cfg.max_loss if cfg.max_loss > 0 else None,
        jitter=cfg.jitter,
        crop_border=cfg.crop_border,
        key=jax.random.PRNGKey(cfg.seed + 1),
        callback=progress,
    )
    seconds = time.perf_counter() - t0
    dream = np.asarray(r.image)
    save_image(os.path.join(workdir, "dream.png"), side_by_side([image, dream]))
    save_image(os.path.join(workdir, "original.png"), image)
    save_image(os.path.join(workdir, "dream_only.png"), dream)
    save_image(
        os.path.join(workdir, "octaves.png"),
        side_by_side([np.asarray(o) for o in r.octaves], height=dream.shape[0]),
    )
    results = {
        "net": cfg.net,
        "image": cfg.image if classes is None else f"fashion_mnist test[{cfg.index}]",
        "layers": list(layers),
        "objective": objective,
        "octave_shapes": [list(s) for s in r.shapes],
        "objective_start": [s["total"] for s in r.start],
        "objective_end": [e["total"] for e in r.end],
        "per_layer_start": r.start,
        "per_layer_end": r.end,
        "steps_taken": r.steps_taken,
        "mean_abs_change": float(np.mean(np.abs(dream - image))),
        "seconds": seconds,
        "device": f"{jax.default_backend()}:{jax.devices()[0].device_kind}",
    }
    if classes is not None:
        results["probabilities_before"] = _class_probabilities(module, params, image, classes)
        results["probabilities_after"] = _class_probabilities(module, params, dream, classes)
    config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    print(f"dream written to {os.path.join(workdir, 'dream.png')} ({results['seconds']:.0f}s)")
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
