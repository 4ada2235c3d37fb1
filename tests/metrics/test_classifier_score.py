"""Classifier score (Inception-score formula) against a NumPy float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from gen_jax.metrics.classifier_score import classifier_score


def _reference(logits, splits):
    """The reference Inception-score code's loop, on softmax probabilities in float64."""
    p = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        py = part.mean(0, keepdims=True)
        kl = np.sum(part * (np.log(part) - np.log(py)), axis=1)
        scores.append(np.exp(kl.mean()))
    return np.mean(scores), np.std(scores)


def test_uniform_predictions_score_one():
    mean, std = classifier_score(jnp.zeros((50, 10)), splits=5)
    assert float(mean) == pytest.approx(1.0, abs=1e-6)
    assert float(std) == pytest.approx(0.0, abs=1e-6)


def test_confident_and_balanced_predictions_score_k():
    k = 10
    labels = np.tile(np.arange(k), 20)  # each of 10 consecutive parts holds 2 of each class
    logits = 100.0 * jax.nn.one_hot(labels, k)
    mean, std = classifier_score(logits)
    assert float(mean) == pytest.approx(k, rel=1e-5)
    assert float(std) == pytest.approx(0.0, abs=1e-4)


def test_confident_on_one_class_scores_one():
    logits = 50.0 * jax.nn.one_hot(np.full(40, 3), 7)
    assert float(classifier_score(logits, splits=4)[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("n, splits", [(200, 10), (103, 10), (37, 1)])
def test_matches_reference_including_uneven_parts(n, splits):
    logits = np.random.default_rng(n).standard_normal((n, 12)) * 3.0
    mean, std = classifier_score(logits, splits=splits)
    ref_mean, ref_std = _reference(logits, splits)
    assert float(mean) == pytest.approx(ref_mean, rel=1e-5)
    assert float(std) == pytest.approx(ref_std, rel=1e-4, abs=1e-6)


def test_extreme_logits_stay_finite_and_shift_invariant():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((60, 5)) * 1e4  # softmax is exactly one-hot in float32
    mean, std = classifier_score(logits, splits=3)
    assert np.isfinite(float(mean)) and np.isfinite(float(std))
    assert 1.0 <= float(mean) <= 5.0 + 1e-4
    base = rng.standard_normal((60, 5))
    shifted = base + rng.standard_normal((60, 1)) * 100  # softmax ignores a per-row shift
    assert float(classifier_score(shifted, splits=3)[0]) == pytest.approx(
        float(classifier_score(base, splits=3)[0]), rel=1e-4
    )


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="logits"):
        classifier_score(jnp.zeros(10))
    with pytest.raises(ValueError, match="splits"):
        classifier_score(jnp.zeros((5, 3)), splits=6)
    with pytest.raises(ValueError, match="splits"):
        classifier_score(jnp.zeros((5, 3)), splits=0)
