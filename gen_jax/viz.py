"""Pictures of runs: image grids, training curves and 2-D sample scatters, saved as PNG."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tiles images [N, H, W, C] with values in [-1, 1] into one uint8 array [h, w, C]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N, H, W, 1 or 3], got shape {images.shape}")
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = pixels[i]
    return grid


def save_image_grid(images: np.ndarray, path: str, nrow: int | None = None, scale: int = 1) -> None:
    """Saves images [N, H, W, C] in [-1, 1] as one PNG grid, optionally upscaled."""
    grid = image_grid(images, nrow)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)


def read_metrics(path: str) -> list[dict]:
    """Reads a metrics.jsonl file into a list of dicts (empty if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def save_curves(rows: Sequence[dict], path: str, keys: Iterable[str] | None = None) -> None:
    """Plots metrics against step, one panel per namespace ('d/', 'g/'), to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    keys = sorted(keys or {k for r in rows for k in r if "/" in k})
    groups = sorted({k.split("/")[0] for k in keys})
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False)
    steps = np.array([r["step"] for r in rows])
    for ax, group in zip(axes[0], groups):
        for k in keys:
            if k.startswith(group + "/"):
                ax.plot(steps, [r.get(k, np.nan) for r in rows], label=k, lw=1)
        ax.set_xlabel("step")
        ax.set_title(group)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_scatter(samples: np.ndarray, means: np.ndarray, path: str, title: str = "") -> None:
    """Scatters 2-D samples [N, 2] over the true mode centres [K, 2]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, means = np.asarray(samples), np.asarray(means)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, label="generated")
    ax.scatter(means[:, 0], means[:, 1], s=30, c="red", marker="x", label="modes")
    lim = 1.5 * np.abs(means).max() + 0.5
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_spectra(panels: Sequence[tuple[str, dict]], path: str) -> None:
    """Plots radially averaged log power spectra, one panel per ``(title, spectra)``.

    ``spectra`` is `gen_jax.metrics.texture.texture_spectra`'s dict: ``"frequency"`` (cycles
    per pixel) and one log10 power curve per other key (source, result, shuffled, crop).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("save_spectra needs at least one (title, spectra) panel")
    styles = {"source": ("k", "-"), "result": ("C0", "-"), "crop": ("C2", ":")}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, spectra) in zip(axes[0], panels):
        frequency = np.asarray(spectra["frequency"])
        for name, curve in spectra.items():
            if name == "frequency":
                continue
            color, line = styles.get(name, ("C3", "--"))
            ax.plot(frequency, curve, color=color, ls=line, lw=1.2, label=name)
        ax.set_xlabel("radial frequency (cycles / pixel)")
        ax.set_ylabel("log10 power")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
