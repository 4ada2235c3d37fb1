"""Fréchet distance between Gaussian fits of features (FID when the features are Inception's).

Two stages, so that any number of images can be scored:

1. ``GaussianMoments`` accumulates the count, mean and *centred* scatter matrix of the
   features batch by batch (a jittable pytree). Batches are combined with the parallel
   update of Chan, Golub and LeVeque (1979) rather than by summing raw outer products
   ``sum x x^T``: the raw form subtracts two large nearly equal numbers at the end
   (``E[x x^T] - mu mu^T``) and loses most of float32's digits when the features have a
   large mean, the centred form never does.
2. ``frechet_distance`` turns two ``(mu, sigma)`` pairs into the distance. It runs on the
   host in NumPy float64, whatever the precision of the inputs: the matrix square root of
   a 2048 x 2048 covariance is the one place where float32 visibly moves the score.
   ``frechet_distance_jax`` is the same computation in jax.numpy, jittable, in the dtype
   of its inputs (float64 when ``jax_enable_x64`` is on, else float32).

The trace term ``tr((Sigma1 Sigma2)^(1/2))`` is computed without a general (non-symmetric)
matrix square root: ``Sigma1 Sigma2`` is similar to the symmetric PSD matrix
``A = Sigma1^(1/2) Sigma2 Sigma1^(1/2)``, so both have the same eigenvalues and
``tr((Sigma1 Sigma2)^(1/2)) = sum_i sqrt(lambda_i(A))``. Two symmetric eigendecompositions
(``eigh``) give it, and tiny negative eigenvalues from rounding are clipped to zero. This
avoids the complex output and the ``eps * I`` retries of ``scipy.linalg.sqrtm``.
"""

from __future__ import annotations

import types

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "GaussianMoments",
    "frechet_distance",
    "frechet_distance_jax",
    "gaussian_moments",
]


class GaussianMoments(flax.struct.PyTreeNode):
    """Running count, mean and centred scatter matrix of D-dimensional features.

    ``scatter = sum_i (x_i - mean)(x_i - mean)^T``; the covariance is
    ``scatter / (count - ddof)``. Two partial results ``(n_a, m_a, S_a)`` and
    ``(n_b, m_b, S_b)`` combine exactly (Chan et al. 1979):

        n = n_a + n_b,   delta = m_b - m_a,
        m = m_a + delta * n_b / n,
        S = S_a + S_b + delta delta^T * n_a n_b / n.

    All methods are pure and jittable; use ``update`` inside a jitted evaluation loop or
    ``merge`` to combine moments computed on different hosts or shards.

    Attributes:
      count: number of samples seen, int32 scalar.
      mean: running mean [D].
      scatter: centred scatter matrix [D, D].

    References:
      Chan, Golub and LeVeque, Updating formulae and a pairwise algorithm for computing
      sample variances, 1979 (Stanford CS tech. report STAN-CS-79-773).
    """

    count: jax.Array
    mean: jax.Array
    scatter: jax.Array

    @classmethod
    def init(cls, dim: int, dtype: jnp.dtype = jnp.float32) -> GaussianMoments:
        """Empty moments of `dim`-dimensional features (count 0, zero mean and scatter)."""
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim: expected a positive int, found {dim!r}")
        return cls(
            count=jnp.zeros((), jnp.int32),
            mean=jnp.zeros((dim,), dtype),
            scatter=jnp.zeros((dim, dim), dtype),
        )

    def update(self, features: ArrayLike, mask: ArrayLike | None = None) -> GaussianMoments:
        """Adds a batch of features [B, D]; `mask` [B] (bool or 0/1) drops padded rows."""
        batch = gaussian_moments(features, mask, dtype=self.mean.dtype)
        if batch.mean.shape != self.mean.shape:
            raise ValueError(
                f"features: expected [B, {self.mean.shape[0]}], found {jnp.shape(features)}"
            )
        return self.merge(batch)

    def merge(self, other: GaussianMoments) -> GaussianMoments:
        """Combines two partial moments as if their samples had been seen together."""
        if other.mean.shape != self.mean.shape:
            raise ValueError(
                f"other: expected moments of dimension {self.mean.shape}, found {other.mean.shape}"
            )
        dtype = self.mean.dtype
        n_a = self.count.astype(dtype)
        n_b = other.count.astype(dtype)
        n = n_a + n_b
        # max(n, 1): merging two empty moments gives empty moments, not NaN.
        safe_n = jnp.maximum(n, 1)
        delta = other.mean.astype(dtype) - self.mean
        mean = self.mean + delta * (n_b / safe_n)
        scatter = self.scatter + other.scatter.astype(dtype)
        scatter = scatter + jnp.outer(delta, delta) * (n_a * n_b / safe_n)
        return GaussianMoments(count=self.count + other.count, mean=mean, scatter=scatter)

    def finalize(self, ddof: int = 1) -> tuple[jax.Array, jax.Array]:
        """Returns ``(mu [D], sigma [D, D])`` with ``sigma = scatter / (count - ddof)``.

        ``ddof = 1`` (the default) is the unbiased sample covariance of ``np.cov``, the
        convention of the reference FID code. Under jit a count <= ddof gives inf/NaN.
        """
        return self.mean, self.scatter / (self.count - ddof).astype(self.mean.dtype)


def gaussian_moments(
    features: ArrayLike, mask: ArrayLike | None = None, *, dtype: jnp.dtype | None = None
) -> GaussianMoments:
    """Moments of one array of features, two-pass (mean first, then centred scatter).

        mean = sum_i w_i x_i / sum_i w_i,   scatter = sum_i w_i (x_i - mean)(x_i - mean)^T

    with weights ``w_i = mask_i`` (1 when no mask is given). Jittable.

    Args:
      features: [B, D] features.
      mask: optional [B] bool or 0/1 weights; rows with 0 are ignored (padding).
      dtype: accumulation dtype; default the features' floating dtype (float32 for ints).

    Returns:
      ``GaussianMoments`` with count = number of unmasked rows.
    """
    x = jnp.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features: expected a [B, D] array, found shape {x.shape}")
    if dtype is None:
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    x = x.astype(dtype)
    if mask is None:
        w = jnp.ones((x.shape[0],), dtype)
    else:
        w = jnp.asarray(mask)
        if w.shape != (x.shape[0],):
            raise ValueError(f"mask: expected shape ({x.shape[0]},), found {w.shape}")
        w = w.astype(dtype)
    n = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, axis=0) / jnp.maximum(n, 1)
    centred = (x - mean) * w[:, None]  # w is 0/1, so w^2 = w
    scatter = jnp.matmul(centred.T, centred, precision=jax.lax.Precision.HIGHEST)
    return GaussianMoments(count=jnp.round(n).astype(jnp.int32), mean=mean, scatter=scatter)


def _frechet(mu1, sigma1, mu2, sigma2, xp: types.ModuleType):
    """The distance with array module `xp` (numpy or jax.numpy); inputs already validated."""
    diff = mu1 - mu2
    # sigma^(1/2) of a symmetric PSD matrix: V diag(sqrt(max(lambda, 0))) V^T.
    w1, v1 = xp.linalg.eigh((sigma1 + sigma1.T) / 2)
    sqrt_sigma1 = (v1 * xp.sqrt(xp.maximum(w1, 0))) @ v1.T
    a = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    # A is PSD in exact arithmetic; rounding can leave eigenvalues of about -1e-12 * |A|.
    w = xp.linalg.eigvalsh((a + a.T) / 2)
    trace_sqrt = xp.sum(xp.sqrt(xp.maximum(w, 0)))
    return diff @ diff + xp.trace(sigma1) + xp.trace(sigma2) - 2 * trace_sqrt


def _check_gaussians(mu1, sigma1, mu2, sigma2) -> None:
    """Raises ValueError unless mu's are [D] and sigma's [D, D] with one D."""
    names = ("mu1", "sigma1", "mu2", "sigma2")
    d = np.shape(mu1)[0] if np.ndim(mu1) == 1 else None
    if d is None:
        raise ValueError(f"mu1: expected a [D] vector, found shape {np.shape(mu1)}")
    expected = ((d,), (d, d), (d,), (d, d))
    for name, value, shape in zip(names, (mu1, sigma1, mu2, sigma2), expected):
        if np.shape(value) != shape:
            raise ValueError(f"{name}: expected shape {shape}, found {np.shape(value)}")


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Fréchet (2-Wasserstein) distance between two Gaussians, in NumPy float64.

        d^2 = |mu1 - mu2|^2 + tr(Sigma1 + Sigma2 - 2 (Sigma1^(1/2) Sigma2 Sigma1^(1/2))^(1/2))

    Runs on the host in float64 whatever the inputs' dtype (see the module docstring);
    not traceable. With Inception pool features this is the FID of Heusel et al.

    Args:
      mu1: mean of the first Gaussian [D].
      sigma1: its covariance [D, D] (symmetric PSD).
      mu2: mean of the second Gaussian [D].
      sigma2: its covariance [D, D].

    Returns:
      d^2 as a Python float (>= 0 up to rounding).

    References:
      Dowson and Landau, The Fréchet distance between multivariate normal distributions,
      1982; Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a Local
      Nash Equilibrium, 2017 (arXiv:1706.08500).
    """
    args = [np.asarray(jax.device_get(a), np.float64) for a in (mu1, sigma1, mu2, sigma2)]
    _check_gaussians(*args)
    return float(_frechet(*args, xp=np))


def frechet_distance_jax(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike
) -> jax.Array:
    """Squared Fréchet distance between two Gaussians in jax.numpy (jittable).

        d^2 = |mu1 - mu2|^2 + tr(Sigma1 + Sigma2 - 2 (Sigma1^(1/2) Sigma2 Sigma1^(1/2))^(1/2))

    Same computation as ``frechet_distance`` in the inputs' dtype: float64 when
    ``jax_enable_x64`` is on (then it matches the host path), float32 otherwise (expect
    relative errors of about 1e-5 on the trace term; prefer ``frechet_distance`` for
    reported scores). Matrix products run at full precision (no TF32 on GPUs).

    Args:
      mu1: mean of the first Gaussian [D].
      sigma1: its covariance [D, D].
      mu2: mean of the second Gaussian [D].
      sigma2: its covariance [D, D].

    Returns:
      d^2, a scalar array.

    References:
      Heusel et al. 2017 (arXiv:1706.08500).
    """
    _check_gaussians(mu1, sigma1, mu2, sigma2)
    dtype = jnp.result_type(mu1, sigma1, mu2, sigma2, float)
    args = [jnp.asarray(a, dtype) for a in (mu1, sigma1, mu2, sigma2)]
    with jax.default_matmul_precision("highest"):
        return _frechet(*args, xp=jnp)
