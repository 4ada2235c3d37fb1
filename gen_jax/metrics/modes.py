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
