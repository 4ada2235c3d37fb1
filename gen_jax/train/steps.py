"""Pure, jittable GAN train steps and their fusion into multi-step chunks.

`make_train_step` implements Algorithm 1 of Goodfellow et al. 2014 (arXiv:1406.2661):
`n_critic` discriminator updates, each on a fresh real minibatch and fresh latents, then
one generator update, each network with its own optax transformation and state.

`make_train_chunk` fuses K such steps into one XLA program with `lax.scan`, drawing each
step's batch on the device from a dataset passed in as an argument, so the host dispatches
once per K steps and the input pipeline leaves the hot path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from gen_jax import parallel
from gen_jax.losses.penalties import r1_penalty
from gen_jax.train.state import GANState, stream_keys

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
LatentFn = Callable[[jax.Array, int], jax.Array]
# batch_fn(data, data_key, step) -> batch with leaves [n_critic, B, ...].
BatchFn = Callable[[Any, jax.Array, jax.Array], Batch]


def normal_latent(dim: int) -> LatentFn:
    """z ~ N(0, I) of shape [B, dim], the DCGAN latent."""

    def sample(key: jax.Array, batch_size: int) -> jax.Array:
        return jax.random.normal(key, (batch_size, dim), jnp.float32)

    return sample


def _apply(module, params, batch_stats, x):
    """Train-mode forward pass; returns (output, updated batch statistics)."""
    out, updates = module.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
    )
    return out, updates.get("batch_stats", batch_stats)


def _mean_logit(logits: jax.Array) -> jax.Array:
    return jnp.mean(logits.astype(jnp.float32))


def make_train_step(
    generator_loss: Callable[..., jax.Array],
    discriminator_loss: Callable[..., jax.Array],
    sample_latent: LatentFn,
    *,
    n_critic: int = 1,
    ema_decay: float = 0.999,
    discriminator_loss_kwargs: Mapping[str, Any] | None = None,
    r1_gamma: float = 0.0,
) -> Callable[[GANState, Batch], tuple[GANState, Metrics]]:
    """Builds `train_step(state, batch) -> (state, metrics)` for the alternating GAN game.

    Args:
      generator_loss: `f(fake_logits) -> [B]`, e.g. `losses.non_saturating_generator_loss`.
      discriminator_loss: `f(real_logits, fake_logits, **kw) -> [B]`.
      sample_latent: `f(key, batch_size) -> z`; latents are drawn outside the modules.
      n_critic: discriminator updates per generator update (k in Algorithm 1).
      ema_decay: decay of the generator's parameter average, warmed up as
        min(ema_decay, (1 + t) / (10 + t)) so short runs are not dominated by the init;
        ignored when the state keeps no average.
      discriminator_loss_kwargs: static extras for the D loss (e.g. label_smoothing).
      r1_gamma: weight of the R1 penalty (Mescheder et al. 2018, arXiv:1801.04406): D
        minimises its loss plus `r1_gamma / 2 * mean ||grad_x D(x)||^2` over the real
        examples (`losses.r1_penalty`); 0 (the default) leaves it out of the program.

    Returns:
      A pure function of (state, batch), where batch["real"] is [n_critic, B, ...]. The D
      updates touch only D's params, optimizer state and statistics; the G update touches
      only G's (D runs in train mode there, but its statistic updates are discarded).
      Metrics are scalars: d/loss, d/real_logit, d/fake_logit, d/grad_norm (means over the
      n_critic updates), g/loss, g/fake_logit, g/grad_norm; with `r1_gamma > 0` also d/r1
      (the mean squared gradient norm, unweighted). d/loss is the adversarial loss alone.
    """
    if n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {n_critic}")
    if r1_gamma < 0:
        raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma}")
    d_kwargs = dict(discriminator_loss_kwargs or {})

    def d_update(state: GANState, xs):
        real, z_key = xs
        z = sample_latent(z_key, real.shape[0])
        # G in train mode, as in the G update, but its statistics belong to the G update.
        fake, _ = _apply(state.generator, state.g_params, state.g_batch_stats, z)
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(d_params):
            real_logits, stats = _apply(state.discriminator, d_params, state.d_batch_stats, real)
            fake_logits, stats = _apply(state.discriminator, d_params, stats, fake)
            loss = jnp.mean(discriminator_loss(real_logits, fake_logits, **d_kwargs))
            aux = {"loss": loss}
            if r1_gamma:
                # A third train-mode forward whose statistic updates are dropped.
                def d_fn(x):
                    return _apply(state.discriminator, d_params, state.d_batch_stats, x)[0]

                aux["r1"] = jnp.mean(r1_penalty(d_fn, real))
                loss = loss + 0.5 * r1_gamma * aux["r1"]
            return loss, (stats, real_logits, fake_logits, aux)

        (_, (stats, real_logits, fake_logits, aux)), grads = jax.value_and_grad(
            loss_fn, has_aux=True
        )(state.d_params)
        updates, d_opt_state = state.d_tx.update(grads, state.d_opt_state, state.d_params)
        state = state.replace(
            d_params=optax.apply_updates(state.d_params, updates),
            d_opt_state=d_opt_state,
            d_batch_stats=stats,
        )
        metrics = {
            **{f"d/{k}": v for k, v in aux.items()},
            "d/real_logit": _mean_logit(real_logits),
            "d/fake_logit": _mean_logit(fake_logits),
            "d/grad_norm": optax.global_norm(grads),
        }
        return state, metrics

    def g_update(state: GANState, z_key: jax.Array, batch_size: int):
        z = sample_latent(z_key, batch_size)

        def loss_fn(g_params):
            fake, stats = _apply(state.generator, g_params, state.g_batch_stats, z)
            fake_logits, _ = _apply(state.discriminator, state.d_params, state.d_batch_stats, fake)
            return jnp.mean(generator_loss(fake_logits)), (stats, fake_logits)

        (loss, (stats, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.g_params
        )
        updates, g_opt_state = state.g_tx.update(grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        g_ema = state.g_ema_params
        if g_ema is not None:
            t = state.step.astype(jnp.float32)
            decay = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))
            g_ema = optax.incremental_update(g_params, g_ema, step_size=1.0 - decay)
        state = state.replace(
            g_params=g_params, g_opt_state=g_opt_state, g_batch_stats=stats, g_ema_params=g_ema
        )
        metrics = {
            "g/loss": loss,
            "g/fake_logit": _mean_logit(fake_logits),
            "g/grad_norm": optax.global_norm(grads),
        }
        return state, metrics

    def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
        real = batch["real"]
        if real.shape[0] != n_critic:
            raise ValueError(
                f"batch['real'] must have a leading axis of n_critic={n_critic} "
                f"minibatches, got shape {real.shape}"
            )
        model_key, _ = stream_keys(state.key)
        step_key = jax.random.fold_in(model_key, state.step)
        d_keys = jax.random.split(jax.random.fold_in(step_key, 0), n_critic)
        g_key = jax.random.fold_in(step_key, 1)
        # A static Python loop, not lax.scan: n_critic is small, and XLA:CPU runs
        # convolutions inside a while loop several times slower (see make_train_chunk).
        d_metrics = []
        for i in range(n_critic):
            state, metrics = d_update(state, (real[i], d_keys[i]))
            d_metrics.append(metrics)
        state, g_metrics = g_update(state, g_key, real.shape[1])
        metrics = {k: jnp.mean(jnp.stack([m[k] for m in d_metrics])) for k in d_metrics[0]}
        metrics |= g_metrics
        return state.replace(step=state.step + 1), metrics

    return train_step


def make_train_chunk(
    train_step: Callable[[GANState, Batch], tuple[GANState, Metrics]],
    batch_fn: BatchFn,
    num_steps: int,
    *,
    mesh: Mesh | None = None,
    batch_axis: int = 1,
    unroll: int | bool | None = None,
) -> Callable[[GANState, Any], tuple[GANState, Metrics]]:
    """Fuses `num_steps` train steps into one jitted program: `chunk(state, data)`.

    Args:
      train_step: from `make_train_step`.
      batch_fn: `f(data, data_key, step) -> batch`, run on the device inside the program;
        deterministic in (data_key, step), so a resumed run sees the same batches.
      num_steps: K, the steps per dispatch.
      mesh: if given, each drawn batch is sharded along `batch_axis` over the mesh's 'data'
        axis (the state and `data` should be replicated on it).
      batch_axis: the example axis of the batch leaves (1: after the n_critic axis).
      unroll: `lax.scan`'s unroll; None means 1 (a rolled loop). XLA:CPU used to run
        convolution gradients inside a while loop many times slower than at top level, and
        None picked full unrolling there; gen_jax's models now write those gradients as
        canonical convolutions (`gen_jax.nn.conv`), and a rolled 28x28 DCGAN step (batch
        64) costs what an unrolled one does (`python -m benchmarks.xla_cpu_pitfalls`: 0.51
        against 0.48 s/step on one core), with compile time that no longer grows with
        `num_steps`. Models built on plain `flax.linen.Conv` may still want `unroll=True`
        on the CPU.

    Returns:
      `chunk(state, data) -> (state, metrics)` with metrics stacked to [num_steps]; the input
      state's buffers are donated.
    """

    def body(data, state, _):
        _, data_key = stream_keys(state.key)
        batch = parallel.constrain_batch(batch_fn(data, data_key, state.step), mesh, batch_axis)
        return train_step(state, batch)

    if unroll is None:
        unroll = 1

    def chunk(state, data):
        return jax.lax.scan(
            functools.partial(body, data), state, None, length=num_steps, unroll=unroll
        )

    return jax.jit(chunk, donate_argnums=0)
