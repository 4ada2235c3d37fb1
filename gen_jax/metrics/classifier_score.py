"""Classifier score: the Inception-score formula on the logits of any classifier.

Salimans et al. (arXiv:1606.03498) score samples by ``exp(E_x KL(p(y|x) || p(y)))``: high
when each sample is classified confidently (low-entropy ``p(y|x)``) and the classes are
used evenly (high-entropy marginal ``p(y)``). With Inception-v3 on ImageNet it is the
Inception score; with a Fashion-MNIST or MNIST classifier it is the same formula on that
classifier's logits. It ranges from 1 (every ``p(y|x)`` equal to the marginal) to K (every
sample confidently one class, classes balanced).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["classifier_score"]


@functools.partial(jax.jit, static_argnames="splits")
def classifier_score(logits: ArrayLike, splits: int = 10) -> tuple[jax.Array, jax.Array]:
    """Inception-score formula over `splits` consecutive parts of the samples.

        for each part P:  p(y) = 1/|P| sum_{x in P} p(y|x)
                          s_P = exp( 1/|P| sum_{x in P} KL(p(y|x) || p(y)) )
        score = mean_P s_P,   std = sqrt(mean_P (s_P - score)^2)

    Part ``i`` holds rows ``[i N // splits, (i + 1) N // splits)``, as in the reference
    code (parts differ by at most one row when ``splits`` does not divide N; the std uses
    ddof = 0). Everything is in log space: ``log p(y|x)`` is a log-softmax and
    ``log p(y)`` a log-sum-exp over the part, so confident logits (``p = 0`` entries) give
    no ``0 * log 0`` NaNs. Already jitted, ``splits`` static.

    Args:
      logits: classifier logits [N, K] (unnormalised log-probabilities).
      splits: number of parts, 1 <= splits <= N.

    Returns:
      ``(mean, std)`` over the parts, scalars.

    References:
      Salimans et al., Improved Techniques for Training GANs, 2016 (arXiv:1606.03498).
    """
    x = jnp.asarray(logits)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"logits: expected a [N, K] array, found shape {x.shape}")
    n = x.shape[0]
    if not isinstance(splits, (int, np.integer)) or not 1 <= splits <= n:
        raise ValueError(f"splits: expected an int in [1, N={n}], found {splits!r}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)

    log_p = jax.nn.log_softmax(x, axis=-1)  # [N, K]
    # Static part index of each row (shapes are static, so this is plain NumPy).
    bounds = np.arange(splits + 1) * n // splits
    part = np.searchsorted(bounds, np.arange(n), side="right") - 1
    counts = np.diff(bounds)
    # log p(y) per part = logsumexp over the part's rows of log p(y|x) - log |P|.
    part_max = jax.ops.segment_max(log_p, part, num_segments=splits)  # [S, K]
    part_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(part_max), part_max, 0.0))
    sum_exp = jax.ops.segment_sum(jnp.exp(log_p - part_max[part]), part, num_segments=splits)
    log_marginal = jnp.log(sum_exp) + part_max - jnp.log(counts)[:, None]  # [S, K]
    p = jnp.exp(log_p)
    # p * (log p - log p(y)): where p underflows to 0 the product is 0, never NaN, because
    # log p is finite (log-softmax) and log p(y) >= log p(y|x) - log |P| is finite too.
    kl = jnp.sum(p * (log_p - log_marginal[part]), axis=-1)  # [N]
    mean_kl = jax.ops.segment_sum(kl, part, num_segments=splits) / counts
    scores = jnp.exp(mean_kl)
    return jnp.mean(scores), jnp.std(scores)
