"""Histogram (Wasserstein-1) and power-spectrum distances, and the shuffled-pixel baseline."""

import numpy as np
import pytest

from gen_jax.metrics.texture import (
    histogram_distance,
    radial_log_spectrum,
    shuffled_pixels,
    spectrum_distance,
    texture_report,
    texture_spectra,
)


def _smooth_texture(h=32, w=32, seed=0):
    """Low-pass noise: a texture with a decaying spectrum."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h, w, 3))
    f = np.fft.fft2(noise, axes=(0, 1))
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    f *= (1.0 / (1.0 + 40.0 * np.hypot(fy, fx)) ** 2)[..., None]
    x = np.real(np.fft.ifft2(f, axes=(0, 1)))
    return 0.5 + 0.4 * x / np.abs(x).max()


def test_histogram_distance_by_hand():
    a, b = np.full((4, 4, 3), 0.2), np.full((2, 3, 3), 0.5)
    assert histogram_distance(a, b) == pytest.approx(0.3)
    two = np.array([[[0.0], [1.0]]])  # pixels {0, 1} against {0, 0}: W1 = 1/2
    assert histogram_distance(two, np.zeros((1, 2, 1))) == pytest.approx(0.5)
    per = histogram_distance(
        np.zeros((2, 2, 3)),
        np.stack([np.full((2, 2), v) for v in (0.1, 0.2, 0.3)], -1),
        per_channel=True,
    )
    np.testing.assert_allclose(per, [0.1, 0.2, 0.3])


def test_spectrum_distance_counts_decades():
    x = _smooth_texture()
    assert spectrum_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    # 10x the contrast is 100x the power at every frequency: 2 decades everywhere.
    low = 0.5 + 0.1 * (x - 0.5)
    assert spectrum_distance(x, low) == pytest.approx(2.0, rel=1e-6)
    np.testing.assert_allclose(spectrum_distance(x, low, per_channel=True), [2.0] * 3, rtol=1e-6)


def test_radial_spectrum_peaks_at_a_sinusoid_frequency():
    w = np.arange(64)
    img = np.broadcast_to(0.5 + 0.3 * np.sin(2 * np.pi * w / 8.0), (64, 64))  # 1/8 cycles/px
    s = radial_log_spectrum(img, num_bins=16)
    assert s.shape == (1, 16)
    assert int(np.nanargmax(s[0])) == 3  # 0.125 lies in the bin (0.09375, 0.125]


def test_shuffled_pixels_keeps_the_pixels():
    x = _smooth_texture(8, 8)
    s = shuffled_pixels(x, seed=1)
    assert s.shape == x.shape
    rows = lambda a: sorted(map(tuple, a.reshape(-1, 3)))  # the multiset of colour vectors
    assert rows(s) == rows(x)
    assert not np.array_equal(s, x)
    assert shuffled_pixels(x, (4, 5)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="pixels"):
        shuffled_pixels(x, (9, 9))


def test_report_puts_the_shuffled_baseline_beside_the_result():
    source = _smooth_texture(48, 48, seed=0)
    result = _smooth_texture(24, 24, seed=1)  # same process, another sample
    r = texture_report(result, source)
    assert set(r) == {
        "histogram_w1",
        "spectrum_rms_log10",
        "shuffled_histogram_w1",
        "shuffled_spectrum_rms_log10",
        "crop_histogram_w1",
        "crop_spectrum_rms_log10",
    }
    assert r["shuffled_histogram_w1"] < 0.02  # the same pixels
    assert r["shuffled_spectrum_rms_log10"] > 3 * r["spectrum_rms_log10"]  # structure is gone
    assert r["crop_spectrum_rms_log10"] < r["shuffled_spectrum_rms_log10"]


def test_no_crop_reference_when_the_source_is_the_result_size():
    # A crop of the source's own size is the source itself: distance 0 by construction.
    x = _smooth_texture(24, 24, seed=0)
    r = texture_report(_smooth_texture(24, 24, seed=1), x)
    assert "crop_spectrum_rms_log10" not in r and "crop_histogram_w1" not in r
    assert "crop" not in texture_spectra(x, x)
    assert "crop_histogram_w1" in texture_report(x[:20], x)  # larger in one side suffices


def test_spectra_are_the_curves_the_report_compares():
    source = _smooth_texture(48, 48, seed=0)
    result = _smooth_texture(24, 24, seed=1)
    s = texture_spectra(result, source, seed=3)
    assert set(s) == {"frequency", "source", "result", "shuffled", "crop"}
    assert s["frequency"].shape == (12,)  # half the smaller side
    assert np.all(np.diff(s["frequency"]) > 0) and 0 < s["frequency"][0] < s["frequency"][-1] < 0.5
    for name in ("source", "result", "shuffled", "crop"):
        assert s[name].shape == (12,)
    # Channels equal here, so the report's RMS distance is the RMS of the curves' difference.
    grey = np.repeat(result[..., :1], 3, axis=-1)
    g = texture_spectra(grey, np.repeat(source[..., :1], 3, axis=-1))
    rms = np.sqrt(np.mean((g["result"] - g["source"]) ** 2))
    assert rms == pytest.approx(spectrum_distance(grey, np.repeat(source[..., :1], 3, -1)))
    # The shuffled source is white: flat next to the smooth texture's falling spectrum.
    drop = lambda c: c[:3].mean() - c[-3:].mean()
    assert drop(s["source"]) > 1.0 and abs(drop(s["shuffled"])) < 0.5


def test_mismatched_channels_are_refused():
    with pytest.raises(ValueError, match="channels"):
        histogram_distance(np.zeros((4, 4, 3)), np.zeros((4, 4, 1)))
    with pytest.raises(ValueError, match="4x4"):
        radial_log_spectrum(np.zeros((3, 8, 3)))
