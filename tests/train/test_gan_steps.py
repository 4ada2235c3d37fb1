"""Tests for the alternating GAN step (make_gan_step over gan_phases) and its fused chunks.

Tiny shapes throughout (batch 8): the MLP pair where batch norm does not matter, the tiny
DCGAN pair where it does (the isolation of the two networks' batch statistics).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import losses
from gen_jax.data import epoch_batch_indices
from gen_jax.models.dcgan import TinyDCGANDiscriminator, TinyDCGANGenerator
from gen_jax.models.mlp_gan import TinyMLPDiscriminator, TinyMLPGenerator
from gen_jax.train import (
    PlayerSpec,
    create_gan_state,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    normal_latent,
    r1_term,
    stream_keys,
)

B = 8
LATENT = 4
METRIC_KEYS = {
    "d/loss",
    "d/real_logit",
    "d/fake_logit",
    "d/grad_norm",
    "g/loss",
    "g/fake_logit",
    "g/grad_norm",
}


def _frozen_adam():
    """Adam whose state advances on every update but whose updates are zeroed.

    Params stay bit-identical (p + 0 == p) while `count` records how many times the network's
    optimizer was stepped, so a leak of one half of the step into the other network's
    optimizer shows up as a wrong count.
    """
    return optax.chain(optax.scale_by_adam(), optax.set_to_zero())


def _gan_state(generator, discriminator, g_tx, d_tx, z, x, *, use_ema=True):
    return create_gan_state(
        jax.random.PRNGKey(0),
        {
            "g": PlayerSpec(generator, g_tx, (z,), use_ema=use_ema),
            "d": PlayerSpec(discriminator, d_tx, (x,)),
        },
    )


def _mlp_state(*, use_ema=True):
    return _gan_state(
        TinyMLPGenerator(out_dim=2),
        TinyMLPDiscriminator(),
        optax.adam(1e-2, b1=0.5),
        optax.adam(1e-2, b1=0.5),
        jnp.zeros((B, LATENT)),
        jnp.zeros((B, 2)),
        use_ema=use_ema,
    )


def _mlp_step(sample_latent=None, *, n_critic=1, ema_decay=0.999, d_terms=()):
    phases = gan_phases(
        losses.non_saturating_generator_loss,
        losses.minimax_discriminator_loss,
        sample_latent or normal_latent(LATENT),
        d_terms=d_terms,
    )
    return make_gan_step(phases, n_critic=n_critic, ema_decay=ema_decay)


def _real(seed, n_critic=1):
    return {"real": jax.random.normal(jax.random.PRNGKey(seed), (n_critic, B, 2))}


def _leaves_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _leaves_close(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def _any_leaf_differs(a, b):
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _copy(state):
    """A fresh copy of every leaf, for functions that donate their input."""
    return jax.tree.map(jnp.copy, state)


# --- The MLP step shared by the cheap tests: compiled once, latents recorded. ---------------

_SEEN_LATENTS: list[np.ndarray] = []


def _recording_latent(key, batch_size):
    """normal_latent that also reports every latent batch it draws to the host."""
    z = normal_latent(LATENT)(key, batch_size)
    jax.debug.callback(lambda z: _SEEN_LATENTS.append(np.asarray(z)), z)
    return z


@pytest.fixture(scope="module")
def mlp_step():
    """The jitted MLP step; asserts it is traced once for all the tests that share it."""
    return jax.jit(chex.assert_max_traces(_mlp_step(_recording_latent), n=1))


@pytest.fixture(scope="module")
def mlp_state():
    return _mlp_state()


def test_second_call_does_not_retrace(mlp_step, mlp_state):
    state, _ = mlp_step(mlp_state, _real(1))
    state, _ = mlp_step(state, _real(2))  # A retrace would raise AssertionError here.
    assert int(state.step) == 2


def test_metrics_are_finite_scalars_with_namespaced_keys(mlp_step, mlp_state):
    _, metrics = mlp_step(mlp_state, _real(1))
    assert set(metrics) == METRIC_KEYS
    for name, value in metrics.items():
        chex.assert_shape(value, (), custom_message=name)
        chex.assert_tree_all_finite(value)


def test_same_state_and_batch_give_the_same_result(mlp_step, mlp_state):
    a = mlp_step(mlp_state, _real(1))
    b = mlp_step(mlp_state, _real(1))
    _leaves_equal(a, b)


def test_no_latent_is_reused_within_or_across_steps(mlp_step, mlp_state):
    jax.effects_barrier()
    _SEEN_LATENTS.clear()
    state, _ = mlp_step(mlp_state, _real(1))
    state, _ = mlp_step(state, _real(1))  # Same real batch: only the step differs.
    jax.effects_barrier()
    # Per step one D update and one G update draw latents: 4 batches, all different.
    assert len(_SEEN_LATENTS) == 4
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(_SEEN_LATENTS[i], _SEEN_LATENTS[j]), (i, j)
    assert int(state.step) == 2


def test_consecutive_steps_update_both_networks(mlp_step, mlp_state):
    state1, _ = mlp_step(mlp_state, _real(1))
    state2, _ = mlp_step(state1, _real(1))
    for before, after in ((mlp_state, state1), (state1, state2)):
        assert _any_leaf_differs(before["g"].params, after["g"].params)
        assert _any_leaf_differs(before["d"].params, after["d"].params)
    np.testing.assert_array_equal(state2.key, mlp_state.key)  # The base key is constant.


def test_ema_warms_up_as_documented(mlp_step, mlp_state):
    state1, _ = mlp_step(mlp_state, _real(1))
    g0, g1 = mlp_state["g"], state1["g"]
    chex.assert_tree_all_finite(g1.ema_params)
    assert _any_leaf_differs(g1.ema_params, g1.params)
    assert state1["d"].ema_params is None  # Only the players that ask keep an average.
    # At t = 0 the decay is min(0.999, (1 + 0) / (10 + 0)) = 0.1.
    expected = jax.tree.map(lambda init, new: 0.1 * init + 0.9 * new, g0.ema_params, g1.params)
    _leaves_close(g1.ema_params, expected, rtol=1e-5, atol=1e-7)


def test_ema_decay_zero_tracks_params_and_use_ema_false_keeps_none():
    step = jax.jit(_mlp_step(ema_decay=0.0))
    state = _mlp_state()
    for seed in (1, 2):
        state, _ = step(state, _real(seed))
    _leaves_equal(state["g"].ema_params, state["g"].params)

    state = _mlp_state(use_ema=False)
    assert state["g"].ema_params is None
    for seed in (1, 2):
        state, metrics = step(state, _real(seed))
    assert state["g"].ema_params is None
    chex.assert_tree_all_finite(metrics)
    z = jax.random.normal(jax.random.PRNGKey(3), (B, LATENT))
    samples = state.generate(z)
    chex.assert_shape(samples, (B, 2))
    _leaves_equal(samples, state.generate(z, use_ema=False))


def test_stream_keys_are_distinct_and_deterministic():
    key = jax.random.PRNGKey(3)
    model_key, data_key = stream_keys(key)
    assert not np.array_equal(model_key, data_key)
    _leaves_equal(stream_keys(key), (model_key, data_key))


def test_n_critic_must_be_positive():
    with pytest.raises(ValueError, match="n_critic"):
        _mlp_step(n_critic=0)


def test_wrong_leading_axis_raises():
    step = _mlp_step(n_critic=3)
    with pytest.raises(ValueError, match=r"batch\['real'\].*n_critic=3"):
        step(_mlp_state(), _real(1, n_critic=2))
    with pytest.raises(ValueError, match="n_critic=3"):
        jax.jit(step)(_mlp_state(), _real(1, n_critic=1))


# --- Isolation of the two halves, on the tiny DCGAN (batch norm in both networks). ----------
#
# One step with n_critic=3 and *both* optimizers frozen (`_frozen_adam`), compiled once.
# What is asserted, and how:
#  * params, bit-identical: a frozen network must end the step with exactly its initial
#    params; its own update adds zeros, so any change would come from the other half.
#  * optimizer states: every optax update advances adam's `count`; D's must be exactly
#    n_critic = 3 and G's exactly 1, so neither half stepped the other network's optimizer.
#  * batch statistics: both halves run both networks in train mode, and by design each half
#    keeps only its own network's statistics. With latents that ignore the key (the same z in
#    both halves) and frozen params, the expected statistics are recomputed here: G's are one
#    train-mode forward of G from its initial statistics (the D half's G forwards must be
#    discarded); D's are the 3 (real, fake) forwards of the D half (the G half's D forward
#    must be discarded). The recomputation is a different XLA program, so these are allclose,
#    not bit-equal; one leaked forward moves the statistics by ~10% (momentum 0.9), which
#    `_assert_stats` checks is far above the tolerance.
#  * Not asserted here: that an unfrozen network does change (the MLP tests above), nor the
#    values of adam's moments against an independent recomputation.

DC_LATENT = 8
N_CRITIC = 3
_Z_FIXED = jax.random.normal(jax.random.PRNGKey(42), (B, DC_LATENT))


def _fixed_latent(key, batch_size):
    del key
    return _Z_FIXED[:batch_size]


def _train_forward(module, params, stats, x):
    out, updates = module.apply(
        {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
    )
    return out, updates["batch_stats"]


@jax.jit
def _expected_stats(state, real):
    """(G's, D's) batch statistics after one frozen step, and each with one leaked forward."""
    g, d = state["g"], state["d"]
    fake, g_stats = _train_forward(g.module, g.params, g.collections["batch_stats"], _Z_FIXED)
    _, g_stats_leaky = _train_forward(g.module, g.params, g_stats, _Z_FIXED)
    d_stats = d.collections["batch_stats"]
    for i in range(real.shape[0]):
        _, d_stats = _train_forward(d.module, d.params, d_stats, real[i])
        _, d_stats = _train_forward(d.module, d.params, d_stats, fake)
    _, d_stats_leaky = _train_forward(d.module, d.params, d_stats, fake)
    return g_stats, d_stats, g_stats_leaky, d_stats_leaky


def _assert_stats(new, expected, leaky):
    _leaves_close(new, expected, rtol=1e-5, atol=1e-6)
    leak = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(leaky))
    )
    assert leak > 1e-4  # The check has teeth.


def test_each_half_leaves_the_other_network_untouched():
    # Only the init's draws use the classic threefry: jax 0.10's default (partitionable)
    # threefry takes XLA:CPU seconds to compile for some conv-kernel shapes (7 s for bits
    # of shape (4, 4, 4, 8)), tripling this test's time; the step runs with the defaults.
    with jax.threefry_partitionable(False):
        state = _gan_state(
            TinyDCGANGenerator(),
            TinyDCGANDiscriminator(),
            _frozen_adam(),
            _frozen_adam(),
            jnp.zeros((B, DC_LATENT)),
            jnp.zeros((B, 28, 28, 1)),
            use_ema=False,
        )
    g0, d0 = state["g"], state["d"]
    # Both networks have batch norm.
    assert g0.collections["batch_stats"] and d0.collections["batch_stats"]
    real = jax.random.uniform(
        jax.random.PRNGKey(7), (N_CRITIC * B * 28 * 28,), minval=-1, maxval=1
    ).reshape(N_CRITIC, B, 28, 28, 1)
    step = _mlp_step(_fixed_latent, n_critic=N_CRITIC)
    new, metrics = jax.jit(step)(state, {"real": real})
    assert set(metrics) == METRIC_KEYS
    chex.assert_tree_all_finite(metrics)
    assert float(metrics["d/grad_norm"]) > 0 and float(metrics["g/grad_norm"]) > 0

    g1, d1 = new["g"], new["d"]
    _leaves_equal(g1.params, g0.params)
    _leaves_equal(d1.params, d0.params)
    assert int(d1.opt_state[0].count) == N_CRITIC
    assert int(g1.opt_state[0].count) == 1
    # The moments were written (the updates are zeroed after scale_by_adam, not before).
    assert _any_leaf_differs(g1.opt_state[0].mu, g0.opt_state[0].mu)
    assert _any_leaf_differs(d1.opt_state[0].mu, d0.opt_state[0].mu)

    g_stats, d_stats, g_leaky, d_leaky = _expected_stats(state, real)
    _assert_stats(g1.collections["batch_stats"], g_stats, g_leaky)
    _assert_stats(d1.collections["batch_stats"], d_stats, d_leaky)


# --- Chunks: K fused steps equal K dispatched steps. -----------------------------------------

N_DATA = 64


def _batch_fn(data, data_key, step):
    return {"real": data[epoch_batch_indices(data_key, step, N_DATA, B)][None]}


def test_chunk_equals_manual_steps_and_unroll_does_not_matter(mlp_step, mlp_state):
    data = jax.random.normal(jax.random.PRNGKey(5), (N_DATA, 2))
    k = 3

    state, manual_metrics = mlp_state, []
    batch_fn = jax.jit(_batch_fn)
    for _ in range(k):
        _, data_key = stream_keys(state.key)
        state, metrics = mlp_step(state, batch_fn(data, data_key, state.step))
        manual_metrics.append(metrics)
    manual_metrics = jax.tree.map(lambda *m: jnp.stack(m), *manual_metrics)

    step = _mlp_step()
    rolled, rolled_metrics = make_train_chunk(step, _batch_fn, k, unroll=1)(_copy(mlp_state), data)
    unrolled, unrolled_metrics = make_train_chunk(step, _batch_fn, k, unroll=True)(
        _copy(mlp_state), data
    )
    assert int(rolled.step) == int(unrolled.step) == k
    chex.assert_shape(list(rolled_metrics.values()), (k,))
    for other, other_metrics in ((rolled, rolled_metrics), (unrolled, unrolled_metrics)):
        _leaves_close(other, state, rtol=1e-5, atol=1e-5)
        _leaves_close(other_metrics, manual_metrics, rtol=1e-5, atol=1e-5)


# --- The R1 penalty: an extra term in D's loss, and nothing else. ----------------------------


def test_r1_penalty_changes_only_the_discriminator_update():
    # D by plain SGD(lr 1), G frozen: D's new params must differ from the unpenalised step's
    # by exactly -gamma/2 * grad_params(mean ||grad_x D||^2); G's must not move at all.
    gamma = 3.0
    state = _gan_state(
        TinyMLPGenerator(out_dim=2),
        TinyMLPDiscriminator(pack=2),
        _frozen_adam(),
        optax.sgd(1.0),
        jnp.zeros((B, LATENT)),
        jnp.zeros((B, 2)),
        use_ema=False,
    )
    batch = _real(1)
    plain, plain_metrics = jax.jit(_mlp_step())(state, batch)
    penalised, metrics = jax.jit(_mlp_step(d_terms=(r1_term(gamma),)))(state, batch)

    # The phase's summed loss is logged as d/total beside each term's own metrics.
    assert set(metrics) == METRIC_KEYS | {"d/r1", "d/total"}
    assert float(metrics["d/r1"]) > 0
    # d/loss is the adversarial term alone, the same before the update in both steps.
    np.testing.assert_allclose(metrics["d/loss"], plain_metrics["d/loss"], rtol=1e-6)

    d = state["d"]

    def mean_r1(d_params):
        def d_fn(x):
            return d.module.apply({"params": d_params}, x)

        return jnp.mean(losses.r1_penalty(d_fn, batch["real"][0]))

    np.testing.assert_allclose(metrics["d/r1"], mean_r1(d.params), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["d/total"], metrics["d/loss"] + 0.5 * gamma * metrics["d/r1"], rtol=1e-6
    )
    r1_grads = jax.grad(mean_r1)(d.params)
    expected = jax.tree.map(lambda p, g: p - 0.5 * gamma * g, plain["d"].params, r1_grads)
    _leaves_close(penalised["d"].params, expected, rtol=1e-4, atol=1e-6)
    assert _any_leaf_differs(penalised["d"].params, plain["d"].params)
    _leaves_equal(penalised["g"].params, state["g"].params)
    _leaves_equal(penalised["g"].params, plain["g"].params)
    assert int(penalised["g"].opt_state[0].count) == int(plain["g"].opt_state[0].count) == 1


@pytest.mark.parametrize("gamma", [0.0, -1.0])
def test_r1_gamma_must_be_positive(gamma):
    with pytest.raises(ValueError, match="gamma"):
        r1_term(gamma)
