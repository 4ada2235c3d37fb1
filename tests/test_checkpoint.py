"""Checkpoints: exact round trips, bit-identical resumption, and survival of failed runs."""

import errno
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import checkpoint as checkpoint_module
from gen_jax import losses
from gen_jax.checkpoint import MANIFEST, Checkpointer, CheckpointError, state_nbytes
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


# --- Damaged checkpoints: named, passed over for the newest intact one, set aside. -----------


def _two_checkpoints(tmp_path):
    state = _mlp_state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, state.replace(step=jnp.int32(1)))
    ckpt.save(2, state.replace(step=jnp.int32(2)))
    return state, ckpt


def _largest_array_file(step_dir):
    files = [p for p in step_dir.rglob("*") if p.is_file() and "/d/" in str(p)]
    return max(files, key=lambda p: p.stat().st_size)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "damage, where",
    [
        (_truncate, "array"),
        (_flip_a_byte, "array"),
        (_empty, "_METADATA"),
    ],
    ids=["truncated array file", "one flipped byte", "emptied _METADATA"],
)
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_restored(
    tmp_path, damage, where
):
    state, ckpt = _two_checkpoints(tmp_path)
    step2 = tmp_path / "ckpt" / "2"
    target = _largest_array_file(step2) if where == "array" else step2 / "default" / "_METADATA"
    damage(target)
    with pytest.warns(UserWarning, match=r"ckpt/2 is damaged: .* Resuming from checkpoint 1"):
        restored = Checkpointer(tmp_path / "ckpt").restore(_mlp_state(seed=5))
    assert int(restored.step) == 1
    _assert_states_equal(restored, state.replace(step=jnp.int32(1)))
    # The damaged one is kept aside, and the resumed run can write step 2 again.
    assert (tmp_path / "ckpt" / "2.damaged").is_dir() and not step2.exists()
    again = Checkpointer(tmp_path / "ckpt")
    again.save(2, state.replace(step=jnp.int32(2)))
    assert again.latest_step() == 2 and int(again.restore(state).step) == 2
    ckpt.close()
    again.close()


def test_asking_for_a_damaged_checkpoint_names_it(tmp_path):
    state, ckpt = _two_checkpoints(tmp_path)
    _flip_a_byte(_largest_array_file(tmp_path / "ckpt" / "1"))
    with pytest.raises(CheckpointError, match=r"ckpt/1 is damaged: .* checksum"):
        ckpt.restore(state, step=1)
    assert int(ckpt.restore(state).step) == 2  # The newest is fine.
    ckpt.close()


def test_no_usable_checkpoint_names_each(tmp_path):
    state, ckpt = _two_checkpoints(tmp_path)
    for step in ("1", "2"):
        _truncate(_largest_array_file(tmp_path / "ckpt" / step))
    with pytest.raises(CheckpointError, match=r"no usable checkpoint: .*ckpt/2 .*ckpt/1"):
        Checkpointer(tmp_path / "ckpt").restore(state)
    ckpt.close()


def test_a_checkpoint_without_a_manifest_still_restores(tmp_path):
    # Written before manifests existed, or the run died between orbax's rename and the
    # manifest: the files are complete.
    state, ckpt = _two_checkpoints(tmp_path)
    (tmp_path / "ckpt" / "2" / MANIFEST).unlink()
    assert ckpt.verify(2) is None
    assert int(Checkpointer(tmp_path / "ckpt").restore(state).step) == 2
    ckpt.close()


def test_an_intact_checkpoint_of_another_model_is_refused_not_passed_over(tmp_path):
    _, ckpt = _two_checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match="different model or config"):
        Checkpointer(tmp_path / "ckpt").restore(_mlp_state(hidden=(16, 16)))
    assert (tmp_path / "ckpt" / "2").is_dir()  # Nothing set aside.
    ckpt.close()


def test_a_failed_save_names_the_intact_previous_checkpoint(tmp_path, monkeypatch):
    state, ckpt = _two_checkpoints(tmp_path)
    orbax_save = ckpt._manager.save

    def full_disk(step, *args, **kwargs):
        (tmp_path / "ckpt" / f"{step}.orbax-checkpoint-tmp-0").mkdir()  # A partial write.
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt._manager, "save", full_disk)
    with pytest.raises(OSError, match=r"saving checkpoint 3 .* failed .*; checkpoint 2 is intact"):
        ckpt.save(3, state.replace(step=jnp.int32(3)))
    monkeypatch.setattr(ckpt._manager, "save", orbax_save)
    assert int(Checkpointer(tmp_path / "ckpt").restore(state).step) == 2
    ckpt.close()


def test_too_little_space_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    state = _mlp_state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    need = state_nbytes(state)
    monkeypatch.setattr(
        checkpoint_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, need)
    )
    with pytest.raises(OSError, match=r"ckpt has 0.0 MiB free; the checkpoints .* need about"):
        ckpt.check_space(state)
    monkeypatch.undo()
    ckpt.check_space(state)
    assert ckpt.all_steps() == []
    ckpt.close()


def test_divergence_names_the_last_checkpoint_or_says_there_is_none(tmp_path):
    with pytest.raises(FloatingPointError, match=r"step 6.*the last checkpoint, step 4, is kept"):
        _fit(
            _mlp_state(),
            _data(nan_from=4),
            tmp_path / "a",
            Checkpointer(tmp_path / "a/c"),
            total_steps=8,
        )
    with pytest.raises(FloatingPointError, match=r"step 2.*no checkpoint was written before it"):
        _fit(
            _mlp_state(),
            _data(nan_from=0),
            tmp_path / "b",
            Checkpointer(tmp_path / "b/c"),
            total_steps=8,
        )


def test_non_finite_parameters_stop_the_run_even_when_the_metrics_are_finite(tmp_path):
    def chunk_for(k):
        def chunk(state, data):
            g = state["g"]
            poisoned = jax.tree.map(lambda x: x.at[..., 0].set(jnp.inf), g.params)
            state = state.replace(
                step=state.step + k, players={**state.players, "g": g.replace(params=poisoned)}
            )
            return state, {"g/loss": jnp.ones(k)}

        return chunk

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(FloatingPointError, match=r"non-finite parameters .* at step 2: .*'g'"):
        fit(
            _mlp_state(),
            chunk_for,
            None,
            total_steps=4,
            chunk_steps=2,
            workdir=str(tmp_path),
            checkpointer=ckpt,
            checkpoint_every=2,
        )
    assert ckpt.latest_step() is None  # The poisoned state was never saved.
    ckpt.close()
