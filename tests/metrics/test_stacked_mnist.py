"""Stacked-MNIST mode counting against a NumPy reference, with a fake digit classifier, and
on real stacked digits with the committed MNIST classifier."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.metrics.stacked_mnist import (
    classify_stacked_mnist,
    mode_histogram_stats,
    sampling_floor_kl,
    stacked_mnist_floor,
    stacked_mnist_modes,
)

LEVELS = -1.0 + 0.2 * np.arange(10)  # channel value that the fake classifier reads as digit d


def fake_classify(images):
    """Logits peaked at the digit whose level is nearest the image's mean value."""
    mean = jnp.mean(images, axis=(1, 2, 3))
    return -((mean[:, None] - jnp.asarray(LEVELS)[None, :]) ** 2)


def fake_classify_dict(images):
    return {"logits": fake_classify(images), "features": images.reshape(images.shape[0], -1)}


def _stacked(modes):
    """Images whose channels carry the levels of the three digits of each mode."""
    digits = np.stack([modes // 100, (modes // 10) % 10, modes % 10], axis=-1)
    return np.broadcast_to(LEVELS[digits][:, None, None, :], (len(modes), 28, 28, 3)).astype(
        np.float32
    )


def _reference(modes):
    """The NumPy reference: covered modes and sum_m p_m log(1000 p_m)."""
    counts = np.bincount(modes, minlength=1000).astype(np.float64)
    p = counts / counts.sum()
    kl = sum(q * math.log(1000 * q) for q in p if q > 0)
    return {"modes": int((counts > 0).sum()), "kl": kl, "num_samples": len(modes)}


def test_histogram_stats_by_hand():
    s = mode_histogram_stats(np.array([0, 0, 1, 2]))
    # p = (1/2, 1/4, 1/4): 1/2 log(500) + 2 * 1/4 log(250)
    assert s["modes"] == 3 and s["num_samples"] == 4
    assert s["kl"] == pytest.approx(0.5 * math.log(500) + 0.5 * math.log(250), rel=1e-12)


def test_uniform_histogram_has_zero_kl_and_one_mode_has_log_k():
    s = mode_histogram_stats(np.tile(np.arange(1000), 3))
    assert s["modes"] == 1000 and s["kl"] == pytest.approx(0.0, abs=1e-12)
    s = mode_histogram_stats(np.full(7, 417))
    assert s["modes"] == 1 and s["kl"] == pytest.approx(math.log(1000), rel=1e-12)


@pytest.mark.parametrize("classify", [fake_classify, fake_classify_dict])
def test_modes_match_the_numpy_reference(classify):
    rng = np.random.default_rng(0)
    modes = rng.integers(0, 1000, size=37)
    modes[:5] = 123  # Some repeats, so the histogram is not flat.
    samples = _stacked(modes)
    # 37 samples in batches of 8: the last batch is padded and must not be counted.
    np.testing.assert_array_equal(classify_stacked_mnist(samples, classify, batch_size=8), modes)
    got = stacked_mnist_modes(samples, classify, batch_size=8)
    want = _reference(modes)
    assert got["modes"] == want["modes"] and got["num_samples"] == 37
    assert got["kl"] == pytest.approx(want["kl"], rel=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"\[N, 28, 28, 3\]"):
        stacked_mnist_modes(np.zeros((4, 28, 28, 1)), fake_classify)
    with pytest.raises(ValueError, match="batch_size"):
        stacked_mnist_modes(np.zeros((4, 28, 28, 3)), fake_classify, batch_size=0)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        mode_histogram_stats(np.array([3, 1000]))


def test_sampling_floor_matches_simulation():
    assert sampling_floor_kl(26_000) == pytest.approx(999 / 52_000)
    rng = np.random.default_rng(1)
    kls = [_reference(rng.integers(0, 1000, 26_000))["kl"] for _ in range(5)]
    assert np.mean(kls) == pytest.approx(sampling_floor_kl(26_000), rel=0.1)


def test_real_stacked_digits_cover_all_modes_with_the_committed_classifier():
    s = stacked_mnist_floor(num_samples=10_000, split="heldout")
    # 10,000 uniform draws leave a given mode empty with probability e^-10.
    assert s["modes"] >= 995
    assert s["mode_accuracy"] >= 0.9  # three digits right: ~accuracy**3
    assert s["sampling_floor"] == pytest.approx(999 / 20_000)
    # Classifier errors (~1.3% a digit) barely move the KL off the sampling floor (0.05 at
    # N = 10,000; its own spread is ~0.002).
    assert s["kl"] == pytest.approx(s["sampling_floor"], abs=0.01)
