"""Mode counting on 2-D mixtures (PacGAN protocol) on hand-made samples."""

import math

import numpy as np
import pytest

from gen_jax.data import get_mixture
from gen_jax.metrics.modes import mixture_mode_stats, summarize_mode_stats

RING = get_mixture("ring")
MEANS = np.asarray(RING.means)  # 8 modes on the unit circle
SIGMA = RING.sigma  # 0.01


def test_samples_at_every_mean_cover_all_modes_with_zero_kl():
    samples = np.repeat(MEANS, 5, axis=0)
    s = mixture_mode_stats(samples, MEANS, SIGMA)
    assert s == {"modes": 8, "high_quality": 1.0, "reverse_kl": 0.0, "num_modes": 8}


def test_two_modes_equally_gives_log_four():
    samples = np.concatenate([np.repeat(MEANS[[0]], 6, 0), np.repeat(MEANS[[3]], 6, 0)])
    s = mixture_mode_stats(samples, MEANS, SIGMA)
    assert s["modes"] == 2 and s["high_quality"] == 1.0
    # sum_k p_k log(p_k K) = 2 * 0.5 * log(0.5 * 8)
    assert s["reverse_kl"] == pytest.approx(math.log(4.0), rel=1e-12)


def test_one_mode_gives_log_k():
    s = mixture_mode_stats(np.repeat(MEANS[[5]], 3, 0), MEANS, SIGMA)
    assert s["modes"] == 1 and s["reverse_kl"] == pytest.approx(math.log(8.0))


def test_far_away_samples_cover_nothing():
    samples = np.full((10, 2), 10.0)
    s = mixture_mode_stats(samples, MEANS, SIGMA)
    assert s["modes"] == 0 and s["high_quality"] == 0.0
    assert s["reverse_kl"] == math.inf


def test_only_high_quality_samples_count_towards_the_histogram():
    # 3 at mode 0, 1 at mode 1 (high quality); 4 near mode 2 but 5 sigmas off (low quality).
    off = MEANS[2] + np.array([5 * SIGMA, 0.0])
    samples = np.concatenate([np.repeat(MEANS[[0]], 3, 0), MEANS[[1]], np.repeat(off[None], 4, 0)])
    s = mixture_mode_stats(samples, MEANS, SIGMA)
    assert s["modes"] == 2
    assert s["high_quality"] == pytest.approx(0.5)
    expected = 0.75 * math.log(0.75 * 8) + 0.25 * math.log(0.25 * 8)
    assert s["reverse_kl"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.0, -1.0), (0.6, 0.8)])
def test_three_sigma_boundary(direction):
    u = np.asarray(direction)
    for mode in (0, 3):
        inside = MEANS[mode] + (3 * SIGMA - 1e-6) * u
        outside = MEANS[mode] + (3 * SIGMA + 1e-6) * u
        assert mixture_mode_stats(inside[None], MEANS, SIGMA)["high_quality"] == 1.0
        assert mixture_mode_stats(outside[None], MEANS, SIGMA)["high_quality"] == 0.0


def test_num_sigmas_moves_the_boundary():
    sample = (MEANS[0] + np.array([2.5 * SIGMA, 0.0]))[None]
    assert mixture_mode_stats(sample, MEANS, SIGMA)["modes"] == 1
    assert mixture_mode_stats(sample, MEANS, SIGMA, num_sigmas=2.0)["modes"] == 0


def test_grid_all_modes():
    grid = get_mixture("grid")
    means = np.asarray(grid.means)
    rng = np.random.default_rng(0)
    samples = means[rng.permutation(np.repeat(np.arange(25), 4))] + 0.5 * grid.sigma
    s = mixture_mode_stats(samples, means, grid.sigma)
    assert s["modes"] == 25 and s["num_modes"] == 25 and s["high_quality"] == 1.0
    assert s["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_kl_is_nonnegative_on_random_histograms():
    rng = np.random.default_rng(1)
    for _ in range(20):
        modes = rng.integers(0, 8, size=rng.integers(1, 50))
        s = mixture_mode_stats(MEANS[modes], MEANS, SIGMA)
        assert s["reverse_kl"] >= -1e-12
        assert s["modes"] == len(np.unique(modes))


@pytest.mark.parametrize("shape", [(5, 3), (5,), (2, 5, 2)])
def test_wrong_sample_shape_raises(shape):
    with pytest.raises(ValueError, match="samples must be"):
        mixture_mode_stats(np.zeros(shape), MEANS, SIGMA)


def test_summary_over_seeds_by_hand():
    runs = [
        {"modes": 8, "high_quality": 0.98, "reverse_kl": 0.002, "num_modes": 8},
        {"modes": 6, "high_quality": 0.90, "reverse_kl": 0.100, "num_modes": 8},
    ]
    s = summarize_mode_stats(runs)
    assert s["num_modes"] == 8 and s["runs"] == 2
    assert s["modes_mean"] == 7.0 and s["modes_std"] == 1.0  # population std: |8 - 6| / 2
    assert s["high_quality_mean"] == pytest.approx(94.0)
    assert s["high_quality_std"] == pytest.approx(4.0)
    assert s["reverse_kl_mean"] == pytest.approx(0.051)


def test_summary_refuses_no_runs_and_mixed_mixtures():
    with pytest.raises(ValueError, match="at least one"):
        summarize_mode_stats([])
    ring = {"modes": 8, "high_quality": 1.0, "reverse_kl": 0.0, "num_modes": 8}
    with pytest.raises(ValueError, match="different mixtures"):
        summarize_mode_stats([ring, {**ring, "num_modes": 25}])
