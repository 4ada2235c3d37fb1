"""FGSM and the iterative attack on models whose gradients are known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.synthesis.adversarial import fgsm, iterative_fgsm


def _linear_loss(w, b, y):
    """Cross-entropy of a linear softmax classifier: logits = x @ w + b."""

    def loss_fn(x):
        logits = x.reshape(x.shape[0], -1) @ w + b
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)

    return loss_fn


def test_fgsm_on_a_logistic_model_moves_against_the_true_class():
    # Binary logistic regression, logit = w·x, label 1: J = softplus(-w·x), so
    # ∇ₓJ = -σ(-w·x) w and sign ∇ₓJ = -sign(w), whatever x is.
    w = jnp.array([0.5, -2.0, 0.0, 3.0])
    x = jnp.array([[0.1, 0.2, 0.3, -0.4], [0.0, 0.0, 0.0, 0.0]])

    def loss_fn(v):
        return jax.nn.softplus(-(v @ w))

    adv = fgsm(loss_fn, x, 0.25, clip=None)
    expected = np.asarray(x) + 0.25 * np.array([-1.0, 1.0, 0.0, -1.0])
    np.testing.assert_allclose(adv, expected, rtol=0, atol=1e-7)
    assert np.all(np.asarray(loss_fn(adv)) > np.asarray(loss_fn(x)))


def test_fgsm_clips_to_the_valid_range():
    x = jnp.array([[0.95, -0.95, 0.0]])
    w = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    loss_fn = _linear_loss(w, jnp.zeros(2), jnp.array([0]))
    adv = fgsm(loss_fn, x, 0.2, clip=(-1.0, 1.0))
    # Class 0 is favoured by +x0, -x1, +x2: the attack moves the other way, clipped.
    np.testing.assert_allclose(adv, [[0.75, -0.75, -0.2]], atol=1e-6)


def test_fgsm_gradients_are_per_example():
    # Two examples with opposite labels get opposite perturbations.
    w = jnp.array([[2.0, -2.0]])
    x = jnp.zeros((2, 1))
    loss_fn = _linear_loss(w, jnp.zeros(2), jnp.array([0, 1]))
    adv = fgsm(loss_fn, x, 0.1, clip=None)
    np.testing.assert_allclose(adv, [[-0.1], [0.1]], atol=1e-7)


def test_iterative_stays_in_the_ball_and_beats_one_step():
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    # A non-linear model: one step of fixed size is not optimal, iterating helps.
    w1 = jax.random.normal(k1, (8, 16))
    w2 = jax.random.normal(k2, (16, 3))
    x = jax.random.uniform(k3, (32, 8), minval=-1, maxval=1)
    y = jnp.arange(32) % 3

    def loss_fn(v):
        return optax.softmax_cross_entropy_with_integer_labels(jnp.tanh(v @ w1) @ w2, y)

    eps = 0.1
    one = fgsm(loss_fn, x, eps)
    many = iterative_fgsm(loss_fn, x, eps, steps=20)
    pgd = iterative_fgsm(loss_fn, x, eps, steps=20, key=jax.random.PRNGKey(1))
    for adv in (one, many, pgd):
        assert float(jnp.max(jnp.abs(adv - x))) <= eps + 1e-6
        assert float(jnp.min(adv)) >= -1.0 and float(jnp.max(adv)) <= 1.0
    assert float(loss_fn(many).mean()) > float(loss_fn(one).mean()) > float(loss_fn(x).mean())
    assert float(loss_fn(pgd).mean()) > float(loss_fn(x).mean())


def test_eps_may_be_traced_so_one_program_serves_a_sweep():
    w = jnp.array([1.0, -1.0])

    def loss_fn(v):
        return jax.nn.softplus(-(v @ w))

    attack = jax.jit(lambda e: iterative_fgsm(loss_fn, jnp.zeros((1, 2)), e, steps=3))
    for eps in (0.0, 0.05, 0.3):
        adv = np.asarray(attack(jnp.float32(eps)))
        np.testing.assert_allclose(adv, [[-eps, eps]], atol=1e-6)
    assert attack._cache_size() == 1


@pytest.mark.parametrize("kwargs", [{"eps": -0.1}, {"eps": 0.1, "clip": (1.0, -1.0)}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        fgsm(lambda v: v.sum(-1), jnp.zeros((1, 2)), **kwargs)
    with pytest.raises(ValueError, match="steps"):
        iterative_fgsm(lambda v: v.sum(-1), jnp.zeros((1, 2)), 0.1, steps=0)
