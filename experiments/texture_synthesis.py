"""Texture synthesis (Gatys, Ecker & Bethge 2015, arXiv:1505.07376) with no trained network.

    python -m experiments.texture_synthesis --workdir runs/texture                 # brick
    python -m experiments.texture_synthesis --workdir runs/textures --source all   # 3 textures
    python -m experiments.texture_synthesis --workdir runs/t --net random_vgg19 --size 128

Sources: skimage's brick, grass and gravel textures (grey, offline), `all` of them, or any
image `load_image` reads. The default network is the random multi-scale single layer of
Ustyuzhaninov et al. (ICLR 2017, arXiv:1606.00021), matching the Gram matrix of its
`relu`; `--net random_vgg19` uses a random, layer-normalised VGG19 (He et al. 2016) with
Gatys' texture layers, `--net vgg19 --weights FILE` the trained one.

From uniform noise, L-BFGS on the pixels runs compiled in chunks with a progress bar. The
source (256 px) is larger than the result (128 px) at the same pixel scale, so that a crop
of the source at the result's size is a meaningful reference. Per source (a subfolder when
--source all): source.png, result.png, comparison.png (both at their own size),
spectrum.png, curves.png, metrics.jsonl, result.npy, and results.json with the texture
(style) loss ratio start/end and `gen_jax.metrics.texture.texture_report`: the
pixel-histogram (W1) and log-power-spectrum distances of the result to the source, beside
the shuffled-pixel baseline (same pixels, no structure) and a crop of the source (a perfect
copy). --source all also writes textures.png (every source beside its result) and
spectra.png (every spectrum plot) in the work folder.

Rerunning with the same config returns the saved results; a larger --steps continues from
result.npy; a different config is refused.
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
from gen_jax.metrics.texture import texture_report, texture_spectra
from gen_jax.models.features import default_layers
from gen_jax.synthesis import feature_net, texture_synthesis
from gen_jax.train import check_synthesis_resumable, run_synthesis

TEXTURES = ("brick", "grass", "gravel")
# The references texture_report scores beside the result, as printed: (label, key prefix).
_REFERENCES = (("shuffled", "shuffled"), ("source crop", "crop"))


@dataclasses.dataclass(frozen=True)
class Config:
    source: str = "brick"  # brick | grass | gravel | all | any image path or name
    net: str = "multiscale"  # multiscale | random_vgg19 | vgg19 | vgg16 (+ --weights)
    weights: str = ""
    pooling: str = "avg"  # the VGGs' pooling
    ms_scales: tuple[int, ...] = (3, 5, 7, 11, 15, 23, 37, 55)  # multiscale filter sizes
    ms_features: int = 128  # multiscale maps per filter size
    layers: tuple[str, ...] = ()  # () -> the net's texture layers (multiscale: relu)
    layer_weights: tuple[str, ...] = ()  # () -> equal weights summing to 1
    source_size: int = 256  # longer side of the source texture
    size: int = 128  # side of the square result
    tv_weight: float = 0.0
    optimizer: str = "lbfgs"
    learning_rate: float = 0.0
    parametrization: str = "pixels"
    steps: int = 300
    chunk_steps: int = 25
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(
        ms_scales=(3, 5),
        ms_features=8,
        source_size=32,
        size=16,
        steps=4,
        chunk_steps=2,
    )


def _synthesize_one(cfg: Config, source_name: str, workdir: str) -> dict:
    source = load_image(source_name, cfg.source_size)
    layers = cfg.layers or default_layers(cfg.net, "texture")
    weights = layer_weights(cfg.layer_weights, layers, "layer_weights")
    net_options = (
        {"scales": cfg.ms_scales, "features_per_scale": cfg.ms_features}
        if cfg.net == "multiscale"
        else {}
    )
    module, params = feature_net(
        cfg.net, cfg.weights, images=[source], seed=cfg.seed, pooling=cfg.pooling, **net_options
    )

    def synthesize(init, steps, callback):
        return texture_synthesis(
            module,
            params,
            source,
            layers=layers,
            layer_weights=weights,
            size=cfg.size,
            steps=steps,
            key=jax.random.PRNGKey(cfg.seed),
            init=init,
            tv_weight=cfg.tv_weight,
            callback=callback,
            optimizer=cfg.optimizer,
            learning_rate=cfg.learning_rate or None,
            parametrization=cfg.parametrization,
            chunk_steps=cfg.chunk_steps,
        )

    outcome = run_synthesis(cfg, workdir, synthesize, desc=f"texture {source_name}")
    if outcome.complete:
        print(f"{workdir}: complete at {outcome.saved['steps']} steps; nothing to do")
        return outcome.saved
    result, saved, start = outcome.result, outcome.saved, outcome.start
    image = np.asarray(result.image)
    np.save(os.path.join(workdir, "result.npy"), image)
    save_image(os.path.join(workdir, "source.png"), source)
    save_image(os.path.join(workdir, "result.png"), image)
    save_image(
        os.path.join(workdir, "comparison.png"), side_by_side([source, image], keep_size=True)
    )
    viz.save_spectra(
        [(source_name, texture_spectra(image, source, seed=cfg.seed))],
        os.path.join(workdir, "spectrum.png"),
    )
    viz.save_curves(
        viz.read_metrics(os.path.join(workdir, "metrics.jsonl")),
        os.path.join(workdir, "curves.png"),
    )
    first = saved["start"] if saved else result.start
    iterations = cfg.steps - start
    return {
        "source": source_name,
        "steps": cfg.steps,
        "steps_this_session": iterations,
        "net": cfg.net,
        "layers": list(layers),
        "source_shape": list(source.shape),
        "result_shape": list(image.shape),
        "start": first,
        "end": result.end,
        "style_loss_start": first["style"],
        "style_loss_end": result.end["style"],
        "style_loss_ratio": first["style"] / max(result.end["style"], 1e-30),
        **texture_report(image, source, seed=cfg.seed),
        "loss_evaluations": int(np.sum(result.evaluations)),
        "seconds": outcome.seconds,
        "iterations_per_s": iterations / outcome.seconds,  # compilation included
        "iterations_per_s_after_compile": outcome.rate,
    }


def run(cfg: Config, workdir: str) -> dict:
    """Synthesises one texture (or each of `TEXTURES`); returns results.json's contents."""
    if cfg.source == "all":
        # Check every source, and every saved run's length, before anything is written.
        for name in TEXTURES:
            load_image(name, 8)
            check_synthesis_resumable(os.path.join(workdir, name), cfg.steps)
        config_lib.prepare_workdir(workdir, cfg)
        per_source = {}
        for name in TEXTURES:
            sub = os.path.join(workdir, name)
            per_source[name] = _synthesize_one(cfg, name, sub)
            config_lib.write_json_atomic(os.path.join(sub, "results.json"), per_source[name])
        keys = ("style_loss_ratio", "histogram_w1", "spectrum_rms_log10")
        results = {
            "steps": cfg.steps,
            "steps_this_session": sum(r["steps_this_session"] for r in per_source.values()),
            "sources": per_source,
            **{f"mean_{k}": float(np.mean([r[k] for r in per_source.values()])) for k in keys},
        }
        config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
        _save_overview(cfg, workdir)
        return results
    results = _synthesize_one(cfg, cfg.source, workdir)
    config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def _save_overview(cfg: Config, workdir: str) -> None:
    """textures.png (every source followed by its result, each at its own size, in one row)
    and spectra.png (a panel per source) from the saved results."""
    images, panels = [], []
    for name in TEXTURES:
        source = load_image(name, cfg.source_size)
        image = np.load(os.path.join(workdir, name, "result.npy"))
        images += [source, image]
        panels.append((name, texture_spectra(image, source, seed=cfg.seed)))
    save_image(os.path.join(workdir, "textures.png"), side_by_side(images, keep_size=True))
    viz.save_spectra(panels, os.path.join(workdir, "spectra.png"))


def _summary(r: dict) -> str:
    def references(key: str, digits: int) -> str:
        found = [(label, r.get(f"{prefix}_{key}")) for label, prefix in _REFERENCES]
        return ", ".join(f"{label} {v:.{digits}f}" for label, v in found if v is not None)

    return (
        f"{r['source']}: texture loss {r['style_loss_ratio']:.1f}x lower; histogram W1 "
        f"{r['histogram_w1']:.4f} ({references('histogram_w1', 4)}); spectrum "
        f"{r['spectrum_rms_log10']:.3f} decades ({references('spectrum_rms_log10', 3)})"
    )


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    for r in results.get("sources", {"": results}).values():
        print(_summary(r))
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
