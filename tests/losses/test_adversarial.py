"""Tests for gen_jax.losses.adversarial.

Expected values are written by hand (literals, with the formula beside them) or computed
with Python's `math` module, never with the jax functions the implementation uses.
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gen_jax import losses
from gen_jax.losses import adversarial as adv

# softplus(x) = log(1 + e^x), by hand; `test_softplus_literals` checks them against `math`.
SP_0 = 0.6931471805599453  # log 2
SP_1 = 1.3132616875182228
SP_M1 = 0.31326168751822286
SP_2 = 2.1269280110429727
SP_M2 = 0.12692801104297263
SP_HALF = 0.9740769841801067
SP_M_HALF = 0.47407698418010663

# Flat logits [B] = [3].
REAL = [0.0, 2.0, -1.0]
FAKE = [1.0, -2.0, 0.5]

FAMILIES = list(adv.GAN_LOSSES)
GENERATORS = [adv.GAN_LOSSES[k][0] for k in FAMILIES]
DISCRIMINATORS = [adv.GAN_LOSSES[k][1] for k in FAMILIES]


def _sp(x):
    """Reference softplus with the math module."""
    return math.log1p(math.exp(x))


# Elementwise references (plain Python floats) for the patch tests.
G_REF = {
    "minimax": lambda f: -_sp(f),
    "non_saturating": lambda f: _sp(-f),
    "maximum_likelihood": lambda f: -0.5 * math.exp(min(f, 50.0)),
    "least_squares": lambda f: 0.5 * (f - 1.0) ** 2,
    "wasserstein": lambda f: -f,
    "hinge": lambda f: -f,
}
D_REF = {
    "minimax": lambda r, f: _sp(-r) + _sp(f),
    "non_saturating": lambda r, f: _sp(-r) + _sp(f),
    "maximum_likelihood": lambda r, f: _sp(-r) + _sp(f),
    "least_squares": lambda r, f: 0.5 * (r - 1.0) ** 2 + 0.5 * f**2,
    "wasserstein": lambda r, f: f - r,
    "hinge": lambda r, f: max(0.0, 1.0 - r) + max(0.0, 1.0 + f),
}


def test_softplus_literals():
    for literal, x in [
        (SP_0, 0.0),
        (SP_1, 1.0),
        (SP_M1, -1.0),
        (SP_2, 2.0),
        (SP_M2, -2.0),
        (SP_HALF, 0.5),
        (SP_M_HALF, -0.5),
    ]:
        assert literal == pytest.approx(math.log(1.0 + math.exp(x)), rel=1e-12)


# ------------------------------------------------------------------------------------------
# Hand-computed values on flat [B] logits.
# ------------------------------------------------------------------------------------------

GENERATOR_CASES = {
    # -softplus(f)
    "minimax": [-SP_1, -SP_M2, -SP_HALF],
    # softplus(-f)
    "non_saturating": [SP_M1, SP_2, SP_M_HALF],
    # -0.5 * exp(f): e = 2.718281828459045, e^-2 = 0.1353352832366127, e^0.5 = 1.6487212707001282
    "maximum_likelihood": [-1.3591409142295225, -0.06766764161830635, -0.8243606353500641],
    # 0.5 * (f - 1)^2 = 0.5 * [0, 9, 0.25]
    "least_squares": [0.0, 4.5, 0.125],
    # -f
    "wasserstein": [-1.0, 2.0, -0.5],
    "hinge": [-1.0, 2.0, -0.5],
}

DISCRIMINATOR_CASES = {
    # softplus(-r) + softplus(f)
    "minimax": [SP_0 + SP_1, SP_M2 + SP_M2, SP_1 + SP_HALF],
    "non_saturating": [SP_0 + SP_1, SP_M2 + SP_M2, SP_1 + SP_HALF],
    "maximum_likelihood": [SP_0 + SP_1, SP_M2 + SP_M2, SP_1 + SP_HALF],
    # 0.5 * (r - 1)^2 + 0.5 * f^2 = 0.5 * [1, 1, 4] + 0.5 * [1, 4, 0.25]
    "least_squares": [1.0, 2.5, 2.125],
    # f - r
    "wasserstein": [1.0, -4.0, 1.5],
    # relu(1 - r) + relu(1 + f) = [1, 0, 2] + [2, 0, 1.5]
    "hinge": [3.0, 0.0, 3.5],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_loss_flat(family):
    g_fn, _ = adv.get_gan_loss(family)
    out = g_fn(jnp.array(FAKE, jnp.float32))
    chex.assert_shape(out, (3,))
    np.testing.assert_allclose(out, GENERATOR_CASES[family], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_discriminator_loss_flat(family):
    _, d_fn = adv.get_gan_loss(family)
    out = d_fn(jnp.array(REAL, jnp.float32), jnp.array(FAKE, jnp.float32))
    chex.assert_shape(out, (3,))
    np.testing.assert_allclose(out, DISCRIMINATOR_CASES[family], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_column_logits_b1_give_per_example_b(family):
    g_fn, d_fn = adv.get_gan_loss(family)
    r = jnp.array(REAL, jnp.float32)[:, None]
    f = jnp.array(FAKE, jnp.float32)[:, None]
    chex.assert_shape(g_fn(f), (3,))
    chex.assert_shape(d_fn(r, f), (3,))
    np.testing.assert_allclose(g_fn(f), GENERATOR_CASES[family], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d_fn(r, f), DISCRIMINATOR_CASES[family], rtol=1e-6, atol=1e-6)


def test_label_smoothing_value():
    # (1 - s) * softplus(-r) + s * softplus(r) + softplus(f), s = 0.1.
    s = 0.1
    expected = [
        (1 - s) * SP_0 + s * SP_0 + SP_1,  # r = 0: smoothing changes nothing
        (1 - s) * SP_M2 + s * SP_2 + SP_M2,  # r = 2
        (1 - s) * SP_1 + s * SP_M1 + SP_HALF,  # r = -1
    ]
    np.testing.assert_allclose(
        expected, [2.006408868078168, 0.4538560220859453, 2.1873386716983294], rtol=1e-12
    )
    out = adv.minimax_discriminator_loss(jnp.array(REAL), jnp.array(FAKE), label_smoothing=s)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_label_smoothing_optimum_is_smoothed_target():
    # The real term is minimised where sigmoid(r) = 1 - s, i.e. r = log((1 - s) / s).
    s = 0.1
    r_star = math.log((1 - s) / s)
    grad_r = jax.grad(
        lambda r: adv.minimax_discriminator_loss(r, jnp.zeros(1), label_smoothing=s).sum()
    )(jnp.array([r_star], jnp.float32))
    np.testing.assert_allclose(grad_r, [0.0], atol=1e-6)


def test_label_smoothing_rejects_out_of_range():
    with pytest.raises(ValueError, match="label_smoothing"):
        adv.minimax_discriminator_loss(jnp.zeros(2), jnp.zeros(2), label_smoothing=1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        adv.minimax_discriminator_loss(jnp.zeros(2), jnp.zeros(2), label_smoothing=-0.1)


def test_integer_logits_are_accepted():
    np.testing.assert_allclose(adv.least_squares_generator_loss([0, 1, 3]), [0.5, 0.0, 2.0])


# ------------------------------------------------------------------------------------------
# Patch logits [B, H, W, 1]: elementwise, then mean over trailing axes.
# ------------------------------------------------------------------------------------------

# [B=2, H=2, W=2, C=1]
PATCH_REAL = [
    [[[0.0], [2.0]], [[-1.0], [3.0]]],
    [[[0.5], [0.5]], [[-2.0], [1.0]]],
]
PATCH_FAKE = [
    [[[1.0], [-2.0]], [[0.5], [-1.0]]],
    [[[-0.5], [0.0]], [[2.0], [-3.0]]],
]


def _flat(example):
    return [v for row in example for col in row for v in col]


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_loss_patch_averages_per_example(family):
    g_fn, _ = adv.get_gan_loss(family)
    out = g_fn(jnp.array(PATCH_FAKE, jnp.float32))
    chex.assert_shape(out, (2,))
    expected = [sum(map(G_REF[family], _flat(ex))) / 4 for ex in PATCH_FAKE]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_discriminator_loss_patch_averages_per_example(family):
    _, d_fn = adv.get_gan_loss(family)
    out = d_fn(jnp.array(PATCH_REAL, jnp.float32), jnp.array(PATCH_FAKE, jnp.float32))
    chex.assert_shape(out, (2,))
    expected = [
        sum(map(D_REF[family], _flat(r), _flat(f))) / 4 for r, f in zip(PATCH_REAL, PATCH_FAKE)
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_patch_hand_values():
    r = jnp.array(PATCH_REAL, jnp.float32)
    f = jnp.array(PATCH_FAKE, jnp.float32)
    # Hinge, example 0: mean relu(1 - r) = mean [1, 0, 2, 0] = 0.75,
    #                   mean relu(1 + f) = mean [2, 0, 1.5, 0] = 0.875.
    # Example 1:        mean relu(1 - r) = mean [0.5, 0.5, 3, 0] = 1.0,
    #                   mean relu(1 + f) = mean [0.5, 1, 3, 0] = 1.125.
    np.testing.assert_allclose(adv.hinge_discriminator_loss(r, f), [1.625, 2.125], rtol=1e-6)
    # Least squares G, 0.5 * (f - 1)^2: example 0 mean 0.5 * [0, 9, 0.25, 4] = 1.65625,
    #                                   example 1 mean 0.5 * [2.25, 1, 1, 16] = 2.53125.
    np.testing.assert_allclose(adv.least_squares_generator_loss(f), [1.65625, 2.53125], rtol=1e-6)
    # Wasserstein critic, mean (f - r): example 0 (-1.5 - 4) / 4, example 1 (-1.5 - 0) / 4.
    np.testing.assert_allclose(
        adv.wasserstein_discriminator_loss(r, f), [-1.375, -0.375], rtol=1e-6
    )


# ------------------------------------------------------------------------------------------
# Numerics: finite at +-100, gradient directions, saturation, gradient checks.
# ------------------------------------------------------------------------------------------

EXTREME_R = jnp.array([-100.0, 100.0, -100.0, 100.0], jnp.float32)
EXTREME_F = jnp.array([-100.0, -100.0, 100.0, 100.0], jnp.float32)


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_finite_value_and_grad_at_extremes(family):
    g_fn, _ = adv.get_gan_loss(family)
    value, grad = jax.value_and_grad(lambda f: g_fn(f).sum())(EXTREME_F)
    chex.assert_tree_all_finite((g_fn(EXTREME_F), value, grad))


_D_EXTREME_CASES = [(k, {}) for k in FAMILIES] + [("minimax", {"label_smoothing": 0.1})]


@pytest.mark.parametrize(
    "family, kwargs",
    _D_EXTREME_CASES,
    ids=[k + ("_smoothed" if kw else "") for k, kw in _D_EXTREME_CASES],
)
def test_discriminator_finite_value_and_grad_at_extremes(family, kwargs):
    _, d_fn = adv.get_gan_loss(family)
    loss = lambda r, f: d_fn(r, f, **kwargs).sum()
    value, grads = jax.value_and_grad(loss, argnums=(0, 1))(EXTREME_R, EXTREME_F)
    chex.assert_tree_all_finite((d_fn(EXTREME_R, EXTREME_F, **kwargs), value, grads))


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_directions(family):
    # Descending every loss moves D's real logit up and its fake logit down (D) and the fake
    # logit up (G): d/dr < 0, d/df > 0 for D; d/df < 0 for G. Checked at r = f = 0.5
    # (away from the hinge's kinks and the least-squares optimum at f = 0).
    g_fn, d_fn = adv.get_gan_loss(family)
    x = jnp.full((2,), 0.5, jnp.float32)
    d_r, d_f = jax.grad(lambda r, f: d_fn(r, f).sum(), argnums=(0, 1))(x, x)
    g_f = jax.grad(lambda f: g_fn(f).sum())(x)
    assert jnp.all(d_r < 0) and jnp.all(d_f > 0) and jnp.all(g_f < 0)


def test_minimax_generator_saturates_where_non_saturating_does_not():
    # D confidently rejects the fakes (logit -10, D(G(z)) ~ 4.5e-5).
    x = jnp.array([-10.0], jnp.float32)
    g_mm = jax.grad(lambda f: adv.minimax_generator_loss(f).sum())(x)
    g_ns = jax.grad(lambda f: adv.non_saturating_generator_loss(f).sum())(x)
    # d/dx -softplus(x) = -sigmoid(x); d/dx softplus(-x) = -sigmoid(-x).
    np.testing.assert_allclose(g_mm, [-1.0 / (1.0 + math.exp(10.0))], rtol=1e-5)  # -4.54e-5
    np.testing.assert_allclose(g_ns, [-1.0 / (1.0 + math.exp(-10.0))], rtol=1e-6)  # -0.99995
    assert abs(g_ns[0]) > 1e4 * abs(g_mm[0])


def test_maximum_likelihood_cap():
    x = jnp.array([0.0, 60.0], jnp.float32)
    value = adv.maximum_likelihood_generator_loss(x)
    grad = jax.grad(lambda f: adv.maximum_likelihood_generator_loss(f).sum())(x)
    # Below the cap: -0.5 * e^0 and gradient -0.5; above it: -0.5 * e^50 and gradient 0.
    np.testing.assert_allclose(value, [-0.5, -0.5 * math.exp(50.0)], rtol=1e-6)
    np.testing.assert_allclose(grad, [-0.5, 0.0])
    capped = adv.maximum_likelihood_generator_loss(x, max_logit=1.0)
    np.testing.assert_allclose(capped, [-0.5, -0.5 * math.e], rtol=1e-6)


_GRAD_CHECK_X = jnp.array([-1.3, 0.2, 0.7, 2.1], jnp.float32)
_GRAD_CHECK_Y = jnp.array([0.4, -0.9, 1.6, -2.2], jnp.float32)


@pytest.mark.parametrize(
    "fn, args",
    [
        (adv.non_saturating_generator_loss, (_GRAD_CHECK_X,)),
        (adv.maximum_likelihood_generator_loss, (_GRAD_CHECK_X,)),
        (
            functools.partial(adv.minimax_discriminator_loss, label_smoothing=0.2),
            (_GRAD_CHECK_X, _GRAD_CHECK_Y),
        ),
        (adv.hinge_discriminator_loss, (_GRAD_CHECK_X, _GRAD_CHECK_Y)),  # away from kinks
    ],
    ids=["non_saturating_g", "maximum_likelihood_g", "minimax_d_smoothed", "hinge_d"],
)
def test_check_grads(fn, args):
    # Reverse-over-reverse only: the forward-mode pass doubles the time for no extra coverage
    # of these elementwise forms (the suite must stay fast on a 2-core CI machine).
    check_grads(fn, args, order=2, modes=("rev",), atol=1e-2, rtol=1e-2, eps=1e-2)


# ------------------------------------------------------------------------------------------
# Errors, registry, jit.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d_fn", DISCRIMINATORS, ids=FAMILIES)
def test_discriminator_shape_mismatch_raises(d_fn):
    with pytest.raises(ValueError, match=r"real_logits.shape=\(4,\).*fake_logits.shape=\(4, 1\)"):
        d_fn(jnp.zeros((4,)), jnp.zeros((4, 1)))


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_d_logits_raise(family):
    g_fn, d_fn = adv.get_gan_loss(family)
    with pytest.raises(ValueError, match="fake_logits.*0-d"):
        g_fn(jnp.float32(0.5))
    with pytest.raises(ValueError, match="real_logits.*0-d"):
        d_fn(jnp.float32(0.5), jnp.float32(0.5))
    with pytest.raises(ValueError, match="fake_logits.*0-d"):
        d_fn(jnp.zeros((2,)), 0.5)


def test_registry():
    assert set(adv.GAN_LOSSES) == {
        "minimax",
        "non_saturating",
        "maximum_likelihood",
        "least_squares",
        "wasserstein",
        "hinge",
    }
    assert adv.get_gan_loss("hinge") == (adv.hinge_generator_loss, adv.hinge_discriminator_loss)
    # The non-saturating and maximum-likelihood families share the standard discriminator.
    assert adv.non_saturating_discriminator_loss is adv.minimax_discriminator_loss
    assert adv.maximum_likelihood_discriminator_loss is adv.minimax_discriminator_loss


def test_get_gan_loss_unknown_name():
    with pytest.raises(ValueError, match=r"'wgan'.*'minimax'.*'hinge'"):
        adv.get_gan_loss("wgan")


def test_package_reexports():
    from gen_jax.losses import penalties, perceptual

    modules = (adv, penalties, perceptual)
    assert set(losses.__all__) == set().union(*(m.__all__ for m in modules))
    for module in modules:
        for name in module.__all__:
            assert getattr(losses, name) is getattr(module, name)


@pytest.mark.parametrize("family", FAMILIES)
def test_jit_matches_eager(family):
    g_fn, d_fn = adv.get_gan_loss(family)
    r = jnp.array(PATCH_REAL, jnp.float32)
    f = jnp.array(PATCH_FAKE, jnp.float32)
    np.testing.assert_allclose(jax.jit(g_fn)(f), g_fn(f), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(d_fn)(r, f), d_fn(r, f), rtol=1e-6)


def test_jit_with_traced_hyperparameters():
    r = jnp.array(REAL, jnp.float32)
    f = jnp.array(FAKE, jnp.float32)
    smoothed = jax.jit(adv.minimax_discriminator_loss)(r, f, 0.1)
    np.testing.assert_allclose(
        smoothed, adv.minimax_discriminator_loss(r, f, label_smoothing=0.1), rtol=1e-6
    )
    capped = jax.jit(lambda x, cap: adv.maximum_likelihood_generator_loss(x, max_logit=cap))(f, 0.0)
    np.testing.assert_allclose(capped, [-0.5, -0.5 * math.exp(-2.0), -0.5], rtol=1e-6)
