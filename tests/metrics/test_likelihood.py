"""Nats <-> bits per dimension, with hand-computed examples of the discretisation term."""

import math

import numpy as np
import pytest
import scipy.stats

from gen_jax.metrics.likelihood import (
    bits_per_dim_to_nats,
    nats_to_bits_per_dim,
    quantization_bin_width,
)

D = 28 * 28


def test_uniform_density_on_unit_interval_is_eight_bits():
    # p(x) = 1 on [0, 1)^D: nll = 0 nats; each of 256 bins has probability 1/256.
    w = quantization_bin_width(0.0, 1.0)
    assert w == 1 / 256
    assert float(nats_to_bits_per_dim(0.0, D, bin_width=w)) == pytest.approx(8.0, rel=1e-6)


def test_uniform_density_on_signed_interval_is_eight_bits():
    # p(x) = 2^-D on [-1, 1)^D: nll = D ln 2; bins of width 2/256.
    w = quantization_bin_width(-1.0, 1.0)
    assert w == 2 / 256
    bpd = nats_to_bits_per_dim(D * math.log(2.0), D, bin_width=w)
    assert float(bpd) == pytest.approx(8.0, rel=1e-6)


def test_discrete_uniform_over_256_levels_is_eight_bits():
    # A 256-way softmax that is uniform: -log P = D ln 256, no bin term.
    assert float(nats_to_bits_per_dim(D * math.log(256.0), D)) == pytest.approx(8.0, rel=1e-6)


def test_hand_computed_example_per_example_shape():
    nll = np.array([3.0, 0.0, -1.0])  # densities can exceed 1: negative nll is valid
    bpd = nats_to_bits_per_dim(nll, np.prod((1, 2)), bin_width=1 / 256)  # NumPy int is fine
    expected = nll / (2 * math.log(2.0)) + 8.0
    assert bpd.shape == (3,)
    np.testing.assert_allclose(bpd, expected, rtol=1e-6)


def test_density_with_correction_matches_exact_bin_probabilities():
    # A smooth density over [0, 1] (normal, mean 0.5, sd 0.2): -log p(centre) - log w is
    # close to the exact -log P(bin) of the discretised model for narrow bins.
    w = 1 / 256
    k = np.arange(60, 200)
    centres = (k + 0.5) * w
    law = scipy.stats.norm(0.5, 0.2)
    nll_density = -law.logpdf(centres)  # one dimension per example, D = 1
    exact_bits = -np.log2(law.cdf((k + 1) * w) - law.cdf(k * w))
    ours = nats_to_bits_per_dim(nll_density, 1, bin_width=w)
    np.testing.assert_allclose(ours, exact_bits, atol=1e-4)


def test_round_trip():
    nll = np.array([1234.5, 2000.0])
    for w in (1.0, 1 / 256, 1 / 128):
        back = bits_per_dim_to_nats(nats_to_bits_per_dim(nll, D, bin_width=w), D, bin_width=w)
        np.testing.assert_allclose(back, nll, rtol=1e-5)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="num_dims"):
        nats_to_bits_per_dim(1.0, 0)
    with pytest.raises(ValueError, match="bin_width"):
        nats_to_bits_per_dim(1.0, 4, bin_width=-1.0)
    with pytest.raises(ValueError, match="high"):
        quantization_bin_width(1.0, 1.0)
    with pytest.raises(ValueError, match="num_levels"):
        quantization_bin_width(0.0, 1.0, 0)
