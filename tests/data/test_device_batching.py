"""Tests for on-device batching: epoch_batch_indices and to_signed_unit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import epoch_batch_indices, to_signed_unit

N, B = 103, 10  # 10 steps per epoch; 3 examples dropped each epoch
STEPS_PER_EPOCH = N // B


@pytest.fixture(scope="module")
def indices_fn():
    """Jitted with a traced step; asserts one trace for all steps."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def fn(key, step):
        return epoch_batch_indices(key, step, N, B)

    return fn


def _epoch(fn, key, epoch):
    return np.stack(
        [
            np.asarray(fn(key, jnp.int32(epoch * STEPS_PER_EPOCH + s)))
            for s in range(STEPS_PER_EPOCH)
        ]
    )


def test_one_epoch_is_without_replacement(indices_fn):
    batches = _epoch(indices_fn, jax.random.key(0), epoch=0)
    assert batches.shape == (STEPS_PER_EPOCH, B) and batches.dtype == np.int32
    flat = batches.ravel()
    assert len(np.unique(flat)) == STEPS_PER_EPOCH * B
    assert flat.min() >= 0 and flat.max() < N


def test_epochs_differ(indices_fn):
    key = jax.random.key(0)
    epoch0, epoch1, epoch2 = (_epoch(indices_fn, key, e) for e in range(3))
    assert not np.array_equal(epoch0, epoch1)
    assert not np.array_equal(epoch1, epoch2)
    for epoch in (epoch1, epoch2):
        assert len(np.unique(epoch)) == STEPS_PER_EPOCH * B


def test_deterministic_and_jit_matches_eager(indices_fn):
    key = jax.random.key(42)
    for step in (0, 7, 10, 123):
        eager = epoch_batch_indices(key, step, N, B)
        np.testing.assert_array_equal(eager, indices_fn(key, jnp.int32(step)))
        np.testing.assert_array_equal(eager, epoch_batch_indices(key, step, N, B))
    assert not np.array_equal(
        epoch_batch_indices(jax.random.key(1), 0, N, B),
        epoch_batch_indices(jax.random.key(2), 0, N, B),
    )


def test_resumed_run_draws_the_same_batches():
    # Epoch e is a slice of permutation(fold_in(key, e)), whatever came before.
    key = jax.random.key(3)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), N))
    step = 2 * STEPS_PER_EPOCH + 4
    np.testing.assert_array_equal(epoch_batch_indices(key, step, N, B), perm[40:50])


def test_inside_a_jitted_step_gathers_a_batch():
    data = jnp.arange(N * 2, dtype=jnp.float32).reshape(N, 2)

    @jax.jit
    def step_fn(key, step):
        return data[epoch_batch_indices(key, step, N, B)]

    batch = step_fn(jax.random.key(0), jnp.int32(5))
    chex.assert_shape(batch, (B, 2))


def test_full_batch_and_bad_sizes():
    full = epoch_batch_indices(jax.random.key(0), 0, 5, 5)
    assert sorted(np.asarray(full).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="batch_size <= num_examples = 5, found 6"):
        epoch_batch_indices(jax.random.key(0), 0, 5, 6)
    with pytest.raises(ValueError, match="found 0"):
        epoch_batch_indices(jax.random.key(0), 0, 5, 0)


@pytest.mark.parametrize("jit", [False, True])
def test_to_signed_unit(jit):
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = (jax.jit(to_signed_unit) if jit else to_signed_unit)(images)
    chex.assert_shape(out, (1, 16, 16, 1))
    chex.assert_type(out, jnp.float32)
    values = np.asarray(out).ravel()
    # Endpoints exact and the map odd about 127.5, under jit too (XLA may fuse ops).
    assert values[0] == -1.0 and values[255] == 1.0
    np.testing.assert_array_equal(values, -values[::-1])
    np.testing.assert_allclose(values, np.arange(256) / 127.5 - 1, atol=1e-7)


def test_to_signed_unit_keeps_channels():
    images = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    out = to_signed_unit(images)
    chex.assert_shape(out, (2, 4, 4, 3))
    np.testing.assert_array_equal(out, 1.0)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 4, 4), np.float32), "expected uint8 images, found float32"),
        (np.zeros((4, 4), np.uint8), r"found \[4, 4\]"),
    ],
)
def test_to_signed_unit_rejects(images, message):
    with pytest.raises(ValueError, match=message):
        to_signed_unit(images)
