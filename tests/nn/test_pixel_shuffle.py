"""pixel_shuffle / pixel_unshuffle: PyTorch's channel order, exact inverses, any dtype."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.pixel_shuffle import PixelShuffle, PixelUnshuffle, pixel_shuffle, pixel_unshuffle


def test_one_pixel_follows_pytorch_channel_order():
    # r=2, 2 output channels: output channel c at offset (i, j) is input channel c*4 + i*2 + j.
    # (TensorFlow's depth_to_space would give [[0, 2], [4, 6]] for channel 0.)
    x = jnp.arange(8.0).reshape(1, 1, 1, 8)
    y = pixel_shuffle(x, 2)
    chex.assert_shape(y, (1, 2, 2, 2))
    np.testing.assert_array_equal(y[0, :, :, 0], [[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(y[0, :, :, 1], [[4.0, 5.0], [6.0, 7.0]])


def test_spatial_interleaving_by_hand():
    # x[0, h, w, k] = 100h + 10w + k; each input pixel becomes the 2x2 block at (2h, 2w),
    # with channel k = 2i + j at offset (i, j).
    h, w, k = np.meshgrid(np.arange(2), np.arange(2), np.arange(4), indexing="ij")
    x = jnp.asarray(100 * h + 10 * w + k, jnp.int32)[None]
    expected = [
        [0, 1, 10, 11],
        [2, 3, 12, 13],
        [100, 101, 110, 111],
        [102, 103, 112, 113],
    ]
    y = pixel_shuffle(x, 2)
    chex.assert_shape(y, (1, 4, 4, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    np.testing.assert_array_equal(pixel_unshuffle(y, 2), x)


def test_matches_the_index_formula_non_square_r3():
    b, h, w, c, r = 2, 2, 3, 2, 3
    x = np.random.default_rng(0).normal(size=(b, h, w, c * r * r)).astype(np.float32)
    expected = np.empty((b, h * r, w * r, c), np.float32)
    for hh in range(h):
        for ww in range(w):
            for i in range(r):
                for j in range(r):
                    for cc in range(c):
                        expected[:, hh * r + i, ww * r + j, cc] = x[
                            :, hh, ww, cc * r * r + i * r + j
                        ]
    np.testing.assert_array_equal(pixel_shuffle(x, r), expected)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_shuffle_and_unshuffle_are_inverses(r):
    key = jax.random.PRNGKey(r)
    x = jax.random.normal(key, (2 * 3 * 4 * 5 * r * r,)).reshape(2, 3, 4, 5 * r * r)
    np.testing.assert_array_equal(pixel_unshuffle(pixel_shuffle(x, r), r), x)
    y = jax.random.normal(key, (2 * 3 * r * 4 * r * 5,)).reshape(2, 3 * r, 4 * r, 5)
    np.testing.assert_array_equal(pixel_shuffle(pixel_unshuffle(y, r), r), y)


def test_factor_one_is_the_identity():
    x = jnp.arange(24.0).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(pixel_shuffle(x, 1), x)
    np.testing.assert_array_equal(pixel_unshuffle(x, 1), x)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.int8, jnp.float32])
def test_keeps_dtype(dtype):
    x = jnp.ones((1, 2, 2, 4), dtype)
    assert pixel_shuffle(x, 2).dtype == dtype
    assert pixel_unshuffle(x, 2).dtype == dtype


def test_gradient_is_the_inverse_permutation():
    """The shuffle is a permutation, so its vector-Jacobian product is the unshuffle."""
    x = jnp.arange(2 * 2 * 3 * 8, dtype=jnp.float32).reshape(2, 2, 3, 8)
    cotangent = jnp.sin(jnp.arange(2 * 4 * 6 * 2, dtype=jnp.float32)).reshape(2, 4, 6, 2)
    grad = jax.grad(lambda x: jnp.sum(pixel_shuffle(x, 2) * cotangent))(x)
    np.testing.assert_array_equal(grad, pixel_unshuffle(cotangent, 2))


def test_modules_match_functions_under_jit():
    x = jnp.arange(2 * 2 * 3 * 12, dtype=jnp.float32).reshape(2, 2, 3, 12)
    shuffle, unshuffle = PixelShuffle(2), PixelUnshuffle(2)
    assert shuffle.init(jax.random.PRNGKey(0), x) == {}  # No parameters, no statistics.
    y = jax.jit(lambda x: shuffle.apply({}, x))(x)
    np.testing.assert_array_equal(y, pixel_shuffle(x, 2))
    np.testing.assert_array_equal(jax.jit(lambda y: unshuffle.apply({}, y))(y), x)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match=r"divisible by 4; got x of shape \(1, 2, 2, 6\)"):
        pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)
    with pytest.raises(ValueError, match=r"height and width divisible by 2; got x of shape"):
        pixel_unshuffle(jnp.zeros((1, 4, 3, 1)), 2)
    with pytest.raises(ValueError, match=r"NHWC.*shape \(4, 8\)"):
        pixel_shuffle(jnp.zeros((4, 8)), 2)
    with pytest.raises(ValueError, match="upscale_factor must be a positive integer; got 0"):
        pixel_shuffle(jnp.zeros((1, 1, 1, 4)), 0)
    with pytest.raises(ValueError, match="downscale_factor must be a positive integer; got 1.5"):
        pixel_unshuffle(jnp.zeros((1, 2, 2, 1)), 1.5)
