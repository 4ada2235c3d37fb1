"""Regularisers of the discriminator that depend on its gradient with respect to its input.

Convention: a penalty takes `discriminator_fn`, a closure `x -> logits` over the
discriminator's current parameters, and the inputs it is evaluated at; it returns one value
per example, shape ``[batch]``, and the caller reduces and weights it. Penalties that draw
random points (the WGAN-GP interpolates) also take an explicit PRNG key.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["r1_penalty"]


def r1_penalty(discriminator_fn: Callable[[jax.Array], jax.Array], real: ArrayLike) -> jax.Array:
    """Squared norm of the discriminator's input gradient on real data (the R1 penalty).

    Returns ``||grad_x D(x)||^2`` for every real example ``x``, with ``D`` the logit; the
    regulariser of Mescheder et al. is ``gamma / 2`` times its batch mean, added to D's
    loss. It flattens D around the data so the game converges locally instead of
    circling the equilibrium (the Dirac-GAN analysis of the paper).

    The gradient is taken of the *sum* of the logits, which equals each example's own
    gradient when each logit depends only on its own example (no batch norm in D; a
    PatchGAN map's logits of one image are summed). A PacGAN discriminator's logit depends
    on the `pack` examples of its pack, and each example gets its gradient from that logit.

    Args:
      discriminator_fn: ``x -> logits``, logits of shape ``[batch', ...]``.
      real: data, shape ``[batch, ...]``.

    Returns:
      ``||grad_x D(x)||^2`` per example, shape ``[batch]`` (sum over the trailing axes).

    References:
      Mescheder, Geiger & Nowozin, Which Training Methods for GANs do actually Converge?,
      2018 (arXiv:1801.04406), Eq. 9.
    """
    x = jnp.asarray(real)
    if x.ndim == 0:
        raise ValueError(f"real must have a leading batch axis, shape [batch, ...]; got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    grads = jax.grad(lambda x: jnp.sum(discriminator_fn(x)))(x)
    return jnp.sum(jnp.square(grads), axis=tuple(range(1, x.ndim)))
