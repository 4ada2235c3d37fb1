"""Mode counting on 2-D Gaussian mixtures, the protocol of Lin et al. 2018 (PacGAN).

PacGAN (arXiv:1712.04086, section 5.1, after VEEGAN, arXiv:1705.07761) scores 2,500
generated samples: a sample is *high quality* if it lies within 3 standard deviations of
its nearest mode centre; a mode is *covered* if at least one high-quality sample is
nearest to it; and the reverse KL divergence compares the histogram of high-quality
samples over modes with the uniform distribution of the true mixture.
"""

from __future__ import annotations

import numpy as np


def mixture_mode_stats(
    samples: np.ndarray, means: np.ndarray, sigma: float, num_sigmas: float = 3.0
) -> dict[str, float]:
    """Counts covered modes, the high-quality fraction and KL(mode histogram || uniform).

    Args:
      samples: generated points [N, 2].
      means: the mixture's mode centres [K, 2] (modes are equally likely).
      sigma: the mixture's per-mode standard deviation.
      num_sigmas: distance (in sigmas) within which a sample counts as high quality.

    Returns:
      {"modes": covered modes, "high_quality": fraction of high-quality samples,
       "reverse_kl": sum_k p_k log(p_k K) in nats over the histogram p of high-quality
       samples (inf when there is none), "num_modes": K}.
    """
    samples = np.asarray(samples, np.float64)
    means = np.asarray(means, np.float64)
    if samples.ndim != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(f"samples must be [N, {means.shape[1]}], got shape {samples.shape}")
    dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)
    nearest = dist.argmin(axis=1)
    good = dist[np.arange(len(samples)), nearest] <= num_sigmas * sigma
    counts = np.bincount(nearest[good], minlength=len(means))
    k = len(means)
    if counts.sum() == 0:
        kl = float("inf")
    else:
        p = counts / counts.sum()
        nz = p > 0
        kl = float(np.sum(p[nz] * np.log(p[nz] * k)))
    return {
        "modes": int((counts > 0).sum()),
        "high_quality": float(good.mean()),
        "reverse_kl": kl,
        "num_modes": k,
    }


def summarize_mode_stats(runs: list[dict]) -> dict[str, float]:
    """Mean and spread over runs (seeds) of `mixture_mode_stats`, as PacGAN's tables report.

    Args:
      runs: one `mixture_mode_stats` dict per run, all on the same mixture.

    Returns:
      {"num_modes", "runs", "modes_mean", "modes_std", "high_quality_mean",
       "high_quality_std" (both in percent), "reverse_kl_mean"}; std is the population
      standard deviation over runs (ddof 0), as PacGAN's ± is.
    """
    if not runs:
        raise ValueError("summarize_mode_stats needs at least one run, got none")
    num_modes = {r["num_modes"] for r in runs}
    if len(num_modes) != 1:
        raise ValueError(f"runs of different mixtures (num_modes {sorted(num_modes)})")
    modes = np.array([r["modes"] for r in runs], np.float64)
    hq = 100.0 * np.array([r["high_quality"] for r in runs], np.float64)
    kl = np.array([r["reverse_kl"] for r in runs], np.float64)
    return {
        "num_modes": num_modes.pop(),
        "runs": len(runs),
        "modes_mean": float(modes.mean()),
        "modes_std": float(modes.std()),
        "high_quality_mean": float(hq.mean()),
        "high_quality_std": float(hq.std()),
        "reverse_kl_mean": float(kl.mean()),
    }
