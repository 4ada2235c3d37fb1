"""Adversarial examples: the fast gradient sign method and its iterated form.

FGSM (Goodfellow, Shlens & Szegedy 2014, arXiv:1412.6572) moves every input element by ε
in the direction that increases the loss to first order:

    x_adv = clip(x + ε · sign(∇ₓ J(θ, x, y)), lo, hi)

The basic iterative method (Kurakin, Goodfellow & Bengio 2016, arXiv:1607.02533) takes
`steps` such moves of size α and projects back onto the L∞ ball of radius ε around x (and
the valid pixel range) after each one; with a random start inside the ball it is the PGD
attack of Madry et al. 2017 (arXiv:1706.06083).

Both functions take a per-example loss `loss_fn(x) -> [B]`. The attack differentiates
the *sum* over the batch, which gives each example its own gradient as long as the
examples do not interact (evaluate batch norm in inference mode). ε, α and the clip range
are in the units of `x`: for a classifier that reads [-1, 1] images, ε = 0.1 on the usual
[0, 1] pixel scale is 0.2 here.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["fgsm", "iterative_fgsm"]

LossFn = Callable[[jax.Array], jax.Array]


def _signed_gradient(loss_fn: LossFn, x: jax.Array) -> jax.Array:
    """sign ∇ₓ Σ_b loss_fn(x)_b."""
    grad = jax.grad(lambda v: jnp.sum(loss_fn(v)))(x)
    return jnp.sign(grad)


def _check(eps: ArrayLike, clip: tuple[float, float] | None) -> None:
    if not isinstance(eps, jax.Array) and float(eps) < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if clip is not None and not clip[0] < clip[1]:
        raise ValueError(f"clip must be (lo, hi) with lo < hi, got {clip}")


def fgsm(
    loss_fn: LossFn,
    x: ArrayLike,
    eps: ArrayLike,
    *,
    clip: tuple[float, float] | None = (-1.0, 1.0),
) -> jax.Array:
    """One fast-gradient-sign step: clip(x + ε · sign ∇ₓ J(x)).

    Args:
      loss_fn: per-example loss to increase, x [B, ...] -> [B] (for an untargeted attack,
        the cross-entropy of the true labels).
      x: clean inputs [B, ...].
      eps: the L∞ budget, a scalar (may be traced, so one compiled attack serves a sweep).
      clip: the valid input range, or None for no clipping.

    Returns:
      Adversarial inputs with the shape and dtype of x.
    """
    _check(eps, clip)
    x = jnp.asarray(x)
    x_adv = x + eps * _signed_gradient(loss_fn, x)
    if clip is not None:
        x_adv = jnp.clip(x_adv, *clip)
    return x_adv.astype(x.dtype)


def iterative_fgsm(
    loss_fn: LossFn,
    x: ArrayLike,
    eps: ArrayLike,
    *,
    steps: int = 10,
    step_size: ArrayLike | None = None,
    clip: tuple[float, float] | None = (-1.0, 1.0),
    key: jax.Array | None = None,
) -> jax.Array:
    """The basic iterative method (BIM); with a `key`, PGD's uniform random start.

        x⁰ = x  (or x + U(-ε, ε) with a key)
        xᵗ⁺¹ = Proj_{‖· − x‖∞ ≤ ε, clip}(xᵗ + α · sign ∇ₓ J(xᵗ))

    Args:
      loss_fn: per-example loss to increase, x [B, ...] -> [B].
      x: clean inputs [B, ...].
      eps: the L∞ budget (scalar; may be traced).
      steps: number of signed-gradient steps (static).
      step_size: α; default 2.5 · ε / steps (Madry et al.), enough to reach the ball's
        boundary from anywhere inside it.
      clip: the valid input range, or None.
      key: PRNG key for a random start; None starts at x (BIM).

    Returns:
      Adversarial inputs with the shape and dtype of x, within ε of x in L∞.
    """
    _check(eps, clip)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = jnp.asarray(x)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = jnp.maximum(lo, clip[0]), jnp.minimum(hi, clip[1])
    x0 = x
    if key is not None:
        x0 = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps), lo, hi)

    def body(_, x_t):
        return jnp.clip(x_t + alpha * _signed_gradient(loss_fn, x_t), lo, hi)

    return lax.fori_loop(0, steps, body, x0).astype(x.dtype)
