"""Texture quality without a pretrained network: pixel histograms and power spectra.

A synthesised texture should have the source's colour distribution *and* its spatial
structure. Two distances measure each separately, and two references put them in scale:

* `histogram_distance`: Wasserstein-1 between the per-channel pixel-value distributions
  (the mean absolute difference of their quantile functions; pixel units, [0, 1]),
  averaged over channels.
* `spectrum_distance`: the root-mean-square difference of the radially averaged log10
  power spectra, per channel (Hann-windowed, mean removed, normalised per pixel so that
  images of different sizes compare), averaged over channels; in decades of power.
* The **shuffled-pixel baseline** (`shuffled_pixels`): the source's pixels in random
  order. It keeps the histogram (distance ~0) and destroys the spectrum (white noise);
  a synthesis that has learned structure should beat it on the spectrum by a wide margin.
* The **source-crop reference**: a random crop of the source at the result's size, i.e.
  what a perfect copy of the texture scores; the floor of both distances at that size.
  It needs a source larger than the result (a crop of the source's own size is the source,
  and scores 0 by construction).

Everything here is numpy/scipy on the host; images are float RGB ``[H, W, C]`` in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

__all__ = [
    "histogram_distance",
    "radial_log_spectrum",
    "shuffled_pixels",
    "spectrum_distance",
    "texture_report",
    "texture_spectra",
]

_MAX_BINS = 32
_TINY = 1e-12  # floor of the power before the log (a flat image has none)


def _as_image(x, name: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"{name} must be an image [H, W] or [H, W, C]; got shape {a.shape}")
    return a


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_image(a, "image"), _as_image(b, "reference")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"image and reference must have the same channels; got {x.shape} and {y.shape}"
        )
    return x, y


def histogram_distance(image, reference, per_channel: bool = False):
    """Wasserstein-1 distance between the per-channel pixel distributions of two images.

    ``W1_c = integral_0^1 |Q_image,c(t) - Q_reference,c(t)| dt`` with ``Q`` the quantile
    function of channel ``c``'s pixel values; sizes may differ.

    Args:
      image: ``[H, W, C]`` (or ``[H, W]``).
      reference: ``[H', W', C]``.
      per_channel: return the ``[C]`` distances instead of their mean.

    Returns:
      The mean over channels (a float), or ``[C]``.
    """
    x, y = _pair(image, reference)
    c = x.shape[-1]
    d = np.array(
        [wasserstein_distance(x[..., i].ravel(), y[..., i].ravel()) for i in range(c)], np.float64
    )
    return d if per_channel else float(d.mean())


def radial_log_spectrum(image, num_bins: int = _MAX_BINS) -> np.ndarray:
    """Radially averaged log10 power spectrum of each channel.

    Per channel: remove the mean, multiply by a 2-D Hann window (so that the image's
    borders do not add a cross of spurious power), ``P = |FFT|^2 / sum(window^2)``, then
    average ``P`` over rings of radial frequency ``|f|`` in ``num_bins`` equal bins of
    (0, 0.5] cycles per pixel (the DC term and the corners beyond Nyquist are left out).

    Args:
      image: ``[H, W, C]`` (or ``[H, W]``), ``H, W >= 4``.
      num_bins: number of radial bins.

    Returns:
      ``[C, num_bins]`` log10 power; NaN in bins that no frequency of this size falls in.
    """
    x = _as_image(image, "image")
    h, w, c = x.shape
    if h < 4 or w < 4:
        raise ValueError(f"image must be at least 4x4 for a spectrum; got {x.shape}")
    window = np.outer(np.hanning(h), np.hanning(w))
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fy, fx)
    edges = np.linspace(0.0, 0.5, num_bins + 1)
    bins = np.digitize(radius, edges[1:-1], right=True)  # ring k holds edges[k] < r <= ...
    valid = (radius > 0) & (radius <= 0.5)
    counts = np.bincount(bins[valid], minlength=num_bins)
    out = np.full((c, num_bins), np.nan)
    for i in range(c):
        ch = x[..., i] - x[..., i].mean()
        power = np.abs(np.fft.fft2(ch * window)) ** 2 / np.sum(window**2)
        sums = np.bincount(bins[valid], weights=power[valid], minlength=num_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.log10(np.maximum(sums / counts, _TINY))
        out[i, counts == 0] = np.nan
    return out


def _common_bins(*images: np.ndarray) -> int:
    """The radial bins two images of these sizes share: half the smallest side, <= 32."""
    return max(2, min(_MAX_BINS, min(n for a in images for n in a.shape[:2]) // 2))


def spectrum_distance(image, reference, per_channel: bool = False):
    """RMS difference of the radially averaged log10 power spectra, per channel.

    ``D_c = sqrt(mean_k (S_image,c(k) - S_reference,c(k))^2)`` over the radial bins ``k``
    that both images populate; ``S`` from `radial_log_spectrum` with
    ``min(32, min side // 2)`` bins of the smaller image, so sizes may differ.

    Args:
      image: ``[H, W, C]``.
      reference: ``[H', W', C]``.
      per_channel: return the ``[C]`` distances instead of their mean.

    Returns:
      The mean over channels (a float, in decades of power), or ``[C]``.
    """
    x, y = _pair(image, reference)
    num_bins = _common_bins(x, y)
    sx, sy = radial_log_spectrum(x, num_bins), radial_log_spectrum(y, num_bins)
    diff = sx - sy
    ok = np.isfinite(diff).all(axis=0)
    d = np.sqrt(np.mean(np.square(diff[:, ok]), axis=1))
    return d if per_channel else float(d.mean())


def shuffled_pixels(image, shape: tuple[int, int] | None = None, seed: int = 0) -> np.ndarray:
    """The image's pixels (whole colour vectors) in random order: same histogram, no structure.

    Args:
      image: ``[H, W, C]``.
      shape: output ``(H', W')``, ``H' W' <= H W`` (pixels drawn without replacement);
        default ``(H, W)``, a permutation of all of them.
      seed: numpy random seed.

    Returns:
      ``[H', W', C]``, the dtype of ``image``.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[:2]
    oh, ow = (h, w) if shape is None else shape
    if oh * ow > h * w or min(oh, ow) < 1:
        raise ValueError(f"shape {shape} needs more pixels than the image's {h}x{w}")
    pixels = a.reshape(h * w, -1)
    order = np.random.default_rng(seed).permutation(h * w)[: oh * ow]
    return pixels[order].reshape(oh, ow, -1)


def texture_report(result, source, seed: int = 0) -> dict[str, float]:
    """Histogram and spectrum distances of a synthesised texture, with both references.

    Args:
      result: the synthesised texture ``[H, W, C]``.
      source: the source texture ``[H', W', C]``, ``H' W' >= H W``.
      seed: seed of the shuffled baseline and of the crop.

    Returns:
      ``{"histogram_w1", "spectrum_rms_log10"}`` of the result against the source; the
      same for the shuffled-pixel baseline (``"shuffled_*"``, the source's pixels at the
      result's size) and, when the source is at least as large in both sides and larger in
      one, for a random crop of the source at the result's size (``"crop_*"``).
    """
    x, y = _pair(result, source)
    report = {}
    for name, image in _compared(x, y, seed).items():
        prefix = "" if name == "result" else f"{name}_"
        report[f"{prefix}histogram_w1"] = histogram_distance(image, y)
        report[f"{prefix}spectrum_rms_log10"] = spectrum_distance(image, y)
    return report


def texture_spectra(result, source, seed: int = 0) -> dict[str, np.ndarray]:
    """The radially averaged log10 power spectra that `texture_report` compares, for a plot.

    Args:
      result, source, seed: as for `texture_report`.

    Returns:
      ``"frequency"``, the centres of the shared radial bins in cycles per pixel, and for
      ``"source"``, ``"result"``, ``"shuffled"`` and (when `texture_report` has one)
      ``"crop"`` the spectrum averaged over channels, one value per bin (log10 power).
    """
    x, y = _pair(result, source)
    images = {"source": y, **_compared(x, y, seed)}
    num_bins = _common_bins(x, y)
    edges = np.linspace(0.0, 0.5, num_bins + 1)
    spectra = {"frequency": 0.5 * (edges[:-1] + edges[1:])}
    for name, image in images.items():
        spectra[name] = radial_log_spectrum(image, num_bins).mean(axis=0)
    return spectra


def _compared(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The result and its references against source ``y``: the shuffled source pixels at
    the result's size and, when ``y`` is larger, a random crop of it at that size."""
    h, w = x.shape[:2]
    images = {"result": x, "shuffled": shuffled_pixels(y, (h, w), seed)}
    if y.shape[0] >= h and y.shape[1] >= w and y.shape[:2] != (h, w):
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, y.shape[0] - h + 1), rng.integers(0, y.shape[1] - w + 1)
        images["crop"] = y[i : i + h, j : j + w]
    return images
