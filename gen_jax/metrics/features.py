"""Feature extraction in batches and the one-call evaluation of feature-space metrics.

The feature network is injected, never imported: ``feature_fn(images) -> [B, D]`` may be
Inception-v3 pool features (FID), a Fashion-MNIST classifier's penultimate layer, or
random features. ``evaluate_feature_metrics`` is the entry point that score commands,
calibration scripts and experiments' ``results.json`` use.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gen_jax.metrics.frechet import frechet_distance, gaussian_moments
from gen_jax.metrics.kernel import kernel_distance
from gen_jax.metrics.prdc import prdc

__all__ = ["FEATURE_METRIC_KEYS", "evaluate_feature_metrics", "extract_features"]

# The keys of evaluate_feature_metrics, in order.
FEATURE_METRIC_KEYS = (
    "frechet",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
)


def extract_features(
    feature_fn: Callable[[jax.Array], jax.Array],
    images: ArrayLike,
    batch_size: int = 256,
) -> np.ndarray:
    """Runs `feature_fn` over `images` in batches of one shape and returns host features.

    The last partial batch is padded (by repeating its last image) to ``batch_size`` and
    the padded rows are dropped, so the jitted function compiles once. Batches are sliced
    on the host and sent one at a time, so `images` may be a large NumPy array that would
    not fit on the device; the device -> host copy of batch i overlaps the computation of
    batch i + 1.

    Args:
      feature_fn: ``images [B, ...] -> features [B, D]`` (or [B, ...]), traceable; it is
        wrapped in ``jax.jit`` (a no-op if it already is jitted). Close over parameters.
      images: [N, ...] inputs, N >= 1 (NumPy or jax array).
      batch_size: rows per call of `feature_fn`.

    Returns:
      [N, ...] NumPy array of features, in input order.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, found {batch_size!r}")
    if np.ndim(images) < 1 or np.shape(images)[0] < 1:
        raise ValueError(f"images: expected a non-empty [N, ...] array, found {np.shape(images)}")
    if not callable(feature_fn):
        raise TypeError(f"feature_fn: expected a callable, found {type(feature_fn).__name__}")
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    n = images.shape[0]
    fn = jax.jit(feature_fn)
    batch_size = min(batch_size, n)
    outputs: list[np.ndarray] = []
    pending = None
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size]
        valid = batch.shape[0]
        if valid < batch_size:
            # Repeat the last real image rather than zeros: stays in the input domain.
            fill = np.repeat(np.asarray(batch[-1:]), batch_size - valid, axis=0)
            batch = np.concatenate([np.asarray(batch), fill], axis=0)
        result = fn(batch)  # dispatched asynchronously
        if pending is not None:
            outputs.append(np.asarray(pending[0])[: pending[1]])
        pending = (result, valid)
    outputs.append(np.asarray(pending[0])[: pending[1]])
    return np.concatenate(outputs, axis=0)


def evaluate_feature_metrics(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    key: jax.Array,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    precision_recall_k: int = 3,
    density_coverage_k: int = 5,
    block_size: int = 1024,
) -> dict[str, float]:
    """All feature-space distances between a real and a generated set, as Python floats.

    * ``frechet``: Fréchet distance of Gaussian fits (moments in float32, two-pass; the
      distance in NumPy float64), see ``frechet_distance``;
    * ``kid_mean``, ``kid_std``: unbiased polynomial-kernel MMD^2 over random subsets,
      see ``kernel_distance`` (not multiplied by 1000);
    * ``precision``, ``recall`` (k = ``precision_recall_k``), ``density``, ``coverage``
      (k = ``density_coverage_k``), see ``prdc``.

    Args:
      real_features: [N, D] features of data (N >= 2, and > each k).
      fake_features: [M, D] features of samples (M >= 2).
      key: PRNG key for the KID subsets.
      kid_subsets: number of KID subsets.
      kid_subset_size: KID subset size (capped at min(N, M)).
      precision_recall_k: k of improved precision and recall.
      density_coverage_k: k of density and coverage.
      block_size: rows of a distance block in ``prdc``.

    Returns:
      ``{"frechet", "kid_mean", "kid_std", "precision", "recall", "density",
      "coverage"}`` -> float (keys in ``FEATURE_METRIC_KEYS``).

    References:
      Heusel et al. 2017 (arXiv:1706.08500); Bińkowski et al. 2018 (arXiv:1801.01401);
      Kynkäänniemi et al. 2019 (arXiv:1904.06991); Naeem et al. 2020 (arXiv:2002.09797).
    """
    real = jnp.asarray(real_features)
    fake = jnp.asarray(fake_features)
    for name, x in (("real_features", real), ("fake_features", fake)):
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"{name}: expected a [N, D] array with N >= 2, found {x.shape}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"fake_features: expected [M, {real.shape[1]}] like real_features, "
            f"found shape {fake.shape}"
        )
    mu_r, sigma_r = _moments(real)
    mu_f, sigma_f = _moments(fake)
    kid_mean, kid_std = kernel_distance(
        real, fake, key=key, num_subsets=kid_subsets, subset_size=kid_subset_size
    )
    manifold = prdc(
        real,
        fake,
        precision_recall_k=precision_recall_k,
        density_coverage_k=density_coverage_k,
        block_size=block_size,
    )
    values = {
        "frechet": frechet_distance(mu_r, sigma_r, mu_f, sigma_f),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        **manifold,
    }
    values = jax.device_get(values)
    return {k: float(values[k]) for k in FEATURE_METRIC_KEYS}


@jax.jit
def _moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, covariance with ddof 1) of [N, D] features, jitted."""
    return gaussian_moments(x).finalize()
