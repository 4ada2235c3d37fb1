"""PSNR against the NumPy formula, SSIM against scikit-image (Wang et al. 2004 settings)."""

import jax
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from gen_jax.metrics.image_quality import psnr, ssim


def _pair(seed, shape, low, high, noise):
    """A random smooth-ish image batch in [low, high] and a noisy copy, float64."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, shape)
    # Blur along W so the images have structure, not just white noise.
    x = (x + np.roll(x, 1, axis=2) + np.roll(x, -1, axis=2)) / 3
    y = np.clip(x + noise * (high - low) * rng.standard_normal(shape), low, high)
    return x, y


def _skimage_ssim(x, y, data_range):
    """Per-image SSIM with the Wang et al. settings of scikit-image, in float64."""
    return np.array(
        [
            structural_similarity(
                a,
                b,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=data_range,
                channel_axis=-1,
            )
            for a, b in zip(x, y)
        ]
    )


@pytest.mark.parametrize(
    "shape, low, high, noise",
    [
        ((2, 32, 24, 3), 0.0, 1.0, 0.1),
        ((3, 16, 20, 1), -1.0, 1.0, 0.3),
        ((1, 11, 11, 2), 0.0, 255.0, 0.05),  # the smallest image: a 1 x 1 valid map
    ],
)
def test_ssim_matches_skimage(shape, low, high, noise):
    x, y = _pair(0, shape, low, high, noise)
    ours = ssim(x.astype(np.float32), y.astype(np.float32), data_range=high - low)
    assert ours.shape == (shape[0],)
    np.testing.assert_allclose(ours, _skimage_ssim(x, y, high - low), rtol=1e-4, atol=1e-5)


def test_ssim_float64_matches_skimage_tightly():
    x, y = _pair(1, (2, 20, 18, 3), 0.0, 1.0, 0.2)
    with jax.enable_x64(True):
        ours = ssim(x, y, data_range=1.0)
        np.testing.assert_allclose(ours, _skimage_ssim(x, y, 1.0), rtol=1e-10)


def test_ssim_of_identical_images_is_one_and_jittable():
    x, _ = _pair(2, (2, 16, 16, 3), 0.0, 1.0, 0.0)
    np.testing.assert_allclose(
        jax.jit(ssim, static_argnames="data_range")(x, x, data_range=1.0), 1.0, rtol=1e-6
    )


def test_psnr_matches_numpy_formula():
    x, y = _pair(3, (4, 8, 8, 3), 0.0, 255.0, 0.05)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    expected = 10 * np.log10(255.0**2 / mse)
    np.testing.assert_allclose(psnr(x, y, data_range=255.0), expected, rtol=1e-5)
    # A constant error of 0.1 on [0, 1] data is exactly 20 dB.
    z = np.full((1, 4, 4, 1), 0.5)
    np.testing.assert_allclose(psnr(z + 0.1, z, data_range=1.0), [20.0], rtol=1e-5)
    assert np.isinf(np.asarray(psnr(z, z, data_range=1.0))).all()


def test_errors_name_the_input():
    x = np.zeros((2, 16, 16, 1))
    with pytest.raises(ValueError, match="reference"):
        ssim(x, x[:1], data_range=1.0)
    with pytest.raises(ValueError, match="images"):
        psnr(x[0], x[0], data_range=1.0)
    with pytest.raises(ValueError, match="filter_size"):
        ssim(x[:, :10], x[:, :10], data_range=1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0.0)
