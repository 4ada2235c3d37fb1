"""Fréchet distance and Gaussian moments against SciPy / NumPy float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gen_jax.metrics.frechet import (
    GaussianMoments,
    frechet_distance,
    frechet_distance_jax,
    gaussian_moments,
)


def _features(seed, n=200, d=16, shift=0.0):
    """Correlated Gaussian features [n, d] in float64."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mix + shift + rng.standard_normal(d)


def _reference_fid(x, y):
    """The reference FID formula with scipy.linalg.sqrtm, all in float64."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


X = _features(0)
Y = _features(1, shift=0.5)


def test_distance_matches_sqrtm_reference_in_float64():
    mu1, s1 = X.mean(0), np.cov(X, rowvar=False)
    mu2, s2 = Y.mean(0), np.cov(Y, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference_fid(X, Y), rel=1e-10)


def test_float32_moments_then_distance_matches_reference():
    m1 = gaussian_moments(jnp.asarray(X, jnp.float32))
    m2 = gaussian_moments(jnp.asarray(Y, jnp.float32))
    d = frechet_distance(*m1.finalize(), *m2.finalize())
    assert d == pytest.approx(_reference_fid(X, Y), rel=1e-4)


def test_diagonal_gaussians_hand_formula_with_singular_covariance():
    # For diagonal covariances d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2, and a
    # zero variance (singular covariance) must not break the square roots.
    a = np.array([1.0, 4.0, 0.0, 2.25])
    b = np.array([9.0, 1.0, 1.0, 0.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = 1.0 + 4.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + (0 - 1) ** 2 + 1.5**2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    d32 = frechet_distance_jax(mu1, np.diag(a), mu2, np.diag(b))
    assert float(d32) == pytest.approx(expected, rel=1e-5)


def test_distance_to_itself_is_zero_and_distance_is_symmetric():
    mu1, s1 = X.mean(0), np.cov(X, rowvar=False)
    mu2, s2 = Y.mean(0), np.cov(Y, rowvar=False)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-10 * np.trace(s1)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        frechet_distance(mu2, s2, mu1, s1), rel=1e-10
    )


def test_jax_path_float32_and_float64():
    mu1, s1 = X.mean(0), np.cov(X, rowvar=False)
    mu2, s2 = Y.mean(0), np.cov(Y, rowvar=False)
    ref = _reference_fid(X, Y)
    d32 = jax.jit(frechet_distance_jax)(mu1, s1, mu2, s2)
    assert d32.dtype == jnp.float32
    assert float(d32) == pytest.approx(ref, rel=1e-4)
    with jax.enable_x64(True):
        d64 = jax.jit(frechet_distance_jax)(mu1, s1, mu2, s2)
        assert d64.dtype == jnp.float64
        assert float(d64) == pytest.approx(ref, rel=1e-10)


def test_moments_match_numpy_mean_and_cov():
    mu, sigma = gaussian_moments(jnp.asarray(X, jnp.float32)).finalize()
    np.testing.assert_allclose(mu, X.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(X, rowvar=False), rtol=1e-4, atol=1e-6)
    _, sigma0 = gaussian_moments(jnp.asarray(X, jnp.float32)).finalize(ddof=0)
    np.testing.assert_allclose(sigma0, np.cov(X, rowvar=False, ddof=0), rtol=1e-4, atol=1e-6)


def test_batch_accumulation_equals_one_shot():
    x = jnp.asarray(X, jnp.float32)
    update = jax.jit(lambda m, b: m.update(b))
    acc = GaussianMoments.init(16)
    for start, stop in [(0, 64), (64, 128), (128, 131), (131, 200)]:  # uneven batches
        acc = update(acc, x[start:stop])
    one = gaussian_moments(x)
    assert int(acc.count) == 200
    np.testing.assert_allclose(acc.mean, one.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acc.scatter, one.scatter, rtol=1e-4, atol=1e-4)


def test_merge_and_mask_handle_padding_and_empty_parts():
    x = jnp.asarray(X, jnp.float32)
    merged = gaussian_moments(x[:77]).merge(gaussian_moments(x[77:]))
    np.testing.assert_allclose(merged.finalize()[1], np.cov(X, rowvar=False), rtol=1e-4, atol=1e-6)
    # A padded last batch with a mask adds exactly its valid rows.
    padded = jnp.concatenate([x[150:], jnp.full((14, 16), 1e3, jnp.float32)])
    mask = jnp.arange(64) < 50
    acc = GaussianMoments.init(16).update(x[:150]).update(padded, mask)
    np.testing.assert_allclose(acc.finalize()[1], np.cov(X, rowvar=False), rtol=1e-4, atol=1e-6)
    # Merging with empty moments changes nothing; two empties stay finite.
    empty = GaussianMoments.init(16)
    same = empty.merge(gaussian_moments(x)).merge(empty)
    np.testing.assert_allclose(same.scatter, gaussian_moments(x).scatter, rtol=1e-6)
    both = empty.merge(empty)
    assert int(both.count) == 0 and np.all(np.isfinite(both.mean))


def test_accumulation_is_sound_in_float32_with_a_large_mean():
    # Summing raw outer products (E[x x^T] - mu mu^T) loses every digit of a unit
    # covariance under a mean of 1000 in float32 (error ~0.3); the centred update keeps it.
    rng = np.random.default_rng(3)
    x = (1000.0 + rng.standard_normal((2000, 8))).astype(np.float32)
    update = jax.jit(lambda m, b: m.update(b))
    acc = GaussianMoments.init(8)
    for start in range(0, 2000, 50):
        acc = update(acc, x[start : start + 50])
    ref = np.cov(x.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(acc.finalize()[1], ref, atol=1e-4)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="features"):
        GaussianMoments.init(4).update(jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="features"):
        gaussian_moments(jnp.zeros(5))
    with pytest.raises(ValueError, match="mask"):
        gaussian_moments(jnp.zeros((5, 2)), jnp.ones(4))
    with pytest.raises(ValueError, match="dim"):
        GaussianMoments.init(0)
