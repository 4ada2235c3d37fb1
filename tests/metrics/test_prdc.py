"""Precision / recall / density / coverage against a brute-force NumPy float64 reference."""

import jax
import numpy as np
import pytest

from gen_jax.metrics.prdc import density_coverage, nearest_neighbour_radii, prdc, precision_recall


def _radii(x, k):
    """k-th nearest-neighbour distance within x (the point itself excluded), float64."""
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def _reference(real, fake, k_pr, k_dc):
    """Definitions of Kynkäänniemi et al. and Naeem et al., with full distance matrices."""
    d = np.linalg.norm(real[:, None] - fake[None], axis=-1)  # [N, M]
    r_pr, r_dc, s_pr = _radii(real, k_pr), _radii(real, k_dc), _radii(fake, k_pr)
    return {
        "precision": np.mean(np.any(d <= r_pr[:, None], axis=0)),
        "recall": np.mean(np.any(d <= s_pr[None, :], axis=1)),
        "density": np.sum(d < r_dc[:, None]) / (k_dc * fake.shape[0]),
        "coverage": np.mean(d.min(axis=1) < r_dc),
    }


RNG = np.random.default_rng(0)
REAL = RNG.standard_normal((60, 6))
FAKE = RNG.standard_normal((45, 6)) * 1.2 + 0.5


def test_radii_match_reference():
    np.testing.assert_allclose(
        nearest_neighbour_radii(REAL, 3, block_size=16), _radii(REAL, 3), rtol=1e-5
    )


@pytest.mark.parametrize("block_size", [7, 1024])
def test_prdc_matches_brute_force_reference(block_size):
    out = prdc(REAL, FAKE, block_size=block_size)
    ref = _reference(REAL, FAKE, 3, 5)
    assert set(out) == set(ref)
    for name in ref:
        assert float(out[name]) == pytest.approx(ref[name], abs=1e-6), name
    # The reference is not trivial: some but not all points fall outside the manifolds.
    assert 0 < ref["precision"] < 1 and 0 < ref["recall"] < 1 and 0 < ref["coverage"] < 1


def test_other_k_and_fake_larger_than_real():
    real, fake = FAKE[:30], REAL  # 30 real, 60 fake
    out = prdc(real, fake, precision_recall_k=2, density_coverage_k=7, block_size=8)
    ref = _reference(real, fake, 2, 7)
    for name in ref:
        assert float(out[name]) == pytest.approx(ref[name], abs=1e-6), name


def test_wrappers():
    ref = _reference(REAL, FAKE, 4, 4)
    p, r = precision_recall(REAL, FAKE, nearest_k=4)
    assert (float(p), float(r)) == pytest.approx((ref["precision"], ref["recall"]), abs=1e-6)
    ref = _reference(REAL, FAKE, 5, 5)
    d, c = density_coverage(REAL, FAKE)
    assert (float(d), float(c)) == pytest.approx((ref["density"], ref["coverage"]), abs=1e-6)


def test_identical_sets():
    out = prdc(REAL, REAL, block_size=16)
    assert float(out["precision"]) == 1.0
    assert float(out["recall"]) == 1.0
    assert float(out["coverage"]) == 1.0
    # Each real ball holds its centre and k - 1 neighbours strictly inside.
    assert float(out["density"]) == pytest.approx(1.0, abs=0.02)


def test_far_away_fakes_score_zero():
    out = prdc(REAL, FAKE + 100.0)
    for name in ("precision", "recall", "density", "coverage"):
        assert float(out[name]) == 0.0


def test_jittable_inside_another_function():
    f = jax.jit(lambda a, b: prdc(a, b, block_size=5)["coverage"])
    assert float(f(REAL, FAKE)) == pytest.approx(_reference(REAL, FAKE, 3, 5)["coverage"])


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="fake_features"):
        prdc(REAL, FAKE[:, :3])
    with pytest.raises(ValueError, match="real_features"):
        prdc(REAL[0], FAKE)
    with pytest.raises(ValueError, match="density_coverage_k"):
        prdc(REAL[:5], FAKE, density_coverage_k=5)
    with pytest.raises(ValueError, match="precision_recall_k"):
        prdc(REAL, FAKE[:3])
    with pytest.raises(ValueError, match="block_size"):
        prdc(REAL, FAKE, block_size=0)
