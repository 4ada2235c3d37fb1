"""Checkpoints: exact round trips, bit-identical resumption, and survival of failed runs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import losses
from gen_jax.checkpoint import Checkpointer
from gen_jax.data import epoch_batch_indices
from gen_jax.models.dcgan import TinyDCGANDiscriminator, TinyDCGANGenerator
from gen_jax.models.mlp_gan import TinyMLPDiscriminator, TinyMLPGenerator
from gen_jax.train import (
    PlayerSpec,
    TrainState,
    create_gan_state,
    create_train_state,
    fit,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    normal_latent,
)

B, LATENT, N_DATA = 8, 4, 64


# One optimizer object per network for the whole module: they are static fields of the
# state, so states built with fresh `optax.adam(...)` objects would be new jit cache keys.
G_TX = optax.adam(1e-2, b1=0.5)
D_TX = optax.adam(1e-2, b1=0.5)


def _mlp_state(seed=0, hidden=(16,)):
    state = create_gan_state(
        jax.random.PRNGKey(seed),
        {
            "g": PlayerSpec(
                TinyMLPGenerator(out_dim=2, hidden=hidden),
                G_TX,
                (jnp.zeros((B, LATENT)),),
                use_ema=True,
            ),
            "d": PlayerSpec(TinyMLPDiscriminator(), D_TX, (jnp.zeros((B, 2)),)),
        },
    )
    # Committed to the device like a restored state, so both hit the same compiled chunk.
    return jax.device_put(state, jax.devices()[0])


def _assert_states_equal(a, b):
    # Compared by leaf paths: the static optimizers of two states are different objects.
    la, lb = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (_, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_round_trip_restores_every_leaf(tmp_path):
    # The tiny DCGAN: params, adam states, batch-norm statistics of both nets, the EMA.
    # Only the init's draws use the classic threefry: jax 0.10's default compiles slowly on
    # XLA:CPU for some conv-kernel shapes.
    with jax.threefry_partitionable(False):
        tx = optax.adam(1e-3)
        make = lambda seed: create_gan_state(
            jax.random.PRNGKey(seed),
            {
                "g": PlayerSpec(TinyDCGANGenerator(), tx, (jnp.zeros((B, 8)),), use_ema=True),
                "d": PlayerSpec(TinyDCGANDiscriminator(), tx, (jnp.zeros((B, 28, 28, 1)),)),
            },
            extra={"k_t": jnp.float32(0.0)},
        )
        state, template = make(0), make(1)
    g, d = state["g"], state["d"]
    assert g.collections["batch_stats"] and d.collections["batch_stats"]
    # Make every kind of leaf distinguishable from the template's, the objective's own
    # state included.
    state = state.replace(
        step=jnp.int32(7),
        players={
            "g": g.replace(collections=jax.tree.map(lambda x: x + 0.5, g.collections)),
            "d": d.replace(opt_state=jax.tree.map(lambda x: x + 1, d.opt_state)),
        },
        extra={"k_t": jnp.float32(0.25)},
    )
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(7, state)
    assert ckpt.latest_step() == 7
    restored = ckpt.restore(template)
    ckpt.close()
    _assert_states_equal(restored, state)
    assert int(restored.step) == 7
    np.testing.assert_array_equal(restored.key, state.key)
    assert restored["g"].module == template["g"].module and restored["g"].tx is template["g"].tx
    assert float(restored.extra["k_t"]) == 0.25


def test_round_trip_of_a_one_player_state(tmp_path):
    spec = PlayerSpec(TinyMLPDiscriminator(), D_TX, (jnp.zeros((B, 2)),), use_ema=True)
    state = create_train_state(jax.random.PRNGKey(0), spec)
    state = state.replace(
        step=jnp.int32(3),
        model=state.model.replace(ema_params=jax.tree.map(lambda x: x + 1, state.model.ema_params)),
    )
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(3, state)
    restored = ckpt.restore(create_train_state(jax.random.PRNGKey(1), spec))
    ckpt.close()
    assert isinstance(restored, TrainState)
    _assert_states_equal(restored, state)


def test_restore_of_missing_checkpoint_raises(tmp_path):
    state = _mlp_state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt.restore(state)
    ckpt.save(0, state)
    with pytest.raises(FileNotFoundError, match="5"):
        ckpt.restore(state, step=5)
    ckpt.close()


def test_restore_into_a_different_model_raises(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(0, _mlp_state())
    with pytest.raises(ValueError, match="does not match"):
        ckpt.restore(_mlp_state(hidden=(16, 16)))
    ckpt.close()


@pytest.mark.parametrize("max_to_keep", [0, 1])
def test_max_to_keep_below_two_is_refused(tmp_path, max_to_keep):
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path / "ckpt", max_to_keep=max_to_keep)
    assert not (tmp_path / "ckpt").exists()


def test_keeps_the_two_newest(tmp_path):
    state = _mlp_state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in (1, 2, 3):
        ckpt.save(step, state.replace(step=jnp.int32(step)))
    assert ckpt.latest_step() == 3
    assert int(ckpt.restore(state, step=2).step) == 2
    with pytest.raises(FileNotFoundError):
        ckpt.restore(state, step=1)
    ckpt.close()


# --- Resumption: the data cursor and every key live in the state. -----------------------------

_STEP = make_gan_step(
    gan_phases(
        losses.non_saturating_generator_loss,
        losses.minimax_discriminator_loss,
        normal_latent(LATENT),
    )
)


def _data(nan_from=1 << 30):
    return {
        "x": jax.random.normal(jax.random.PRNGKey(5), (N_DATA, 2)),
        "nan_from": jnp.int32(nan_from),
    }


def _draw(data, data_key, step):
    """A device-resident dataset's batch; NaNs from step data["nan_from"] on (divergence)."""
    real = data["x"][epoch_batch_indices(data_key, step, N_DATA, B)][None]
    return {"real": jnp.where(step >= data["nan_from"], jnp.nan, real)}


_CHUNKS = {}


def _chunk(k):
    """One compiled chunk per k, shared by the tests of this module."""
    if k not in _CHUNKS:
        _CHUNKS[k] = make_train_chunk(_STEP, _draw, k, unroll=1)
    return _CHUNKS[k]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    n = 2
    data = _data()
    straight = _chunk(n)(_chunk(n)(_mlp_state(), data)[0], data)[0]
    assert int(straight.step) == 2 * n

    first, _ = _chunk(n)(_mlp_state(), data)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(int(first.step), first)
    del first
    # A fresh process would rebuild the state from scratch; a different seed proves that
    # nothing (not even the run key) comes from the template.
    restored = Checkpointer(tmp_path / "ckpt").restore(_mlp_state(seed=123))
    ckpt.close()
    assert int(restored.step) == n
    resumed, _ = _chunk(n)(restored, data)

    _assert_states_equal(resumed, straight)


def _fit(state, data, workdir, ckpt, *, total_steps, on_sample=None, sample_every=0):
    return fit(
        state,
        _chunk,
        data,
        total_steps=total_steps,
        chunk_steps=2,
        workdir=str(workdir),
        checkpointer=ckpt,
        checkpoint_every=2,
        sample_every=sample_every,
        on_sample=on_sample,
    )


def _assert_restorable(workdir, ckpt, step):
    assert ckpt.latest_step() == step
    restored = ckpt.restore(_mlp_state(seed=9))
    assert int(restored.step) == step
    for leaf in jax.tree.leaves(restored):
        assert np.all(np.isfinite(leaf))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == list(range(2, step + 1, 2))


def test_diverged_run_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(FloatingPointError, match="step 6"):
        _fit(_mlp_state(), _data(nan_from=4), tmp_path, ckpt, total_steps=8)
    _assert_restorable(tmp_path, ckpt, 4)
    assert int(ckpt.restore(_mlp_state(), step=2).step) == 2  # The previous one is kept too.
    ckpt.close()


def test_failure_in_on_sample_keeps_the_last_good_checkpoint(tmp_path):
    def on_sample(state, step):
        if step >= 4:
            raise RuntimeError("disk full")

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(RuntimeError, match="disk full"):
        _fit(
            _mlp_state(),
            _data(),
            tmp_path,
            ckpt,
            total_steps=8,
            on_sample=on_sample,
            sample_every=4,
        )
    # Sampling at step 4 comes before saving step 4: the newest checkpoint is step 2.
    ckpt2 = Checkpointer(tmp_path / "ckpt")
    ckpt.close()
    assert ckpt2.latest_step() == 2
    restored = ckpt2.restore(_mlp_state(seed=9))
    assert int(restored.step) == 2
    ckpt2.close()
