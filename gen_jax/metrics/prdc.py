"""k-NN manifold metrics: improved precision and recall, density and coverage.

Each set of features is given a manifold estimate: the union of balls centred on its
points, the radius of the ball at ``x`` being the distance from ``x`` to its k-th nearest
neighbour in the same set (the point itself not counted).

* precision: fraction of fake points inside the real manifold;
* recall: fraction of real points inside the fake manifold (Kynkäänniemi et al., k = 3);
* density: how many real balls contain each fake point, divided by k (about 1 when the
  two sets come from one law, above 1 when fakes crowd dense real regions);
* coverage: fraction of real balls that contain at least one fake point (Naeem et al.,
  k = 5).

Ball membership follows each paper's reference code: ``d <= radius`` for precision and
recall, ``d < radius`` for density and coverage (with ``<`` a real ball holds exactly its
centre and k - 1 neighbours, so identical sets give density 1).

Pairwise distances are never materialised as an [N, M, D] tensor nor, beyond one block,
as [N, M]: rows are processed ``block_size`` at a time with
``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` (one matmul per block, at full float32 precision),
so 10k x 10k sets of 2048-d features need about ``block_size * 10k`` floats of memory.
Squared distances are compared with squared radii, which avoids square roots.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["density_coverage", "nearest_neighbour_radii", "prdc", "precision_recall"]


def _as_features(features: ArrayLike, name: str) -> jax.Array:
    """Converts to a floating [N, D] array, naming `name` in the error."""
    x = jnp.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a [N, D] array, found shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _sq_dists(a: jax.Array, b: jax.Array, b_sq: jax.Array) -> jax.Array:
    """Squared Euclidean distances [n, m] between rows of a [n, D] and b [m, D]."""
    a_sq = jnp.sum(a * a, axis=-1)
    # HIGHEST: TF32 matmuls on GPUs would move distances by ~1e-3 relative.
    dots = jnp.matmul(a, b.T, precision=lax.Precision.HIGHEST)
    # Rounding in the expansion can make a zero distance slightly negative.
    return jnp.maximum(a_sq[:, None] + b_sq[None, :] - 2 * dots, 0)


def _row_blocks(x: jax.Array, block_size: int, fill: float = 0.0) -> jax.Array:
    """Pads the leading axis to a multiple of `block_size` and splits it into blocks."""
    n = x.shape[0]
    num_blocks = -(-n // block_size)
    pad = [(0, num_blocks * block_size - n)] + [(0, 0)] * (x.ndim - 1)
    x = jnp.pad(x, pad, constant_values=fill)
    return x.reshape((num_blocks, block_size) + x.shape[1:])


def _check_block_size(block_size: int) -> None:
    """Raises ValueError unless `block_size` is a positive int."""
    if not isinstance(block_size, numbers.Integral) or block_size < 1:
        raise ValueError(f"block_size: expected a positive int, found {block_size!r}")


def _kth_sq_radii(x: jax.Array, ks: tuple[int, ...], block_size: int) -> list[jax.Array]:
    """Squared distance from each row of x to its k-th nearest other row, for each k."""
    n = x.shape[0]
    kmax = max(ks)
    bs = min(block_size, n)
    x_sq = jnp.sum(x * x, axis=-1)

    def smallest(block):
        # top_k of -d: the kmax + 1 smallest distances, ascending; index 0 is the point
        # itself (distance 0), so index k is the k-th neighbour.
        neg, _ = lax.top_k(-_sq_dists(block, x, x_sq), kmax + 1)
        return -neg

    nearest = lax.map(smallest, _row_blocks(x, bs)).reshape(-1, kmax + 1)[:n]
    return [nearest[:, k] for k in ks]


def _check_k(k: int, n: int, name: str, set_name: str) -> None:
    """Raises ValueError unless 1 <= k < n (a k-th neighbour other than the point exists)."""
    if not isinstance(k, numbers.Integral) or not 1 <= k < n:
        raise ValueError(
            f"{name}: expected an int in [1, {n - 1}] ({set_name} has {n} points), found {k!r}"
        )


@functools.partial(jax.jit, static_argnames=("nearest_k", "block_size"))
def nearest_neighbour_radii(
    features: ArrayLike, nearest_k: int, *, block_size: int = 1024
) -> jax.Array:
    """Distance from each point to its k-th nearest neighbour in the same set.

        r_i = || x_i - NN_k(x_i) ||,   NN_k among {x_j : j != i}

    (computed as the (k+1)-th smallest distance with the point itself included, so an
    exact duplicate of x_i counts as a neighbour at distance 0).

    Args:
      features: [N, D] features.
      nearest_k: k, 1 <= k < N.
      block_size: rows of the distance matrix computed at a time.

    Returns:
      [N] radii.

    References:
      Kynkäänniemi et al., Improved Precision and Recall Metric for Assessing Generative
      Models, 2019 (arXiv:1904.06991).
    """
    x = _as_features(features, "features")
    _check_k(nearest_k, x.shape[0], "nearest_k", "features")
    _check_block_size(block_size)
    (r_sq,) = _kth_sq_radii(x, (nearest_k,), block_size)
    return jnp.sqrt(r_sq)


@functools.partial(
    jax.jit, static_argnames=("precision_recall_k", "density_coverage_k", "block_size")
)
def prdc(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    precision_recall_k: int = 3,
    density_coverage_k: int = 5,
    block_size: int = 1024,
) -> dict[str, jax.Array]:
    """Improved precision / recall and density / coverage in one pass over the distances.

    With ``r_i`` the k-th neighbour radius of real point ``X_i`` and ``s_j`` that of fake
    point ``Y_j`` (k = ``precision_recall_k`` for precision and recall,
    ``density_coverage_k`` for density and coverage), N real and M fake points:

        precision = 1/M sum_j 1[ exists i: |Y_j - X_i| <= r_i ]
        recall    = 1/N sum_i 1[ exists j: |X_i - Y_j| <= s_j ]
        density   = 1/(k M) sum_j sum_i 1[ |Y_j - X_i| < r_i ]
        coverage  = 1/N sum_i 1[ min_j |X_i - Y_j| < r_i ]

    Jittable (already jitted; the keyword arguments are static). Cost: three passes of
    ``block_size``-row blocks (real-real, fake-fake, real-fake), O((N + M)^2 D) flops and
    O(block_size * max(N, M)) memory.

    Args:
      real_features: [N, D] features of data.
      fake_features: [M, D] features of samples.
      precision_recall_k: k for precision and recall (3 in Kynkäänniemi et al.).
      density_coverage_k: k for density and coverage (5 in Naeem et al.).
      block_size: rows of a distance block.

    Returns:
      ``{"precision", "recall", "density", "coverage"}`` -> scalars.

    References:
      Kynkäänniemi et al. 2019 (arXiv:1904.06991); Naeem et al., Reliable Fidelity and
      Diversity Metrics for Generative Models, 2020 (arXiv:2002.09797).
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    if fake.shape[1] != real.shape[1]:
        raise ValueError(
            f"fake_features: expected [M, {real.shape[1]}] like real_features, "
            f"found shape {fake.shape}"
        )
    n, m = real.shape[0], fake.shape[0]
    _check_k(precision_recall_k, min(n, m), "precision_recall_k", "the smaller set")
    _check_k(density_coverage_k, n, "density_coverage_k", "real_features")
    _check_block_size(block_size)
    dtype = jnp.promote_types(real.dtype, fake.dtype)
    real, fake = real.astype(dtype), fake.astype(dtype)

    r_pr, r_dc = _kth_sq_radii(real, (precision_recall_k, density_coverage_k), block_size)
    (s_pr,) = _kth_sq_radii(fake, (precision_recall_k,), block_size)

    # One pass over real-row blocks against all fakes. Padding rows get radius -1 (no
    # squared distance is below it), so they add nothing to the fake-side accumulators;
    # their real-side results are sliced off.
    bs = min(block_size, n)
    fake_sq = jnp.sum(fake * fake, axis=-1)
    xs = (_row_blocks(real, bs), _row_blocks(r_pr, bs, -1.0), _row_blocks(r_dc, bs, -1.0))

    def step(carry, blocks):
        in_real_manifold, ball_count = carry
        block, rad_pr, rad_dc = blocks
        d = _sq_dists(block, fake, fake_sq)  # [bs, M]
        in_real_manifold = in_real_manifold | jnp.any(d <= rad_pr[:, None], axis=0)
        ball_count = ball_count + jnp.sum(d < rad_dc[:, None], axis=0, dtype=jnp.int32)
        in_fake_manifold = jnp.any(d <= s_pr[None, :], axis=1)
        covered = jnp.min(d, axis=1) < rad_dc
        return (in_real_manifold, ball_count), (in_fake_manifold, covered)

    init = (jnp.zeros((m,), bool), jnp.zeros((m,), jnp.int32))
    (in_real_manifold, ball_count), (in_fake_manifold, covered) = lax.scan(step, init, xs)
    return {
        "precision": jnp.mean(in_real_manifold, dtype=dtype),
        "recall": jnp.mean(in_fake_manifold.reshape(-1)[:n], dtype=dtype),
        "density": jnp.sum(ball_count, dtype=dtype) / (density_coverage_k * m),
        "coverage": jnp.mean(covered.reshape(-1)[:n], dtype=dtype),
    }


def precision_recall(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    nearest_k: int = 3,
    block_size: int = 1024,
) -> tuple[jax.Array, jax.Array]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, arXiv:1904.06991).

        precision = 1/M sum_j 1[ exists i: |Y_j - X_i| <= r_i ],
        recall    = 1/N sum_i 1[ exists j: |X_i - Y_j| <= s_j ]

    with r, s the k-th nearest-neighbour radii within the real / fake set; see ``prdc``.

    Args:
      real_features: [N, D] features of data.
      fake_features: [M, D] features of samples.
      nearest_k: k (3 in the paper).
      block_size: rows of a distance block.

    Returns:
      ``(precision, recall)`` scalars.
    """
    out = prdc(
        real_features,
        fake_features,
        precision_recall_k=nearest_k,
        density_coverage_k=nearest_k,
        block_size=block_size,
    )
    return out["precision"], out["recall"]


def density_coverage(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    nearest_k: int = 5,
    block_size: int = 1024,
) -> tuple[jax.Array, jax.Array]:
    """Density and coverage (Naeem et al. 2020, arXiv:2002.09797).

        density  = 1/(k M) sum_j sum_i 1[ |Y_j - X_i| < r_i ],
        coverage = 1/N sum_i 1[ min_j |X_i - Y_j| < r_i ]

    with r the k-th nearest-neighbour radii within the real set; see ``prdc``.

    Args:
      real_features: [N, D] features of data.
      fake_features: [M, D] features of samples.
      nearest_k: k (5 in the paper).
      block_size: rows of a distance block.

    Returns:
      ``(density, coverage)`` scalars.
    """
    k_pr = min(nearest_k, jnp.shape(real_features)[0] - 1, jnp.shape(fake_features)[0] - 1)
    out = prdc(
        real_features,
        fake_features,
        precision_recall_k=max(k_pr, 1),
        density_coverage_k=nearest_k,
        block_size=block_size,
    )
    return out["density"], out["coverage"]
