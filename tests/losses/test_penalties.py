"""Tests for gen_jax.losses.penalties, with expected values worked out by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import losses
from gen_jax.models.mlp_gan import TinyMLPDiscriminator


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    # D(x) = 3 x0 - 4 x1 + 7: grad = (3, -4) everywhere, ||grad||^2 = 9 + 16 = 25.
    def d(x):
        return x @ jnp.array([3.0, -4.0]) + 7.0

    real = jnp.array([[0.0, 0.0], [1.0, 2.0], [-5.0, 0.5]])
    np.testing.assert_allclose(losses.r1_penalty(d, real), [25.0, 25.0, 25.0])


def test_r1_is_per_example_for_a_quadratic_discriminator():
    # D(x) = sum x^2, logits [B, 1]: grad = 2x, ||grad||^2 = 4 ||x||^2.
    def d(x):
        return jnp.sum(x**2, axis=-1, keepdims=True)

    real = jnp.array([[1.0, 0.0], [1.0, 2.0], [0.0, -0.5]])
    np.testing.assert_allclose(losses.r1_penalty(d, real), [4.0, 20.0, 1.0])


def test_r1_sums_over_patch_logits_and_image_axes():
    # PatchGAN-like D: logits [B, 2, 2, 1] = 0.5 * x^2 elementwise; grad = x; the penalty
    # is the sum of x^2 over each image: image 0 is all ones (4), image 1 is (1, 2, 0, -3) (14).
    def d(x):
        return 0.5 * x**2

    real = jnp.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 0.0, -3.0]]).reshape(2, 2, 2, 1)
    np.testing.assert_allclose(losses.r1_penalty(d, real), [4.0, 14.0])


def test_r1_of_a_packed_discriminator_gives_each_sample_its_pack_gradient():
    # Pack of 2 samples in 1-D: D(a, b) = a * b per pack; grad wrt a is b and wrt b is a.
    def d(x):
        pairs = x.reshape(-1, 2)
        return (pairs[:, 0] * pairs[:, 1])[:, None]

    real = jnp.array([[2.0], [3.0], [-1.0], [0.5]])
    np.testing.assert_allclose(losses.r1_penalty(d, real), [9.0, 4.0, 0.25, 1.0])


def test_r1_on_an_mlp_is_finite_nonnegative_and_jittable():
    module = TinyMLPDiscriminator()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))

    def d(x):
        return module.apply(params, x)

    real = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    r1 = jax.jit(lambda x: losses.r1_penalty(d, x))(real)
    chex.assert_shape(r1, (4,))
    chex.assert_tree_all_finite(r1)
    assert bool(jnp.all(r1 >= 0))
    np.testing.assert_allclose(r1, losses.r1_penalty(d, real), rtol=1e-6)


def test_r1_refuses_an_array_without_a_batch_axis():
    with pytest.raises(ValueError, match="leading batch axis"):
        losses.r1_penalty(lambda x: x, jnp.array(1.0))
