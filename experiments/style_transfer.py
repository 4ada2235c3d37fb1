"""Neural style transfer (Gatys, Ecker & Bethge 2015, arXiv:1508.06576) by L-BFGS on pixels.

    python -m experiments.style_transfer --workdir runs/style
    python -m experiments.style_transfer --workdir runs/style --content astronaut --style PATH
    python -m experiments.style_transfer --workdir runs/style_vgg --net vgg19 \
        --weights vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5

The content image defaults to skimage's `chelsea`, the style to van Gogh's Starry Night
(Debian's opencv-doc; `bash scripts/fetch_opencv_data.sh` fetches it, or pass --style
PATH). No pretrained weights can be downloaded here, so the default network is VGG19 with
random, layer-normalised weights (He, Wang & Hopcroft 2016, arXiv:1606.04801), normalised
on the content and style images themselves; `--net vgg19 --weights FILE` uses trained ones.

The whole optimisation runs compiled (`gen_jax.synthesis.optimize_image`), in chunks of
`chunk_steps` iterations with a progress line between them. Outputs in the workdir:
content.png, style.png, result.png, comparison.png (the three side by side), curves.png,
metrics.jsonl (one line per chunk), result.npy, and results.json with the style loss at the
start and at the end and their ratio (the check of issue #4: it falls >= 100x).

Rerunning on the same folder with the same config returns the saved results and touches
nothing; with a larger --steps it continues from result.npy for the remaining iterations
(L-BFGS restarts its curvature memory); a different config is refused.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import jax
import numpy as np

from gen_jax import config as config_lib
from gen_jax import viz
from gen_jax.config import layer_weights
from gen_jax.data.images import load_image, save_image, side_by_side
from gen_jax.models.features import default_layers
from gen_jax.synthesis import feature_net, style_transfer
from gen_jax.train import run_synthesis


@dataclasses.dataclass(frozen=True)
class Config:
    content: str = "chelsea"  # a path, a skimage.data name, or "starry_night"/"opencv:FILE"
    style: str = "starry_night"
    net: str = "random_vgg19"  # random_vgg19 | vgg19 | vgg16 (the last two need --weights)
    weights: str = ""
    pooling: str = "avg"  # Gatys et al. prefer average pooling for synthesis
    size: int = 128  # longer side of the content image (and of the result)
    style_size: int = 128  # longer side of the style image
    content_layers: tuple[str, ...] = ()  # () -> Gatys' (relu4_2,)
    style_layers: tuple[str, ...] = ()  # () -> Gatys' relu1_1 ... relu5_1
    style_layer_weights: tuple[str, ...] = ()  # () -> equal weights summing to 1
    alpha: float = 1.0
    # beta/alpha = 1e7 with a little TV: at 128 px the style loss falls 445x in 300 steps
    # (1e5: 13x, the content term wins; tv 0: 368x, noisier). The random net's activations are
    # normalised to mean 1, so Gatys' ratios for trained VGG (1e3-1e4) do not carry over.
    beta: float = 1e7
    tv_weight: float = 10.0
    init: str = "content"  # content | noise
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float = 0.0  # 0 -> the optimizer's default (Adam: 0.02)
    parametrization: str = "pixels"  # pixels (final clip) | sigmoid
    preserve_color: str = "none"  # none | luminance | histogram
    steps: int = 300
    chunk_steps: int = 25
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    # Two shallow layers (the net stops at relu2_1) and a skimage style: seconds, no files.
    return Config(
        style="coffee",
        size=24,
        style_size=20,
        content_layers=("relu2_1",),
        style_layers=("relu1_1", "relu2_1"),
        steps=4,
        chunk_steps=2,
    )


def run(cfg: Config, workdir: str) -> dict:
    """Runs (or continues) one style transfer; returns results.json's contents."""
    # Inputs first: a missing image or a bad option fails before the folder is touched.
    content = load_image(cfg.content, cfg.size)
    style = load_image(cfg.style, cfg.style_size)
    content_layers = cfg.content_layers or default_layers(cfg.net, "content")
    style_layers = cfg.style_layers or default_layers(cfg.net, "style")
    weights = layer_weights(cfg.style_layer_weights, style_layers, "style_layer_weights")
    module, params = feature_net(
        cfg.net, cfg.weights, images=[content, style], seed=cfg.seed, pooling=cfg.pooling
    )

    def synthesize(init, steps, callback):
        return style_transfer(
            module,
            params,
            content,
            style,
            content_layers=content_layers,
            style_layers=style_layers,
            style_layer_weights=weights,
            alpha=cfg.alpha,
            beta=cfg.beta,
            tv_weight=cfg.tv_weight,
            init=cfg.init if init is None else init,  # a continued run starts from its image
            key=jax.random.PRNGKey(cfg.seed),
            steps=steps,
            preserve_color=cfg.preserve_color,
            callback=callback,
            optimizer=cfg.optimizer,
            learning_rate=cfg.learning_rate or None,
            parametrization=cfg.parametrization,
            chunk_steps=cfg.chunk_steps,
        )

    outcome = run_synthesis(cfg, workdir, synthesize, desc="style transfer")
    if outcome.complete:
        print(f"{workdir}: complete at {outcome.saved['steps']} steps; nothing to do")
        return outcome.saved
    result, saved, start = outcome.result, outcome.saved, outcome.start
    image = np.asarray(result.image)
    np.save(os.path.join(workdir, "result.npy"), image)
    save_image(os.path.join(workdir, "content.png"), content)
    save_image(os.path.join(workdir, "style.png"), style)
    save_image(os.path.join(workdir, "result.png"), image)
    save_image(os.path.join(workdir, "comparison.png"), side_by_side([content, style, image]))
    viz.save_curves(
        viz.read_metrics(os.path.join(workdir, "metrics.jsonl")),
        os.path.join(workdir, "curves.png"),
    )
    first = saved["start"] if saved else result.start
    iterations = cfg.steps - start
    results = {
        "steps": cfg.steps,
        "steps_this_session": iterations,
        "net": cfg.net,
        "content_shape": list(content.shape),
        "style_shape": list(style.shape),
        "start": first,
        "end": result.end,
        "style_loss_start": first["style"],
        "style_loss_end": result.end["style"],
        "style_loss_ratio": first["style"] / max(result.end["style"], 1e-30),
        "loss_evaluations": int(np.sum(result.evaluations)),
        "seconds": outcome.seconds,
        "iterations_per_s": iterations / outcome.seconds,  # compilation included
        "iterations_per_s_after_compile": outcome.rate,
    }
    config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    print(
        f"style loss {results['style_loss_start']:.4g} -> {results['style_loss_end']:.4g} "
        f"({results['style_loss_ratio']:.1f}x lower) in {results['steps']} steps; "
        f"{os.path.join(workdir, 'comparison.png')}"
    )
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
