"""The one-player step, and the fusion of K steps of any regime into one XLA program.

`make_train_step` is the step of likelihood and supervised models (a classifier, a VAE,
PixelCNN, an LSTM): one player, one phase of the engine (`gen_jax.train.engine`), the
loss given as terms. `make_train_chunk` fuses K steps of any state (`GANState` or
`TrainState`) into one jitted `lax.scan`, drawing each step's batch on the device from a
dataset passed in as an argument, so the host dispatches once per K steps and the input
pipeline leaves the hot path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax.sharding import Mesh

from gen_jax import parallel
from gen_jax.train.engine import Phase, Term, run_phase
from gen_jax.train.state import TrainState, stream_keys

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
# batch_fn(data, data_key, step) -> batch.
BatchFn = Callable[[Any, jax.Array, jax.Array], Batch]

__all__ = ["BatchFn", "make_train_chunk", "make_train_step"]


def make_train_step(
    *terms: Term, name: str = "train", ema_decay: float = 0.999
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """Builds ``train_step(state, batch) -> (state, metrics)`` for one player.

    The player is called ``"model"`` in the terms' `Nets` (``nets("model", x,
    rngs={"dropout": key})``). Keys: with ``step_key = fold_in(model stream of state.key,
    state.step)``, a single term gets ``step_key`` itself and term j of several
    ``fold_in(step_key, j)``.

    Args:
      *terms: the loss terms, ``term(nets, batch, key, aux) -> (loss, metrics)``; the
        model minimises their sum.
      name: the metrics' namespace (``train/loss``).
      ema_decay: decay of the parameter average, when the state keeps one.

    Returns:
      A pure function of (state, batch); metrics are the terms' plus ``grad_norm``, under
      ``name/``.
    """
    phase = Phase(name, ("model",), terms)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        model_key, _ = stream_keys(state.key)
        step_key = jax.random.fold_in(model_key, state.step)
        if len(terms) == 1:
            keys = [step_key]
        else:
            keys = [jax.random.fold_in(step_key, j) for j in range(len(terms))]
        players, extra, metrics = run_phase(
            phase,
            {"model": state.model},
            state.extra,
            batch,
            step_key,
            state.step,
            ema_decay=ema_decay,
            term_keys=keys,
        )
        state = state.replace(step=state.step + 1, model=players["model"], extra=extra)
        return state, {f"{name}/{k}": v for k, v in metrics.items()}

    return train_step


def make_train_chunk(
    train_step: Callable[[Any, Batch], tuple[Any, Metrics]],
    batch_fn: BatchFn,
    num_steps: int,
    *,
    mesh: Mesh | None = None,
    batch_axis: int = 1,
    unroll: int | bool | None = None,
) -> Callable[[Any, Any], tuple[Any, Metrics]]:
    """Fuses `num_steps` train steps into one jitted program: `chunk(state, data)`.

    Args:
      train_step: from `make_gan_step` or `make_train_step`.
      batch_fn: `f(data, data_key, step) -> batch`, run on the device inside the program;
        deterministic in (data_key, step), so a resumed run sees the same batches.
      num_steps: K, the steps per dispatch.
      mesh: if given, each drawn batch is sharded along `batch_axis` over the mesh's 'data'
        axis (the state and `data` should be replicated on it).
      batch_axis: the example axis of the batch leaves (1 for the GAN step, after the
        n_critic axis; 0 for the one-player step).
      unroll: `lax.scan`'s unroll; None means 1 (a rolled loop). gen_jax's convolutions
        write their gradients in canonical form (`gen_jax.nn.xla_cpu`), so a rolled loop
        runs as fast as an unrolled one on XLA:CPU and compiles in time independent of
        `num_steps` (`python -m benchmarks.xla_cpu_pitfalls`); models built on plain
        `flax.linen.Conv` may still want `unroll=True` on the CPU.

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
