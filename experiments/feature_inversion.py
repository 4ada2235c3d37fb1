"""Feature inversion across the depth of a VGG19 (Mahendran & Vedaldi 2015, arXiv:1412.0035).

    python -m experiments.feature_inversion --workdir runs/inversion
    python -m experiments.feature_inversion --workdir runs/inv_vgg --net vgg19 --weights vgg19.h5

One photograph (skimage.data, default ``astronaut`` at 128 px) is reconstructed from its
features at each layer of the sweep (default relu1_1, relu2_1, relu3_1, relu4_1, relu5_1:
the conv1 ... conv5 figure of the paper) by `gen_jax.synthesis.inversion.invert_features`
from uniform noise with L-BFGS. Without downloadable ImageNet weights the default network
is ``random_vgg19``: random VGG19 weights rescaled layer by layer on the photograph (He,
Wang & Hopcroft 2016, arXiv:1606.04801, show that a random VGG inverts well). With
``--net vgg19 --weights FILE`` the trained network is used.

Outputs in the workdir: ``strip.png`` (original, then one reconstruction per layer),
``inversion_<layer>.png``, ``metrics.jsonl`` (one line per layer: PSNR, SSIM, loss terms,
seconds) and ``results.json`` (the per-layer table and whether PSNR falls with depth).
A rerun on the same folder skips the layers already in ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config as config_lib
from gen_jax.data.images import load_image, save_image, side_by_side
from gen_jax.metrics.image_quality import psnr, ssim
from gen_jax.models.features import get_feature_net
from gen_jax.synthesis.inversion import invert_features

NETS = ("random_vgg19", "vgg19", "vgg16")


@dataclasses.dataclass(frozen=True)
class Config:
    image: str = "astronaut"  # a skimage.data name or an image path
    size: int = 128  # longer side in pixels
    net: str = "random_vgg19"  # random_vgg19 | vgg19 | vgg16 (the last two need --weights)
    weights: str = ""
    # Average pooling: with random weights, max pooling leaves relu4_1/relu5_1 blind to
    # high-frequency noise (10.5 / 9.5 dB, coloured noise); average pooling gives
    # 31.8 / 25.5 / 21.7 / 18.8 / 13.6 dB for relu1_1..relu5_1 (astronaut, 128 px).
    pooling: str = "avg"
    layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    steps: int = 200
    chunk_steps: int = 50
    optimizer: str = "lbfgs"
    alpha_norm_weight: float = 1e-4
    alpha: float = 6.0
    tv_weight: float = 1e-3
    beta: float = 2.0
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(size=32, layers=("relu1_1", "relu3_1"), steps=4, chunk_steps=2)


def _feature_net(cfg: Config, target: np.ndarray):
    if cfg.net not in NETS:
        raise ValueError(f"--net: expected one of {NETS}, got {cfg.net!r}")
    key = jax.random.PRNGKey(cfg.seed)
    if cfg.net == "random_vgg19":
        if cfg.weights:
            raise ValueError("--weights is for --net vgg19/vgg16; random_vgg19 takes none")
        # Each layer normalised on the photograph (He et al.'s per-layer rescaling).
        return get_feature_net(
            "random_vgg19", key=key, pooling=cfg.pooling, images=jnp.asarray(target)[None]
        )
    if not cfg.weights:
        raise ValueError(f"--net {cfg.net} needs --weights FILE (.h5 Keras notop or .pth)")
    return get_feature_net(cfg.net, cfg.weights, pooling=cfg.pooling)


def _read_rows(path: str) -> dict[str, dict]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["layer"]: r for r in rows}


def run(cfg: Config, workdir: str) -> dict:
    """Inverts every layer of the sweep; returns results.json's contents."""
    if cfg.steps < 1 or cfg.size < 16:
        raise ValueError(f"--steps must be >= 1 and --size >= 16; got {cfg.steps}, {cfg.size}")
    if not cfg.layers:
        raise ValueError("--layers: expected at least one layer name")
    target = load_image(cfg.image, max_side=cfg.size)
    module, params = _feature_net(cfg, target)
    config_lib.prepare_workdir(workdir, cfg)
    save_image(os.path.join(workdir, "original.png"), target)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    done = _read_rows(metrics_path)
    key = jax.random.PRNGKey(cfg.seed + 1)
    images = {}
    for layer in cfg.layers:
        png = os.path.join(workdir, f"inversion_{layer}.png")
        if layer in done and os.path.exists(png):
            images[layer] = load_image(png)
            print(f"{layer}: done in an earlier run, skipped", flush=True)
            continue
        t0 = time.perf_counter()

        def progress(i, loss, layer=layer, t0=t0):
            dt = time.perf_counter() - t0
            print(f"{layer}: iteration {i}/{cfg.steps}  loss {loss:.4g}  {dt:.0f}s", flush=True)

        r = invert_features(
            module,
            params,
            target,
            layer=layer,
            alpha_norm_weight=cfg.alpha_norm_weight,
            alpha=cfg.alpha,
            tv_weight=cfg.tv_weight,
            beta=cfg.beta,
            optimizer=cfg.optimizer,
            steps=cfg.steps,
            key=key,
            chunk_steps=cfg.chunk_steps,
            callback=progress,
        )
        image = np.asarray(r.image)
        row = {
            "layer": layer,
            "psnr": float(psnr(image[None], target[None], data_range=1.0)[0]),
            "ssim": float(ssim(image[None], target[None], data_range=1.0)[0]),
            "start": r.start,
            "end": r.end,
            "evaluations": int(np.sum(r.evaluations)),
            "seconds": time.perf_counter() - t0,
        }
        save_image(png, image)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        done[layer] = row
        images[layer] = image
        print(f"{layer}: PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.3f}", flush=True)

    save_image(
        os.path.join(workdir, "strip.png"),
        side_by_side([target, *(images[layer] for layer in cfg.layers)]),
    )
    table = [done[layer] for layer in cfg.layers]
    psnrs = [row["psnr"] for row in table]
    results = {
        "image": cfg.image,
        "shape": list(target.shape),
        "net": cfg.net,
        "layers": list(cfg.layers),
        "psnr": psnrs,
        "ssim": [row["ssim"] for row in table],
        "feature_loss_start": [row["start"]["feature"] for row in table],
        "feature_loss_end": [row["end"]["feature"] for row in table],
        "seconds": [row["seconds"] for row in table],
        # The check: does reconstruction quality fall with depth?
        "psnr_falls_with_depth": all(a > b for a, b in itertools.pairwise(psnrs)),
        "device": f"{jax.default_backend()}:{jax.devices()[0].device_kind}",
    }
    config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    print(f"{'layer':10s} {'PSNR':>8s} {'SSIM':>7s}")
    for layer, p, s in zip(results["layers"], results["psnr"], results["ssim"]):
        print(f"{layer:10s} {p:8.2f} {s:7.3f}")
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
