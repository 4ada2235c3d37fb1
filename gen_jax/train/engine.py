"""The training engine: players updated in phases by sums of pure loss terms.

A family of models states *what* it optimises; the engine owns *how*. A family supplies

* its players (`gen_jax.train.state.Player`: module, optax transformation, parameters),
* an ordered tuple of `Phase`s. A phase names the players it updates and the loss terms
  they minimise together, e.g. for a GAN ``Phase("d", ("d",), (adversarial, r1))`` then
  ``Phase("g", ("g",), (adversarial,))``; for InfoGAN the second phase updates
  ``("g", "q")`` jointly; for a classifier there is one phase of one player.

A *term* is a pure function ``term(nets, batch, key, aux) -> (loss, metrics)``:

* ``nets`` (`Nets`) runs any player in train mode, ``nets("d", x)``, with the parameters
  being differentiated for the players the phase updates and fixed ones for the others;
* ``batch`` is the whole batch dict (images, labels, conditions) of this update;
* ``key`` is the term's own PRNG key;
* ``aux`` holds what the phase's ``setup`` computed once for all its terms (the latents
  and the generated batch, say) and, under ``"extra"``, the objective's own state.

It returns a scalar loss (the engine sums the terms) and a flat dict of scalar metrics,
which the engine prefixes with the phase's name (``d/loss``, ``d/r1``). Penalties and
tricks are terms, never flags of the step.

The engine does the rest: gradients of the phase's summed loss with respect to exactly its
players' parameters, each player's own optax update, batch statistics (a player's
collections change only in the phases that update it; forwards of the other players run
in train mode and their updates are dropped), parameter EMAs, the objective's state
(``update_extra``), per-step keys derived by `jax.random.fold_in`, and metrics.
`make_gan_step` assembles the alternating game from phases; `gen_jax.train.steps`
gives the one-player step and the fusion of K steps into one program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gen_jax.train.state import GANState, Player, stream_keys

PyTree = Any
Batch = Mapping[str, Any]
Metrics = dict[str, jax.Array]

__all__ = [
    "Nets",
    "Phase",
    "PhaseOutcome",
    "make_gan_step",
    "run_phase",
]


class Nets:
    """Train-mode forward passes of every player, as the terms of one phase see them.

    Calling ``nets(name, *args, **kwargs)`` applies player `name` with ``train=True`` and
    the parameters of this phase (being differentiated for the players it updates). Its
    collections (batch statistics) thread through the calls in order: the second call of
    a player sees the statistics the first one left, as consecutive forwards of one
    network do in PyTorch. ``update_stats=False`` runs a forward whose statistic updates
    are dropped (a penalty's extra pass, say). Created by the engine inside the traced
    loss, so its bookkeeping is part of the traced computation, not hidden state.
    """

    def __init__(self, players: Mapping[str, Player], params: Mapping[str, PyTree]):
        self._players = players
        self.params = dict(params)
        self.collections = {name: p.collections for name, p in players.items()}

    def __contains__(self, name: str) -> bool:
        return name in self._players

    def module(self, name: str):
        """Player `name`'s Flax module."""
        return self._player(name).module

    def _player(self, name: str) -> Player:
        if name not in self._players:
            raise KeyError(f"no player {name!r}; the players are {sorted(self._players)}")
        return self._players[name]

    def __call__(self, name: str, *args, update_stats: bool = True, **kwargs) -> Any:
        """Player `name` in train mode on `args` with this phase's parameters."""
        self._player(name)
        return self.apply(name, self.params[name], *args, update_stats=update_stats, **kwargs)

    def apply(self, name: str, params: PyTree, *args, update_stats: bool = True, **kwargs) -> Any:
        """Player `name` in train mode with explicit `params` (an unrolled look-ahead, say)."""
        player = self._player(name)
        collections = self.collections[name]
        variables = {"params": params, **collections}
        if not collections:
            return player.module.apply(variables, *args, train=True, **kwargs)
        out, updates = player.module.apply(
            variables, *args, train=True, mutable=list(collections), **kwargs
        )
        if update_stats:
            self.collections[name] = {**collections, **updates}
        return out


Term = Callable[[Nets, Batch, jax.Array, dict], tuple[jax.Array, Metrics]]
Setup = Callable[[Nets, Batch, jax.Array, PyTree], dict]


class PhaseOutcome(NamedTuple):
    """What a phase's ``update_extra`` sees after the phase's update.

    Attributes:
      aux: the phase's setup values (with gradients stopped).
      metrics: the phase's metrics, unprefixed (``{"loss": ..., "r1": ...}``).
      players: every player after the update.
      key: a key of its own (``fold_in(phase key, number of terms + 1)``).
    """

    aux: dict
    metrics: Metrics
    players: dict[str, Player]
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class Phase:
    """One update: `players` take one optimizer step each on the sum of `terms`.

    Attributes:
      name: the metrics' namespace (``"d"`` gives ``d/loss``).
      players: the names of the players this phase updates (jointly, on one loss).
      terms: the loss terms, ``term(nets, batch, key, aux) -> (loss, metrics)``.
      setup: ``setup(nets, batch, key, extra) -> dict``, run once before the terms inside
        the differentiated loss (so a generator's output keeps its gradient in the
        generator's phase); its dict becomes the terms' ``aux``. It gets the phase key;
        term j gets ``fold_in(phase key, j + 1)``.
      per_draw: run once per minibatch draw of the batch (the critic's ``n_critic``
        updates of Algorithm 1, each on its own draw and key) instead of once on the last.
      update_extra: ``update_extra(extra, outcome: PhaseOutcome) -> extra``, the
        objective's own state after this phase (BEGAN's k_t, an image pool).
    """

    name: str
    players: tuple[str, ...]
    terms: tuple[Term, ...]
    setup: Setup | None = None
    per_draw: bool = False
    update_extra: Callable[[PyTree, PhaseOutcome], PyTree] | None = None

    def __post_init__(self):
        object.__setattr__(self, "players", tuple(self.players))
        object.__setattr__(self, "terms", tuple(self.terms))
        if not self.players:
            raise ValueError(f"phase {self.name!r} updates no player")
        if len(set(self.players)) != len(self.players):
            raise ValueError(f"phase {self.name!r} names a player twice: {self.players}")
        if not self.terms:
            raise ValueError(f"phase {self.name!r} has no loss term")


def _ema(player: Player, params: PyTree, step: jax.Array, decay: float) -> PyTree:
    """The player's parameter average after an update, warmed up as min(decay, (1+t)/(10+t))."""
    if player.ema_params is None:
        return None
    t = step.astype(jnp.float32)
    rate = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    return optax.incremental_update(params, player.ema_params, step_size=1.0 - rate)


def run_phase(
    phase: Phase,
    players: dict[str, Player],
    extra: PyTree,
    batch: Batch,
    key: jax.Array,
    step: jax.Array,
    *,
    ema_decay: float,
    term_keys: Sequence[jax.Array] | None = None,
) -> tuple[dict[str, Player], PyTree, Metrics]:
    """One phase's update of its players; the others come back unchanged (the same objects).

    Args:
      phase: the `Phase`.
      players: every player, ``{name: Player}``.
      extra: the objective's state (read by setup and terms, updated by ``update_extra``).
      batch: this update's batch dict.
      key: the phase key (setup's; term j's is ``fold_in(key, j + 1)``, unless given).
      step: the step counter (for the EMA warm-up).
      ema_decay: the decay of every kept parameter average.
      term_keys: one key per term, overriding the derived ones.

    Returns:
      (players, extra, metrics): metrics unprefixed, with ``grad_norm`` (of all updated
      players' gradients together) and, for a phase of several players, one
      ``<player>_grad_norm`` each; ``total`` when the phase sums several terms.
    """
    unknown = [n for n in phase.players if n not in players]
    if unknown:
        raise KeyError(
            f"phase {phase.name!r} updates {unknown}, which are not players; the players "
            f"are {sorted(players)}"
        )
    if term_keys is None:
        term_keys = [jax.random.fold_in(key, j + 1) for j in range(len(phase.terms))]
    if len(term_keys) != len(phase.terms):
        raise ValueError(f"{len(term_keys)} term keys for {len(phase.terms)} terms")

    def loss_fn(trained):
        nets = Nets(players, {n: trained.get(n, p.params) for n, p in players.items()})
        aux = {"extra": extra}
        if phase.setup is not None:
            aux |= phase.setup(nets, batch, key, extra)
        losses, metrics = [], {}
        for term, term_key in zip(phase.terms, term_keys):
            loss, term_metrics = term(nets, batch, term_key, aux)
            clash = set(term_metrics) & set(metrics)
            if clash:
                raise ValueError(f"phase {phase.name!r}: two terms report metrics {sorted(clash)}")
            losses.append(loss)
            metrics |= term_metrics
        total = losses[0]
        for loss in losses[1:]:
            total = total + loss
        if len(losses) > 1:
            metrics["total"] = total
        return total, (nets.collections, aux, metrics)

    trained = {n: players[n].params for n in phase.players}
    (_, (collections, aux, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trained)
    new_players = dict(players)
    for name in phase.players:
        player = players[name]
        updates, opt_state = player.tx.update(grads[name], player.opt_state, player.params)
        params = optax.apply_updates(player.params, updates)
        new_players[name] = player.replace(
            params=params,
            opt_state=opt_state,
            collections=collections[name],
            ema_params=_ema(player, params, step, ema_decay),
        )
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.tree.norm(grads)
    if len(phase.players) > 1:
        for name in phase.players:
            metrics[f"{name}_grad_norm"] = optax.tree.norm(grads[name])
    if phase.update_extra is not None:
        outcome = PhaseOutcome(
            aux=jax.lax.stop_gradient({k: v for k, v in aux.items() if k != "extra"}),
            metrics=metrics,
            players=new_players,
            key=jax.random.fold_in(key, len(phase.terms) + 1),
        )
        extra = phase.update_extra(extra, outcome)
    return new_players, extra, metrics


def _draws(batch: Batch, n_critic: int) -> None:
    """Checks that every batch leaf has the leading axis of n_critic minibatch draws."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_critic:
            name = jax.tree_util.keystr(path)
            raise ValueError(
                f"batch{name} must have a leading axis of n_critic={n_critic} minibatch "
                f"draws, got shape {jnp.shape(leaf)}"
            )


def make_gan_step(
    phases: Sequence[Phase],
    *,
    n_critic: int = 1,
    ema_decay: float = 0.999,
) -> Callable[[GANState, Batch], tuple[GANState, Metrics]]:
    """Builds ``train_step(state, batch) -> (state, metrics)`` for an alternating game.

    Algorithm 1 of Goodfellow et al. 2014 (arXiv:1406.2661) generalised: the phases run in
    order, each a gradient step of its players on its own terms; a ``per_draw`` phase (the
    critic) runs ``n_critic`` times, update i on minibatch draw i, and every other phase
    runs once, on the last draw.

    Keys: with ``step_key = fold_in(model stream of state.key, state.step)``, phase p's key
    is ``fold_in(step_key, p)``; a per-draw phase splits it into ``n_critic`` keys, one per
    update. Nothing is reused across updates, steps or terms.

    Args:
      phases: the `Phase`s, in the order they run.
      n_critic: minibatch draws per step: the leading axis of every batch leaf.
      ema_decay: decay of the players' parameter averages, warmed up as
        ``min(ema_decay, (1 + t) / (10 + t))`` so short runs are not dominated by the
        init; players without an average ignore it.

    Returns:
      A pure function of (state, batch): batch leaves are [n_critic, B, ...]. Metrics are
      scalars namespaced by phase (``d/loss``, ``g/grad_norm``); a per-draw phase's are
      means over its updates.

    Raises:
      ValueError: no phases, n_critic < 1, or two phases with one name (when built);
        batch leaves without the n_critic axis (when traced).
    """
    phases = tuple(phases)
    if not phases:
        raise ValueError("make_gan_step needs at least one phase")
    if n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {n_critic}")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must differ (they namespace the metrics), got {names}")

    def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
        _draws(batch, n_critic)
        model_key, _ = stream_keys(state.key)
        step_key = jax.random.fold_in(model_key, state.step)
        players, extra, metrics = dict(state.players), state.extra, {}
        for p, phase in enumerate(phases):
            phase_key = jax.random.fold_in(step_key, p)
            if phase.per_draw:
                # A static Python loop, not lax.scan: n_critic is small, and XLA:CPU runs
                # convolutions inside a while loop slower than at top level.
                keys = jax.random.split(phase_key, n_critic)
                runs = []
                for i in range(n_critic):
                    draw = jax.tree.map(lambda x, i=i: x[i], batch)
                    players, extra, m = run_phase(
                        phase, players, extra, draw, keys[i], state.step, ema_decay=ema_decay
                    )
                    runs.append(m)
                m = {k: jnp.mean(jnp.stack([r[k] for r in runs])) for k in runs[0]}
            else:
                draw = jax.tree.map(lambda x: x[-1], batch)
                players, extra, m = run_phase(
                    phase, players, extra, draw, phase_key, state.step, ema_decay=ema_decay
                )
            metrics |= {f"{phase.name}/{k}": v for k, v in m.items()}
        state = state.replace(step=state.step + 1, players=players, extra=extra)
        return state, metrics

    return train_step
