"""The explicit state pytree of a GAN run.

Everything needed to continue a run bit-for-bit lives in one `GANState`: both networks'
parameters, optimizer states and batch-norm statistics, the generator's exponential moving
average, the step counter and the run's base PRNG key. Batches of small datasets are drawn
from (key, step) inside the compiled step, so the step counter is also the data cursor, and
one checkpoint of this pytree is a complete checkpoint.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

PyTree = Any


class GANState(struct.PyTreeNode):
    """Generator and discriminator state, updated by `make_train_step`'s step.

    Attributes:
      step: int32 scalar, number of generator updates done (and the data cursor).
      g_params, d_params: the networks' parameters.
      g_opt_state, d_opt_state: each network's own optax state.
      g_batch_stats, d_batch_stats: batch-norm running statistics ({} without batch norm).
      g_ema_params: exponential moving average of g_params (Yazici et al. 2019,
        arXiv:1806.04498), or None when the run keeps no average.
      key: the run's base PRNG key; constant, per-step keys are `fold_in(key, step)`.
      generator, discriminator: the Flax modules (static).
      g_tx, d_tx: the two optax transformations (static).
    """

    step: jax.Array
    g_params: PyTree
    d_params: PyTree
    g_opt_state: PyTree
    d_opt_state: PyTree
    g_batch_stats: PyTree
    d_batch_stats: PyTree
    g_ema_params: PyTree
    key: jax.Array
    generator: nn.Module = struct.field(pytree_node=False)
    discriminator: nn.Module = struct.field(pytree_node=False)
    g_tx: optax.GradientTransformation = struct.field(pytree_node=False)
    d_tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def generate(self, z: jax.Array, *, use_ema: bool = True) -> jax.Array:
        """Samples G(z) in inference mode (running batch-norm statistics), from the EMA if kept."""
        params = self.g_ema_params if (use_ema and self.g_ema_params is not None) else self.g_params
        return self.generator.apply(
            {"params": params, "batch_stats": self.g_batch_stats}, z, train=False
        )


def stream_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits a run's base key into the (model, data) streams, so they never share keys."""
    model_key, data_key = jax.random.split(key)
    return model_key, data_key


def create_gan_state(
    key: jax.Array,
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    z_example: jax.Array,
    x_example: jax.Array,
    *,
    use_ema: bool = True,
) -> GANState:
    """Initialises both networks, their optimizers and the EMA from one key.

    Args:
      key: PRNG key; split into the two init keys and the run's base key.
      generator, discriminator: Flax modules taking `train=` as a keyword.
      g_tx, d_tx: optax transformations for G and D.
      z_example: a latent batch [B, ...] (values unused, shape and dtype matter).
      x_example: a data batch [B, ...] as D sees it.
      use_ema: keep an exponential moving average of G's parameters.

    Returns:
      A `GANState` at step 0.
    """
    g_key, d_key, run_key = jax.random.split(key, 3)
    g_vars = generator.init(g_key, z_example, train=False)
    d_vars = discriminator.init(d_key, x_example, train=False)
    g_params, d_params = g_vars["params"], d_vars["params"]
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=g_tx.init(g_params),
        d_opt_state=d_tx.init(d_params),
        g_batch_stats=g_vars.get("batch_stats", {}),
        d_batch_stats=d_vars.get("batch_stats", {}),
        g_ema_params=jax.tree.map(jnp.copy, g_params) if use_ema else None,
        key=run_key,
        generator=generator,
        discriminator=discriminator,
        g_tx=g_tx,
        d_tx=d_tx,
    )
