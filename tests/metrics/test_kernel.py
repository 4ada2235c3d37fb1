"""Kernel distance (KID) against a NumPy float64 reference of the unbiased MMD^2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.metrics.kernel import kernel_distance, polynomial_kernel, polynomial_mmd2_unbiased


def _reference_mmd2(x, y):
    """Unbiased MMD^2 with k = (x.y/d + 1)^3, by explicit double sums in float64."""
    d = x.shape[1]
    m, n = len(x), len(y)
    k = lambda a, b: (a @ b / d + 1.0) ** 3
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 16))
Y = RNG.standard_normal((30, 16)) * 1.3 + 0.4


def test_kernel_matrix_matches_numpy():
    np.testing.assert_allclose(
        polynomial_kernel(X, Y), (X @ Y.T / 16 + 1) ** 3, rtol=1e-5, atol=1e-6
    )


def test_unbiased_mmd2_matches_reference():
    ref = _reference_mmd2(X, Y)
    assert float(polynomial_mmd2_unbiased(X, Y)) == pytest.approx(ref, rel=1e-5)
    with jax.enable_x64(True):
        assert float(polynomial_mmd2_unbiased(X, Y)) == pytest.approx(ref, rel=1e-12)


def test_full_size_subsets_give_the_full_estimate_with_zero_std():
    # Subsets as large as the smaller set of an equal-size pair are permutations of the
    # whole sets, and MMD^2_u is permutation invariant; the default subset_size caps there.
    y = Y[:30]
    x = X[:30]
    ref = _reference_mmd2(x, y)
    mean, std = kernel_distance(x, y, key=jax.random.key(0), num_subsets=4)
    assert float(mean) == pytest.approx(ref, rel=1e-5)
    assert float(std) == pytest.approx(0.0, abs=1e-5 * abs(ref))


def test_subset_statistics_mean_and_std():
    # With subsets of 10 from 40 / 30, the mean over subsets is an unbiased estimate of the
    # same MMD^2; check it against the full-set reference loosely, and the key's role.
    key = jax.random.key(1)
    mean, std = kernel_distance(X, Y, key=key, num_subsets=200, subset_size=10)
    ref = _reference_mmd2(X, Y)
    assert float(std) > 0
    assert abs(float(mean) - ref) < 4 * float(std) / np.sqrt(200)
    again = kernel_distance(X, Y, key=key, num_subsets=200, subset_size=10)
    assert float(again[0]) == float(mean)
    other = kernel_distance(X, Y, key=jax.random.key(2), num_subsets=200, subset_size=10)
    assert float(other[0]) != float(mean)


def test_same_law_is_near_zero_and_different_law_is_positive():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 300, 8))
    same, same_std = kernel_distance(a, b, key=jax.random.key(0), num_subsets=10, subset_size=100)
    diff, _ = kernel_distance(a, b + 1.0, key=jax.random.key(0), num_subsets=10, subset_size=100)
    assert abs(float(same)) < 3 * float(same_std) + 1e-3
    assert float(diff) > 20 * abs(float(same))


def test_works_under_jit_with_an_outer_function():
    f = jax.jit(lambda x, y, k: kernel_distance(x, y, key=k, num_subsets=3, subset_size=20))
    mean, std = f(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32), jax.random.key(0))
    assert np.isfinite(float(mean)) and np.isfinite(float(std))


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="fake_features"):
        kernel_distance(X, Y[:, :5], key=jax.random.key(0))
    with pytest.raises(ValueError, match="real_features"):
        kernel_distance(X[0], Y, key=jax.random.key(0))
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(X[:1], Y, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_subsets"):
        kernel_distance(X, Y, key=jax.random.key(0), num_subsets=0)
    with pytest.raises(ValueError, match="at least 2"):
        polynomial_mmd2_unbiased(X[:1], Y)
