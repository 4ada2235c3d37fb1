"""The engine beyond the two-player GAN: three players, joint phases, the objective's own
state, conditions in the batch, the one-player step, and what a family gets wrong.

The classic G/D game is tested in test_gan_steps.py; the sharded step of the three-player
family on 8 fake devices in tests/test_parallel.py.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import three_players as bigan

from gen_jax import losses
from gen_jax.train import (
    Nets,
    Phase,
    PlayerSpec,
    create_gan_state,
    create_train_state,
    make_gan_step,
    make_train_chunk,
    make_train_step,
    run_phase,
)

B = 8


def _leaves_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _any_leaf_differs(a, b):
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _batch(seed, n_critic=1):
    real = bigan.sample_data(jax.random.PRNGKey(seed), n_critic * B)
    return {"real": real.reshape(n_critic, B, bigan.DIM)}


# --- Three players: each update leaves the others bit-identical. ---------------------------


@pytest.mark.parametrize("separate", [False, True], ids=["g+e jointly", "g, e apart"])
def test_each_phase_changes_only_its_own_players(separate):
    state = bigan.make_state()
    players, batch = state.players, jax.tree.map(lambda x: x[0], _batch(1))
    key = jax.random.PRNGKey(3)
    run = jax.jit(
        lambda phase_index, players: run_phase(
            bigan.phases(separate)[phase_index],
            players,
            {},
            batch,
            key,
            jnp.int32(0),
            ema_decay=0.999,
        )[0],
        static_argnums=0,
    )
    for index, phase in enumerate(bigan.phases(separate)):
        new = run(index, players)
        for name, before in players.items():
            after = new[name]
            if name in phase.players:
                assert _any_leaf_differs(after.params, before.params), (phase.name, name)
                assert int(after.opt_state[0].count) == 1, (phase.name, name)
            else:
                # Neither its parameters, nor its optimizer, nor its statistics, nor its EMA.
                _leaves_equal(after.params, before.params)
                _leaves_equal(after.opt_state, before.opt_state)
                _leaves_equal(after.collections, before.collections)
                _leaves_equal(after.ema_params, before.ema_params)
        # D's collection (spectral norm's vectors) moves only in D's own phase; the others
        # run D in train mode too, and drop what it would store.
        d_stats_moved = _any_leaf_differs(new["d"].collections, players["d"].collections)
        assert d_stats_moved == (phase.name == "d")


def test_three_player_step_counts_each_optimizer_and_namespaces_metrics():
    state = bigan.make_state()
    step = jax.jit(chex.assert_max_traces(make_gan_step(bigan.phases(), n_critic=2), n=1))
    new, metrics = step(state, _batch(1, n_critic=2))
    new, metrics = step(new, _batch(2, n_critic=2))  # No retrace.
    assert int(new.step) == 2
    assert int(new["d"].opt_state[0].count) == 4  # n_critic per step
    assert int(new["g"].opt_state[0].count) == int(new["e"].opt_state[0].count) == 2
    assert set(metrics) == {
        "d/loss",
        "d/real_logit",
        "d/fake_logit",
        "d/grad_norm",
        "ge/loss",
        "ge/grad_norm",
        "ge/g_grad_norm",
        "ge/e_grad_norm",
    }
    chex.assert_tree_all_finite(metrics)
    # The joint phase's norm is the norm of both players' gradients together.
    np.testing.assert_allclose(
        metrics["ge/grad_norm"] ** 2,
        metrics["ge/g_grad_norm"] ** 2 + metrics["ge/e_grad_norm"] ** 2,
        rtol=1e-5,
    )
    np.testing.assert_array_equal(new.key, state.key)


def test_three_player_family_trains_through_the_engine():
    # BiGAN on N((2, -1), 0.3^2 I): after 600 steps G's samples sit on the data, from an
    # init 2.5 away. (E(G(z)) against z is left unasserted: BiGAN's inversion this early
    # is too noisy to pin, 0.3 to 0.6 correlation across seeds.)
    state = bigan.make_state(batch=64)
    z = jax.random.normal(jax.random.PRNGKey(9), (2000, bigan.DIM))
    target = np.asarray(bigan.DATA_MEAN)
    assert np.linalg.norm(np.mean(state.generate(z), 0) - target) > 1.5

    def batch_fn(data, key, step):
        return {"real": bigan.sample_data(jax.random.fold_in(key, step), 64)[None]}

    chunk = make_train_chunk(make_gan_step(bigan.phases()), batch_fn, 600)
    trained, metrics = chunk(state, None)
    chex.assert_tree_all_finite(metrics)
    x = np.asarray(trained.generate(z))
    assert np.linalg.norm(x.mean(0) - target) < 0.3, x.mean(0)
    assert np.all((0.05 < x.std(0)) & (x.std(0) < 1.0)), x.std(0)
    assert _any_leaf_differs(trained["e"].params, state["e"].params)


# --- The objective's own state. ------------------------------------------------------------


def _controller(extra, outcome):
    """A BEGAN-like controller: k <- clip(k + 0.1 * (loss - 1), 0, 1); counts its updates."""
    k = jnp.clip(extra["k"] + 0.1 * (outcome.metrics["loss"] - 1.0), 0.0, 1.0)
    return {"k": k, "updates": extra["updates"] + 1}


def _k_weighted_d_term(nets, batch, key, aux):
    loss, metrics = bigan.d_term(nets, batch, key, aux)
    return (1.0 + aux["extra"]["k"]) * loss, metrics  # The terms read the state...


def test_objective_state_is_updated_after_its_phase_and_read_by_the_terms():
    d = Phase(
        "d",
        ("d",),
        (_k_weighted_d_term,),
        setup=bigan.bigan_setup,
        per_draw=True,
        update_extra=_controller,  # ... and the phase updates it.
    )
    ge = bigan.phases()[1]
    state = bigan.make_state().replace(extra={"k": jnp.float32(0.5), "updates": jnp.int32(0)})
    step = jax.jit(make_gan_step((d, ge), n_critic=3))
    new, metrics = step(state, _batch(1, n_critic=3))
    assert int(new.extra["updates"]) == 3  # Once per critic update.
    # d/loss is the mean over the 3 updates; k moved by 0.1 * sum(loss_i - 1), clipped.
    k = float(new.extra["k"])
    assert 0.0 <= k <= 1.0 and k != 0.5
    if 0.0 < k < 1.0:
        np.testing.assert_allclose(k, 0.5 + 0.3 * (float(metrics["d/loss"]) - 1.0), rtol=1e-5)
    # A different k changes D's update: the terms see it.
    other, _ = step(
        state.replace(extra={"k": jnp.float32(0.0), "updates": jnp.int32(0)}), _batch(1, n_critic=3)
    )
    assert _any_leaf_differs(other["d"].params, new["d"].params)


# --- The whole batch reaches the modules. --------------------------------------------------


class LabelledCritic(nn.Module):
    """D(x, labels): a logit from the features plus a learned per-class offset."""

    @nn.compact
    def __call__(self, x, labels, *, train: bool = False):
        del train
        return nn.Dense(1)(x)[:, 0] + nn.Embed(3, 1)(labels)[:, 0]


def test_conditions_in_the_batch_reach_the_modules():
    state = create_gan_state(
        jax.random.PRNGKey(0),
        {
            "d": PlayerSpec(
                LabelledCritic(),
                optax.sgd(0.1),
                (jnp.zeros((B, 2)),),
                {"labels": jnp.zeros((B,), jnp.int32)},
            )
        },
    )

    def term(nets, batch, key, aux):
        logits = nets("d", batch["real"], labels=batch["label"])
        loss = jnp.mean(losses.non_saturating_generator_loss(logits))
        return loss, {"loss": loss}

    step = jax.jit(make_gan_step([Phase("d", ("d",), (term,))]))
    real = jnp.ones((1, B, 2))
    init = np.asarray(state["d"].params["Embed_0"]["embedding"])
    for label in (0, 2):
        new, _ = step(state, {"real": real, "label": jnp.full((1, B), label, jnp.int32)})
        table = np.asarray(new["d"].params["Embed_0"]["embedding"])
        moved = [c for c in range(3) if table[c] != init[c]]
        assert moved == [label]  # Only the class the batch named.


# --- Nets. ---------------------------------------------------------------------------------


def test_nets_thread_statistics_and_can_leave_them_alone():
    state = bigan.make_state()
    d = state["d"]
    x = bigan.sample_data(jax.random.PRNGKey(0), B)
    nets = Nets(state.players, {n: p.params for n, p in state.players.items()})
    nets("d", x, x, update_stats=False)
    _leaves_equal(nets.collections["d"], d.collections)
    nets("d", x, x)
    once = nets.collections["d"]
    assert _any_leaf_differs(once, d.collections)
    nets("d", x, x)
    assert _any_leaf_differs(nets.collections["d"], once)  # The second pass starts from the first.
    assert nets.collections["g"] == state["g"].collections == {}  # No collections, none made.
    with pytest.raises(KeyError, match=r"'q'.*\['d', 'e', 'g'\]"):
        nets("q", x)


# --- What a family can get wrong. ----------------------------------------------------------


def test_bad_phases_are_refused_with_their_names():
    with pytest.raises(ValueError, match="updates no player"):
        Phase("d", (), (bigan.d_term,))
    with pytest.raises(ValueError, match="no loss term"):
        Phase("d", ("d",), ())
    with pytest.raises(ValueError, match="twice"):
        Phase("d", ("d", "d"), (bigan.d_term,))
    with pytest.raises(ValueError, match="at least one phase"):
        make_gan_step(())
    with pytest.raises(ValueError, match="n_critic"):
        make_gan_step(bigan.phases(), n_critic=0)
    d = bigan.phases()[0]
    with pytest.raises(ValueError, match="names must differ"):
        make_gan_step((d, d))
    state = bigan.make_state()
    step = make_gan_step((Phase("q", ("q",), (bigan.d_term,)),))
    with pytest.raises(KeyError, match=r"'q'.*not players"):
        step(state, _batch(1))

    def clashing(nets, batch, key, aux):
        return jnp.float32(0.0), {"loss": jnp.float32(0.0)}

    step = make_gan_step((Phase("d", ("d",), (bigan.d_term, clashing), setup=bigan.bigan_setup),))
    with pytest.raises(ValueError, match=r"two terms report metrics \['loss'\]"):
        step(state, _batch(1))


def test_terms_get_distinct_keys():
    seen = []

    def term(nets, batch, key, aux):
        seen.append(key)
        return jnp.float32(0.0) * jnp.sum(nets("g", batch["real"])), {}

    def setup(nets, batch, key, extra):
        seen.append(key)
        return {}

    phase = Phase("g", ("g",), (term, term, term), setup=setup)
    run_phase(
        phase,
        bigan.make_state().players,
        {},
        {"real": jnp.zeros((B, 2))},
        jax.random.PRNGKey(0),
        jnp.int32(0),
        ema_decay=0.9,
    )
    data = {tuple(np.asarray(k).ravel()) for k in seen}
    assert len(seen) == 4 and len(data) == 4


# --- The one-player step (classifier, VAE, PixelCNN, LSTM). -------------------------------


class DropoutNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(16)(x))
        h = nn.Dropout(0.5, deterministic=not train)(nn.relu(h))
        return nn.Dense(3)(h)


def _xent(nets, batch, key, aux):
    logits = nets("model", batch["x"], rngs={"dropout": key})
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))
    return loss, {"loss": loss}


def _one_player_state(use_ema=False):
    spec = PlayerSpec(DropoutNet(), optax.adam(1e-2), (jnp.zeros((B, 4)),), use_ema=use_ema)
    return create_train_state(jax.random.PRNGKey(0), spec)


def test_one_player_step_updates_params_stats_and_ema_and_never_retraces():
    state = _one_player_state(use_ema=True)
    step = jax.jit(chex.assert_max_traces(make_train_step(_xent), n=1))
    batch = {"x": jax.random.normal(jax.random.PRNGKey(1), (B, 4)), "y": jnp.arange(B) % 3}
    new, metrics = step(state, batch)
    new2, metrics2 = step(new, batch)
    assert set(metrics) == {"train/loss", "train/grad_norm"}
    assert int(new2.step) == 2 and int(new2.model.opt_state[0].count) == 2
    assert _any_leaf_differs(new.params, state.params)
    assert _any_leaf_differs(new.model.collections, state.model.collections)
    assert _any_leaf_differs(new.model.ema_params, new.params)
    # Same batch, next step: a fresh dropout key (fold_in(key, step)) gives another loss.
    assert float(metrics["train/loss"]) != float(metrics2["train/loss"])
    a, _ = step(state, batch)
    _leaves_equal(a, new)  # Deterministic in (state, batch).
    chex.assert_shape(new.apply(batch["x"]), (B, 3))


def test_one_player_step_sums_several_terms():
    def l2(nets, batch, key, aux):
        penalty = 1e-2 * sum(jnp.sum(p**2) for p in jax.tree.leaves(nets.params["model"]))
        return penalty, {"l2": penalty}

    state = _one_player_state()
    batch = {"x": jnp.ones((B, 4)), "y": jnp.zeros((B,), jnp.int32)}
    _, metrics = jax.jit(make_train_step(_xent, l2, name="fit"))(state, batch)
    assert set(metrics) == {"fit/loss", "fit/l2", "fit/total", "fit/grad_norm"}
    np.testing.assert_allclose(
        metrics["fit/total"], metrics["fit/loss"] + metrics["fit/l2"], rtol=1e-6
    )
