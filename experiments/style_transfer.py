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
import json
import os
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax import config as config_lib
from gen_jax import viz
from gen_jax.data.images import load_image, resize, save_image, side_by_side
from gen_jax.models.features import default_layers, get_feature_net
from gen_jax.synthesis.style import style_transfer


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


# ------------------------------------------------------------------------------------------
# Shared with experiments/texture_synthesis.py.
# ------------------------------------------------------------------------------------------


def layer_weights(weights: tuple, layers: tuple[str, ...], option: str) -> tuple[float, ...] | None:
    """Parses a weights option (text from the command line) into floats, or None (equal)."""
    if not weights:
        return None
    try:
        values = tuple(float(w) for w in weights)
    except ValueError as e:
        raise ValueError(f"--{option} must be numbers, e.g. 0.5,0.5; got {weights!r}") from e
    if len(values) != len(layers):
        raise ValueError(f"--{option} needs {len(layers)} values for {layers}; got {len(values)}")
    return values


def feature_net(cfg, images: list[np.ndarray]):
    """(module, params) for `cfg.net`; a random VGG is normalised on `images`."""
    if cfg.net in ("vgg16", "vgg19") and not cfg.weights:
        raise ValueError(
            f"--net {cfg.net} needs --weights PATH (Keras notop .h5 or torchvision .pth); without "
            "trained weights use --net random_vgg19 (the default)"
        )
    key = jax.random.PRNGKey(cfg.seed)
    kw = {}
    if cfg.net == "random_vgg19":
        h, w = images[0].shape[:2]
        kw["images"] = jnp.stack([resize(im, h, w) for im in images])
    if cfg.net == "multiscale" and hasattr(cfg, "ms_scales"):
        kw.update(scales=cfg.ms_scales, features_per_scale=cfg.ms_features)
    module, params = get_feature_net(
        cfg.net, cfg.weights or None, key=key, pooling=cfg.pooling, **kw
    )
    return module, params


def resolve_layers(cfg_layers: tuple[str, ...], net: str, task: str) -> tuple[str, ...]:
    return tuple(cfg_layers) or default_layers(net, task)


def previous_run(workdir: str, steps: int) -> dict | None:
    """The saved results of a finished run in `workdir` (None if there is none).

    Raises:
      ValueError: the saved run has more iterations than `steps` (nothing is changed).
    """
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    if saved["steps"] > steps:
        raise ValueError(
            f"{workdir} already holds a run of {saved['steps']} steps; pass --steps "
            f">= {saved['steps']} to continue it, or use another --workdir"
        )
    return saved


class Progress:
    """A tqdm bar over iterations, updated between compiled chunks, and metrics.jsonl lines."""

    def __init__(self, workdir: str, start: int, total: int, desc: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.bar = tqdm(total=total, initial=start, desc=desc, unit="it", dynamic_ncols=True)
        self.start, self.done, self.t0 = start, start, time.perf_counter()
        self.rows: list[dict] = []

    def __call__(self, done_this_session: int, loss: float) -> None:
        step = self.start + done_this_session
        self.bar.update(step - self.done)
        self.bar.set_postfix(loss=f"{loss:.4g}")
        self.done = step
        row = {"step": step, "loss/total": loss, "time": time.perf_counter() - self.t0}
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> float:
        self.bar.close()
        return time.perf_counter() - self.t0

    def steady_rate(self) -> float | None:
        """Iterations per second after the first chunk (which includes the compilation)."""
        if len(self.rows) < 2:
            return None
        a, b = self.rows[0], self.rows[-1]
        return (b["step"] - a["step"]) / max(b["time"] - a["time"], 1e-9)


def truncate_metrics(workdir: str, last_step: int) -> None:
    """Keeps only metrics lines up to `last_step` (a run killed mid-way logged more)."""
    path = os.path.join(workdir, "metrics.jsonl")
    rows = [r for r in viz.read_metrics(path) if r["step"] <= last_step]
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def optimizer_kwargs(cfg) -> dict:
    return {
        "optimizer": cfg.optimizer,
        "learning_rate": cfg.learning_rate or None,
        "parametrization": cfg.parametrization,
        "chunk_steps": cfg.chunk_steps,
    }


def run_resumable(
    cfg, workdir: str, desc: str, synthesize: Callable[[np.ndarray | None, int, Progress], object]
) -> tuple[object | None, dict | None, int]:
    """Shared resume logic: returns (result or None when complete, saved results, start step)."""
    saved = previous_run(workdir, cfg.steps)
    config_lib.prepare_workdir(workdir, cfg)
    start = 0
    init = None
    result_npy = os.path.join(workdir, "result.npy")
    if saved is not None and os.path.exists(result_npy):
        if saved["steps"] == cfg.steps:
            return None, saved, cfg.steps
        start, init = saved["steps"], np.load(result_npy)
    else:
        saved = None
    truncate_metrics(workdir, start)
    progress = Progress(workdir, start, cfg.steps, desc)
    result = synthesize(init, cfg.steps - start, progress)
    seconds = progress.close()
    return (result, seconds, progress.steady_rate()), saved, start


# ------------------------------------------------------------------------------------------


def run(cfg: Config, workdir: str) -> dict:
    """Runs (or continues) one style transfer; returns results.json's contents."""
    # Inputs first: a missing image or a bad option fails before the folder is touched.
    content = load_image(cfg.content, cfg.size)
    style = load_image(cfg.style, cfg.style_size)
    content_layers = resolve_layers(cfg.content_layers, cfg.net, "content")
    style_layers = resolve_layers(cfg.style_layers, cfg.net, "style")
    weights = layer_weights(cfg.style_layer_weights, style_layers, "style_layer_weights")
    module, params = feature_net(cfg, [content, style])

    def synthesize(init, steps, progress):
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
            callback=progress,
            **optimizer_kwargs(cfg),
        )

    out, saved, start = run_resumable(cfg, workdir, "style transfer", synthesize)
    if out is None:
        print(f"{workdir}: complete at {saved['steps']} steps; nothing to do")
        return saved
    result, seconds, rate = out
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
        "seconds": seconds,
        "iterations_per_s": iterations / seconds,  # compilation included
        "iterations_per_s_after_compile": rate,
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
    main(sys.argv[1:])
