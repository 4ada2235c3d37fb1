"""Batched feature extraction and the one-call feature-metric evaluation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gen_jax.metrics.features import (
    FEATURE_METRIC_KEYS,
    evaluate_feature_metrics,
    extract_features,
)
from gen_jax.metrics.prdc import prdc

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4 * 4 * 1, 8)).astype(np.float32)


def _features_np(images):
    """The feature function in NumPy float64, as an independent reference."""
    return np.tanh(images.reshape(len(images), -1).astype(np.float64) @ W)


def test_extract_features_pads_the_last_batch_and_compiles_once():
    images = RNG.uniform(size=(23, 4, 4, 1)).astype(np.float32)

    @chex.assert_max_traces(n=1)
    def feature_fn(x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ W)

    out = extract_features(feature_fn, images, batch_size=5)  # 4 full batches + 3 rows
    assert isinstance(out, np.ndarray) and out.shape == (23, 8)
    np.testing.assert_allclose(out, _features_np(images), rtol=1e-5, atol=1e-6)
    # A batch larger than the data is capped; a jax array input works too.
    again = extract_features(jax.jit(lambda x: x.reshape(x.shape[0], -1)), jnp.asarray(images), 64)
    np.testing.assert_array_equal(again, images.reshape(23, -1))


def _reference_fid(x, y):
    """FID with scipy.linalg.sqrtm in float64."""
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    diff = x.mean(0) - y.mean(0)
    return diff @ diff + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)


REAL = RNG.standard_normal((120, 8))
FAKE = RNG.standard_normal((100, 8)) * 1.1 + 0.3


def test_evaluate_returns_the_flat_dict_of_floats():
    out = evaluate_feature_metrics(
        REAL, FAKE, key=jax.random.key(0), kid_subsets=5, kid_subset_size=50
    )
    assert tuple(out) == FEATURE_METRIC_KEYS
    assert all(type(v) is float for v in out.values())
    assert out["frechet"] == pytest.approx(_reference_fid(REAL, FAKE), rel=1e-4)
    manifold = prdc(REAL, FAKE)
    for name in ("precision", "recall", "density", "coverage"):
        assert out[name] == pytest.approx(float(manifold[name]), abs=1e-6)
    assert out["kid_mean"] > 0 and out["kid_std"] > 0


def test_evaluate_on_identical_sets():
    out = evaluate_feature_metrics(
        REAL, REAL, key=jax.random.key(0), kid_subsets=3, kid_subset_size=120
    )
    assert out["frechet"] == pytest.approx(0.0, abs=1e-4)
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert out["density"] == pytest.approx(1.0, abs=0.02)
    # Subsets as large as the (identical) sets are the whole set: K_xx = K_yy = K_xy = K,
    # and MMD^2_u = 2 (sum_{i != j} K_ij / (m (m - 1)) - sum_ij K_ij / m^2), slightly < 0
    # (the cross term keeps the diagonal).
    k = (REAL @ REAL.T / 8 + 1) ** 3
    m = len(REAL)
    expected = 2 * ((k.sum() - np.trace(k)) / (m * (m - 1)) - k.sum() / m**2)
    assert out["kid_mean"] == pytest.approx(expected, rel=1e-4)
    assert out["kid_std"] == pytest.approx(0.0, abs=1e-5)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="fake_features"):
        evaluate_feature_metrics(REAL, FAKE[:, :3], key=jax.random.key(0))
    with pytest.raises(ValueError, match="real_features"):
        evaluate_feature_metrics(REAL[:1], FAKE, key=jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(lambda x: x, np.zeros((3, 2)), batch_size=0)
    with pytest.raises(ValueError, match="images"):
        extract_features(lambda x: x, np.zeros((0, 2)))
