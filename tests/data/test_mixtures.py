"""Tests for the PacGAN 2-D Gaussian mixtures (arXiv:1712.04086)."""

import functools
import math

import chex
import jax
import numpy as np
import pytest

from gen_jax.data import Mixture, get_mixture, grid_mixture, ring_mixture, sample_mixture

NUM_SAMPLES = 20_000
_sample = jax.jit(sample_mixture, static_argnums=(1, 2))


def test_ring_parameters():
    mixture = ring_mixture()
    expected = [(math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)) for i in range(8)]
    np.testing.assert_array_equal(np.asarray(mixture.means), expected)
    np.testing.assert_allclose(np.linalg.norm(mixture.means, axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(mixture.means[2], (0.0, 1.0), atol=1e-15)
    assert mixture.sigma == 0.01
    assert mixture.num_modes == 8


def test_grid_parameters():
    mixture = grid_mixture()
    means = np.asarray(mixture.means)
    assert means.shape == (25, 2)
    expected = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert set(map(tuple, means.tolist())) == expected
    assert mixture.sigma == 0.05


def test_get_mixture():
    assert get_mixture("ring") == ring_mixture()
    assert get_mixture("grid") == grid_mixture()
    with pytest.raises(ValueError, match=r"expected one of \['grid', 'ring'\], found 'spiral'"):
        get_mixture("spiral")


def test_mixture_accepts_arrays_and_is_hashable():
    mixture = Mixture(means=np.zeros((3, 2)), sigma=1)
    assert mixture.means == ((0.0, 0.0),) * 3 and isinstance(mixture.sigma, float)
    assert hash(mixture) == hash(Mixture(means=((0, 0),) * 3, sigma=1.0))
    with pytest.raises(ValueError, match=r"expected shape \[K >= 1, 2\], found \(3, 3\)"):
        Mixture(means=np.zeros((3, 3)), sigma=1.0)
    with pytest.raises(ValueError, match="expected > 0, found 0"):
        Mixture(means=np.zeros((3, 2)), sigma=0.0)


@pytest.mark.parametrize(
    "mixture, key",
    # Both key flavours: typed keys and legacy raw uint32[2] keys.
    [(ring_mixture(), jax.random.key(0)), (grid_mixture(), jax.random.PRNGKey(0))],
    ids=["ring", "grid"],
)
def test_sample_statistics(mixture, key):
    samples = _sample(key, mixture, NUM_SAMPLES)
    chex.assert_shape(samples, (NUM_SAMPLES, 2))
    chex.assert_type(samples, np.float32)
    samples = np.asarray(samples, dtype=np.float64)
    means = np.asarray(mixture.means)
    # Modes are >= 0.76 apart and sigma <= 0.05, so the nearest mean is the true mode.
    modes = np.argmin(((samples[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.abs(samples - means[modes]).max() < 6 * mixture.sigma

    k = mixture.num_modes
    counts = np.bincount(modes, minlength=k)
    p = 1 / k
    binomial_std = math.sqrt(NUM_SAMPLES * p * (1 - p))
    np.testing.assert_allclose(counts, NUM_SAMPLES * p, atol=4 * binomial_std)

    for mode in range(k):
        residuals = samples[modes == mode] - means[mode]
        # Per-axis std from ~800-2500 samples is within ~3% of sigma (1 / sqrt(2n)).
        np.testing.assert_allclose(residuals.std(axis=0), mixture.sigma, rtol=0.12)
        np.testing.assert_allclose(residuals.mean(axis=0), 0.0, atol=0.15 * mixture.sigma)


def test_sample_is_deterministic_and_jits_closed_over():
    mixture = ring_mixture()
    key = jax.random.key(1)
    samples = _sample(key, mixture, 64)
    np.testing.assert_array_equal(samples, _sample(key, mixture, 64))
    assert not np.array_equal(samples, _sample(jax.random.key(2), mixture, 64))
    closed_over = jax.jit(functools.partial(sample_mixture, mixture=mixture, num_samples=64))
    np.testing.assert_array_equal(samples, closed_over(key))
