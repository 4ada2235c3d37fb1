"""The explicit state pytrees of every training regime.

A *player* is one network with its optimizer: its parameters, its optax state, its other
variable collections (batch-norm statistics, spectral-norm vectors) and, when kept, the
exponential moving average of its parameters. Modules and optax transformations are
static fields, never leaves.

`GANState` holds the named players of an adversarial game (``g`` and ``d``; ``e``, ``q``,
``g_ab``, ``g_ba``... where a family needs them), the state its objective owns (BEGAN's
k_t, an image pool, a historical average) in ``extra``, the step counter and the run's
base PRNG key. `TrainState` is the same for one player (a classifier, a VAE, PixelCNN, an
LSTM). Batches of small datasets are drawn from (key, step) inside the compiled step, so
the step counter is also the data cursor, and one checkpoint of either pytree is a
complete checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

PyTree = Any

__all__ = [
    "GANState",
    "Player",
    "PlayerSpec",
    "TrainState",
    "create_gan_state",
    "create_player",
    "create_train_state",
    "stream_keys",
]


class Player(struct.PyTreeNode):
    """One network of a training regime, with its own optimizer.

    Attributes:
      params: the network's parameters.
      opt_state: its optax state.
      collections: its other Flax variable collections ({} when it has none), e.g.
        ``{"batch_stats": ...}``; train-mode passes update them.
      ema_params: exponential moving average of ``params`` (Yazici et al. 2019,
        arXiv:1806.04498), or None when the run keeps none for this player.
      module: the Flax module (static); its ``__call__`` takes ``train=`` as a keyword.
      tx: the optax transformation (static).
    """

    params: PyTree
    opt_state: PyTree
    collections: PyTree
    ema_params: PyTree
    module: nn.Module = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def variables(self, *, use_ema: bool = False) -> dict[str, PyTree]:
        """The Flax variables, with the EMA parameters when asked for and kept."""
        params = self.ema_params if (use_ema and self.ema_params is not None) else self.params
        return {"params": params, **self.collections}

    def apply(self, *args, use_ema: bool = False, **kwargs) -> Any:
        """An inference-mode forward pass (``train=False``: running statistics)."""
        return self.module.apply(self.variables(use_ema=use_ema), *args, train=False, **kwargs)


@dataclasses.dataclass(frozen=True)
class PlayerSpec:
    """What `create_gan_state` needs to initialise one player.

    Attributes:
      module: the Flax module.
      tx: its optax transformation.
      inputs: example positional inputs for ``module.init`` (values unused, shapes and
        dtypes matter), e.g. ``(z,)`` for a generator, ``(x,)`` for a discriminator.
      kwargs: example keyword inputs (``{"labels": y}`` for a conditional network).
      use_ema: keep an exponential moving average of the parameters.
    """

    module: nn.Module
    tx: optax.GradientTransformation
    inputs: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    use_ema: bool = False


def create_player(key: jax.Array, spec: PlayerSpec) -> Player:
    """Initialises one player (in inference mode) from `key`."""
    variables = spec.module.init(key, *spec.inputs, train=False, **dict(spec.kwargs))
    variables = dict(variables)
    params = variables.pop("params")
    return Player(
        params=params,
        opt_state=spec.tx.init(params),
        collections=variables,
        ema_params=jax.tree.map(jnp.copy, params) if spec.use_ema else None,
        module=spec.module,
        tx=spec.tx,
    )


class GANState(struct.PyTreeNode):
    """The named players of an adversarial game, the state its objective owns, and the step.

    Attributes:
      step: int32 scalar, number of whole steps done (and the data cursor).
      key: the run's base PRNG key; constant, per-step keys are `fold_in(key, step)`.
      players: ``{name: Player}``.
      extra: the objective's own state (a pytree, ``{}`` when it has none).
    """

    step: jax.Array
    key: jax.Array
    players: dict[str, Player]
    extra: PyTree

    def __getitem__(self, name: str) -> Player:
        return self.players[name]

    def apply(self, name: str, *args, use_ema: bool = True, **kwargs) -> Any:
        """Player `name` in inference mode, from its EMA parameters when it keeps them."""
        return self.players[name].apply(*args, use_ema=use_ema, **kwargs)

    def generate(self, *args, use_ema: bool = True, **kwargs) -> jax.Array:
        """Samples ``G(z, ...)``: player ``g`` in inference mode, from its EMA if kept."""
        return self.apply("g", *args, use_ema=use_ema, **kwargs)


class TrainState(struct.PyTreeNode):
    """One player, its step and its key: the state of likelihood and supervised models.

    Attributes:
      step: int32 scalar, updates done (and the data cursor).
      key: the run's base key; dropout and data keys are derived from (key, step).
      model: the `Player`.
      extra: the objective's own state (``{}`` when it has none).
    """

    step: jax.Array
    key: jax.Array
    model: Player
    extra: PyTree

    @property
    def params(self) -> PyTree:
        return self.model.params

    @property
    def variables(self) -> dict[str, PyTree]:
        return self.model.variables()

    def apply(self, *args, use_ema: bool = False, **kwargs) -> Any:
        """The model in inference mode."""
        return self.model.apply(*args, use_ema=use_ema, **kwargs)


def stream_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits a run's base key into the (model, data) streams, so they never share keys."""
    model_key, data_key = jax.random.split(key)
    return model_key, data_key


def create_gan_state(
    key: jax.Array, players: Mapping[str, PlayerSpec], *, extra: PyTree = None
) -> GANState:
    """Initialises every player and the run's base key from one key.

    Args:
      key: PRNG key, split into one init key per player (in the order of `players`) and,
        last, the run's base key.
      players: ``{name: PlayerSpec}``, e.g. ``{"g": ..., "d": ...}``.
      extra: the objective's initial state (None: ``{}``).

    Returns:
      A `GANState` at step 0.
    """
    if not players:
        raise ValueError("players must name at least one player, got none")
    *init_keys, run_key = jax.random.split(key, len(players) + 1)
    return GANState(
        step=jnp.zeros((), jnp.int32),
        key=run_key,
        players={
            name: create_player(k, spec) for k, (name, spec) in zip(init_keys, players.items())
        },
        extra={} if extra is None else extra,
    )


def create_train_state(key: jax.Array, spec: PlayerSpec, *, extra: PyTree = None) -> TrainState:
    """Initialises one player and the run's base key: ``init_key, run_key = split(key)``."""
    init_key, run_key = jax.random.split(key)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        key=run_key,
        model=create_player(init_key, spec),
        extra={} if extra is None else extra,
    )
