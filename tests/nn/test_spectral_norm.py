"""SpectralNorm: a power iteration by hand, convergence to unit spectral norm, train-only u."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gen_jax.nn.spectral_norm import SpectralNorm

KH, KW, CIN, COUT = 3, 3, 4, 5


def _conv_variables(kernel, u):
    """Variables of a top-level SpectralNorm(nn.Conv(...)) (names as flax gives them)."""
    return {
        "params": {"layer_instance": {"kernel": kernel}},
        "batch_stats": {
            "layer_instance/kernel/u": u,
            "layer_instance/kernel/sigma": jnp.ones((), u.dtype),
        },
    }


def _sn_conv(n_steps=1):
    return SpectralNorm(nn.Conv(COUT, (KH, KW), padding="VALID", use_bias=False), n_steps=n_steps)


def _normalised_kernel(module, variables):
    """The [kh*kw*cin, cout] kernel the layer uses, read off its outputs on one-hot inputs."""
    n = KH * KW * CIN
    basis = jnp.eye(n, dtype=variables["params"]["layer_instance"]["kernel"].dtype)
    y = module.apply(variables, basis.reshape(n, KH, KW, CIN), train=False)
    chex.assert_shape(y, (n, 1, 1, COUT))
    return np.asarray(y.reshape(n, COUT))


def test_one_power_iteration_by_hand():
    # W = diag(3, 1), u = [1, 1]:  v = norm(u W^T) = [3, 1]/sqrt(10),
    # u' = norm(v W) = [9, 1]/sqrt(82),  sigma = v W u'^T = 82/sqrt(820) = sqrt(8.2).
    layer = SpectralNorm(nn.Dense(2))
    variables = {
        "params": {
            "layer_instance": {
                "kernel": jnp.array([[3.0, 0.0], [0.0, 1.0]]),
                "bias": jnp.array([10.0, 20.0]),
            }
        },
        "batch_stats": {
            "layer_instance/kernel/u": jnp.array([[1.0, 1.0]]),
            "layer_instance/kernel/sigma": jnp.array(1.0),
        },
    }
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    sigma = np.sqrt(8.2)
    # The bias (rank 1) is not normalised.
    np.testing.assert_allclose(
        y, [[3.0 / sigma + 10.0, 20.0], [10.0, 1.0 / sigma + 20.0]], rtol=1e-6
    )
    stats = updates["batch_stats"]
    np.testing.assert_allclose(
        stats["layer_instance/kernel/u"], [[9 / np.sqrt(82), 1 / np.sqrt(82)]], rtol=1e-6
    )
    np.testing.assert_allclose(stats["layer_instance/kernel/sigma"], sigma, rtol=1e-6)


def test_u_updates_in_train_mode_only():
    layer = SpectralNorm(nn.Dense(3))
    x = jnp.arange(8.0).reshape(2, 4)
    variables = layer.init(jax.random.PRNGKey(0), x, train=False)
    chex.assert_shape(variables["batch_stats"]["layer_instance/kernel/u"], (1, 3))

    y_eval, eval_updates = layer.apply(variables, x, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(eval_updates["batch_stats"], variables["batch_stats"])
    # Without updates, evaluation is deterministic and needs nothing mutable.
    chex.assert_trees_all_equal(layer.apply(variables, x, train=False), y_eval)

    y_train, train_updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    u0 = variables["batch_stats"]["layer_instance/kernel/u"]
    u1 = train_updates["batch_stats"]["layer_instance/kernel/u"]
    assert not np.allclose(u0, u1)
    np.testing.assert_allclose(jnp.linalg.norm(u1), 1.0, rtol=1e-6)
    # Both modes iterate from the same stored u, so on the same variables they agree.
    np.testing.assert_allclose(y_train, y_eval, rtol=1e-6)


def test_power_iteration_carried_across_steps_reaches_unit_spectral_norm():
    rng = np.random.default_rng(0)
    kernel = jnp.asarray(rng.normal(size=(KH, KW, CIN, COUT)), jnp.float32)
    variables = _conv_variables(kernel, jnp.asarray(rng.normal(size=(1, COUT)), jnp.float32))
    layer = _sn_conv(n_steps=1)
    x = jnp.ones((2, KH, KW, CIN))

    @jax.jit
    def train_steps(stats):
        # One iteration per training step, u carried in batch_stats, as the train steps do.
        def body(stats, _):
            _, updates = layer.apply(
                {"params": variables["params"], "batch_stats": stats},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return updates["batch_stats"], None

        return jax.lax.scan(body, stats, None, length=200)[0]

    stats = train_steps(variables["batch_stats"])
    trained = {"params": variables["params"], "batch_stats": stats}
    w_sn = _normalised_kernel(layer, trained)
    np.testing.assert_allclose(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, atol=1e-3)

    singular_values = np.linalg.svd(np.asarray(kernel).reshape(-1, COUT), compute_uv=False)
    np.testing.assert_allclose(stats["layer_instance/kernel/sigma"], singular_values[0], rtol=1e-3)
    # The layer divides the kernel by sigma, nothing else.
    np.testing.assert_allclose(
        w_sn, np.asarray(kernel).reshape(-1, COUT) / singular_values[0], rtol=1e-3, atol=1e-5
    )


def test_many_steps_in_one_call_converge_too():
    rng = np.random.default_rng(1)
    kernel = jnp.asarray(rng.normal(size=(KH, KW, CIN, COUT)), jnp.float32)
    variables = _conv_variables(kernel, jnp.asarray(rng.normal(size=(1, COUT)), jnp.float32))
    w_sn = _normalised_kernel(_sn_conv(n_steps=100), variables)
    np.testing.assert_allclose(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, atol=1e-3)


@pytest.mark.parametrize("train", [False, True])
def test_same_variables_and_outputs_as_flax_spectral_norm(train):
    x = jnp.linspace(-1.0, 1.0, 2 * 6 * 6 * CIN).reshape(2, 6, 6, CIN)
    ours = SpectralNorm(nn.Conv(COUT, (3, 3)))
    theirs = nn.SpectralNorm(nn.Conv(COUT, (3, 3)))
    key = jax.random.PRNGKey(0)
    variables = ours.init(key, x, train=False)
    flax_variables = theirs.init(key, x, update_stats=False)
    chex.assert_trees_all_equal(variables, flax_variables)
    y, stats = jax.jit(lambda v, x: ours.apply(v, x, train=train, mutable=["batch_stats"]))(
        variables, x
    )
    y_ref, stats_ref = theirs.apply(variables, x, update_stats=train, mutable=["batch_stats"])
    chex.assert_trees_all_close(y, y_ref, rtol=1e-6)
    chex.assert_trees_all_close(stats, stats_ref, rtol=1e-6)


class _Critic(nn.Module):
    """A two-layer SN critic, applied the way gen_jax.train applies discriminators."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.leaky_relu(SpectralNorm(nn.Conv(4, (3, 3), (2, 2)))(x, train=train), 0.1)
        return SpectralNorm(nn.Dense(1))(x.reshape(x.shape[0], -1), train=train)


def test_in_a_critic_u_lives_in_batch_stats_and_grads_are_finite():
    critic = _Critic()
    x = jnp.linspace(-1.0, 1.0, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3)
    variables = critic.init(jax.random.PRNGKey(0), x, train=False)  # As GANState is built.
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["batch_stats"]) == {"SpectralNorm_0", "SpectralNorm_1"}

    def loss(params, stats):
        out, updates = critic.apply(
            {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(out), updates["batch_stats"]

    (value, new_stats), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        variables["params"], variables["batch_stats"]
    )
    chex.assert_tree_all_finite((value, grads, new_stats))
    chex.assert_trees_all_equal_shapes(new_stats, variables["batch_stats"])
    assert not np.allclose(
        new_stats["SpectralNorm_0"]["Conv_0/kernel/u"],
        variables["batch_stats"]["SpectralNorm_0"]["Conv_0/kernel/u"],
    )


def test_check_grads_at_the_converged_u():
    """With u the top singular vector, d sigma / dW = v u^T and autodiff equals differences.

    The layer stops the gradient through u and v; at the fixed point of the power iteration
    their dependence on W drops out to first order, so a numerical check must agree.
    """
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        kernel = rng.normal(size=(KH, KW, CIN, COUT))
        u = np.linalg.svd(kernel.reshape(-1, COUT))[2][:1]  # Top right singular vector, [1, cout].
        x = jnp.asarray(rng.normal(size=(2, KH + 1, KW + 1, CIN)))
        cotangent = jnp.asarray(rng.normal(size=(2, 2, 2, COUT)))
        layer = _sn_conv()

        def f(kernel, x):
            variables = _conv_variables(kernel, jnp.asarray(u))
            return jnp.sum(layer.apply(variables, x, train=False) * cotangent)

        check_grads(f, (jnp.asarray(kernel), x), order=1, modes=("rev",))
