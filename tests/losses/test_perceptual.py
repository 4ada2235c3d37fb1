"""Gram matrix, Gatys style/content losses and total variation on hand-computed examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gen_jax.losses.perceptual import (
    content_loss,
    gram_matrix,
    style_layer_loss,
    total_variation,
)

# One example, 1x2 positions, 2 channels: rows are positions, columns channels.
F = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
G = np.array([[10.0, 14.0], [14.0, 20.0]])  # F^T F


def test_gram_matrix_by_hand():
    np.testing.assert_allclose(gram_matrix(F)[0], G)
    np.testing.assert_allclose(gram_matrix(F, "positions")[0], G / 2)
    np.testing.assert_allclose(gram_matrix(F, "elements")[0], G / 4)


def test_gram_matrix_is_per_example_and_symmetric():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 5, 6))
    g = gram_matrix(x)
    assert g.shape == (3, 6, 6)
    np.testing.assert_allclose(g, jnp.swapaxes(g, 1, 2), rtol=1e-6)
    np.testing.assert_allclose(g[1], gram_matrix(x[1:2])[0], rtol=1e-6)


def test_style_layer_loss_by_hand():
    # 1 / (4 N^2 M^2) sum (G - A)^2 with N = M = 2.
    np.testing.assert_allclose(style_layer_loss(F, jnp.zeros((2, 2))), [892.0 / 64])
    np.testing.assert_allclose(style_layer_loss(F, G), [0.0])
    a = G.copy()
    a[1, 1] = 18.0
    np.testing.assert_allclose(style_layer_loss(F, a), [4.0 / 64])


def test_style_layer_loss_target_of_another_size():
    # A target with twice the positions and the same statistics: Gram 2G over M_A = 4.
    np.testing.assert_allclose(style_layer_loss(F, 2 * G, target_positions=4), [0.0], atol=1e-7)
    # Per-position Grams [[5,7],[7,10]] vs [[5,7],[7,9]]: 1 / (4 N^2) * 1 = 1/16.
    a = np.array([[20.0, 28.0], [28.0, 36.0]])
    np.testing.assert_allclose(style_layer_loss(F, a, target_positions=4), [1.0 / 16])


def test_style_layer_loss_per_example_with_batched_target():
    f = jnp.concatenate([F, jnp.zeros_like(F)])
    np.testing.assert_allclose(style_layer_loss(f, jnp.stack([G, G])), [0.0, 892.0 / 64])
    np.testing.assert_allclose(style_layer_loss(f, G), [0.0, 892.0 / 64])


def test_style_layer_loss_gradients():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(1), (1, 3, 3, 2), jnp.float64)
        a = jnp.eye(2, dtype=jnp.float64)
        check_grads(lambda f: style_layer_loss(f, a).sum(), (x,), order=2, modes=["rev"])


def test_gram_gradient_is_the_einsum_gradient_to_second_order():
    """The written-out backward pass F (S + S^T) against autodiff of F^T F, in float64."""
    with jax.enable_x64(True):
        kf, ks, kv = jax.random.split(jax.random.PRNGKey(2), 3)
        f = jax.random.normal(kf, (2, 4, 3, 5), jnp.float64)
        s = jax.random.normal(ks, (2, 5, 5), jnp.float64)  # not symmetric on purpose
        v = jax.random.normal(kv, f.shape, jnp.float64)

        def einsum_gram(f):
            flat = f.reshape(2, 12, 5)
            return jnp.einsum("bmi,bmj->bij", flat, flat)

        def loss(gram):
            return lambda f: jnp.sum(s * gram(f)) + jnp.sum(gram(f) ** 2)

        ours = jax.grad(loss(gram_matrix))(f)
        np.testing.assert_allclose(ours, jax.grad(loss(einsum_gram))(f), rtol=1e-12)
        hvp = lambda g: jax.grad(lambda f: jnp.vdot(jax.grad(loss(g))(f), v))(f)
        np.testing.assert_allclose(hvp(gram_matrix), hvp(einsum_gram), rtol=1e-12)
        check_grads(lambda f: gram_matrix(f).sum(), (f,), order=2, modes=["rev"])


def test_style_layer_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="target_gram"):
        style_layer_loss(F, jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="features"):
        style_layer_loss(jnp.zeros((2, 2)), G)


def test_content_loss_by_hand():
    p = jnp.array([[0.0, 2.0], [3.0, 1.0]]).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(content_loss(F, p), [5.0])  # 1/2 (1 + 9)
    np.testing.assert_allclose(content_loss(F, p[0]), [5.0])  # broadcast target
    with pytest.raises(ValueError, match="target_features"):
        content_loss(F, jnp.zeros((1, 2, 2, 2)))


X = jnp.array([[1.0, 2.0, 4.0], [0.0, 2.0, 7.0]]).reshape(1, 2, 3, 1)


def test_total_variation_isotropic_by_hand():
    # (H-1) x (W-1) = 1 x 2 positions: (1^2 + 1^2), (2^2 + 0^2).
    np.testing.assert_allclose(total_variation(X), [6.0])
    np.testing.assert_allclose(total_variation(X, beta=1.0), [np.sqrt(2.0) + 2.0], rtol=1e-6)


def test_total_variation_anisotropic_by_hand():
    # dx: 1, 2, 2, 5; dy: -1, 0, 3.
    np.testing.assert_allclose(total_variation(X, isotropic=False), [34.0 + 10.0])
    # The zero difference contributes sqrt(eps) = 1e-4 (the smoothing under the power).
    np.testing.assert_allclose(total_variation(X, 1.0, isotropic=False), [14.0 + 1e-4], rtol=1e-6)


def test_total_variation_is_per_example_and_zero_on_constants():
    x = jnp.concatenate([X, jnp.full_like(X, 0.3)])
    np.testing.assert_allclose(total_variation(x), [6.0, 0.0])
    # beta < 2 keeps a finite gradient on flat images (eps under the power).
    g = jax.grad(lambda v: total_variation(v, beta=1.0).sum())(jnp.full((1, 3, 3, 1), 0.5))
    assert np.all(np.isfinite(g))


def test_total_variation_rejects_bad_input():
    with pytest.raises(ValueError, match="2x2"):
        total_variation(jnp.zeros((1, 1, 4, 3)))
    with pytest.raises(ValueError, match="beta"):
        total_variation(X, beta=0.0)
