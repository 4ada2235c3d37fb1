"""The stacked-MNIST sampler: shapes, scale, labels that match the stacked digits."""

import jax
import numpy as np
import pytest

from gen_jax.data.stacked_mnist import sample_stacked_mnist, stacked_mnist_label

# Ten fake "digits": image d is filled with the value 20 * d, so a channel's value names it.
DIGITS = np.arange(10, dtype=np.uint8)[:, None, None] * 20 * np.ones((1, 28, 28), np.uint8)
LABELS = np.arange(10, dtype=np.uint8)


def test_label_is_the_three_digit_number():
    np.testing.assert_array_equal(
        stacked_mnist_label([[1, 2, 3], [9, 0, 9], [0, 0, 0]]), [123, 909, 0]
    )


def test_channels_are_the_digits_of_the_label():
    x, y = sample_stacked_mnist(jax.random.PRNGKey(0), DIGITS, LABELS, 64)
    assert x.shape == (64, 28, 28, 3) and x.dtype == np.float32
    assert y.shape == (64,) and y.dtype == np.int32
    x, y = np.asarray(x), np.asarray(y)
    assert x.min() >= -1.0 and x.max() <= 1.0
    # Invert the fill value of each channel back to its digit.
    digits = np.rint((x[:, 0, 0, :] * 127.5 + 127.5) / 20).astype(int)
    np.testing.assert_array_equal(100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2], y)
    assert np.all(x == x[:, :1, :1, :])  # Each channel is one whole source image.


def test_modes_are_roughly_uniform_and_jittable():
    sample = jax.jit(sample_stacked_mnist, static_argnums=3)
    _, y = sample(jax.random.PRNGKey(1), DIGITS, LABELS, 20_000)
    counts = np.bincount(np.asarray(y), minlength=1000)
    assert counts.size == 1000 and (counts > 0).sum() > 990
    # Each channel's digit is uniform over 0..9: 2,000 expected per value, sd ~42.
    for place in (100, 10, 1):
        per_digit = np.bincount((np.asarray(y) // place) % 10, minlength=10)
        assert np.all(np.abs(per_digit - 2000) < 250), per_digit


def test_different_keys_give_different_samples():
    _, a = sample_stacked_mnist(jax.random.PRNGKey(0), DIGITS, LABELS, 32)
    _, b = sample_stacked_mnist(jax.random.PRNGKey(1), DIGITS, LABELS, 32)
    assert not np.array_equal(a, b)


def test_bad_inputs_are_refused():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="uint8"):
        sample_stacked_mnist(key, DIGITS.astype(np.float32), LABELS, 4)
    with pytest.raises(ValueError, match="labels"):
        sample_stacked_mnist(key, DIGITS, LABELS[:5], 4)
    with pytest.raises(ValueError, match="num_samples"):
        sample_stacked_mnist(key, DIGITS, LABELS, 0)
