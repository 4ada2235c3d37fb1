"""MinibatchStdDev (Karras et al.) and MinibatchDiscrimination (Salimans et al.) by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gen_jax.nn.minibatch import MinibatchDiscrimination, MinibatchStdDev


def _apply(module, x):
    return module.apply({}, x)


# --- MinibatchStdDev --------------------------------------------------------------------------


def test_stddev_hand_computed_on_a_tiny_batch():
    # Two examples of 1x2 pixels, one channel: pixel 0 holds (1, 3), std 1; pixel 1 holds
    # (3, 3), std sqrt(0 + 1e-8) = 1e-4. Their mean, 0.50005, is appended everywhere.
    x = jnp.array([[[[1.0], [3.0]]], [[[3.0], [3.0]]]])  # [2, 1, 2, 1]
    y = _apply(MinibatchStdDev(group_size=2), x)
    chex.assert_shape(y, (2, 1, 2, 2))
    np.testing.assert_array_equal(y[..., :1], x)
    np.testing.assert_allclose(y[..., 1], np.full((2, 1, 2), 0.50005), rtol=1e-6)


def test_stddev_groups_are_strided_as_in_karras():
    # B=4, G=2: groups are examples {0, 2} and {1, 3} (reshape [G, B/G]).
    x = jnp.array([[0.0], [10.0], [2.0], [10.0]])
    y = _apply(MinibatchStdDev(group_size=2, epsilon=0.0), x)
    chex.assert_shape(y, (4, 2))
    np.testing.assert_allclose(y[:, 1], [1.0, 0.0, 1.0, 0.0], atol=1e-7)


def test_stddev_num_channels_uses_contiguous_channel_blocks():
    # Channels {0, 1} have stds (1, 3) over the pair -> 2; channels {2, 3}: (0, 5) -> 2.5.
    x = jnp.array([[[[0.0, 0.0, 1.0, 0.0]]], [[[2.0, 6.0, 1.0, 10.0]]]])
    y = _apply(MinibatchStdDev(group_size=2, num_channels=2, epsilon=0.0), x)
    chex.assert_shape(y, (2, 1, 1, 6))
    np.testing.assert_allclose(y[:, 0, 0, 4:], [[2.0, 2.5], [2.0, 2.5]], rtol=1e-6)


def test_stddev_extra_channels_constant_across_positions_and_groups():
    x = jax.random.normal(jax.random.PRNGKey(0), (8 * 5 * 3 * 6,)).reshape(8, 5, 3, 6)
    y = _apply(MinibatchStdDev(group_size=4, num_channels=3), x)
    chex.assert_shape(y, (8, 5, 3, 9))
    np.testing.assert_array_equal(y[..., :6], x)
    extra = np.asarray(y[..., 6:])
    np.testing.assert_array_equal(extra, np.broadcast_to(extra[:, :1, :1], extra.shape))
    # Members m, m+2, m+4, m+6 of group m share their statistic; the two groups differ.
    np.testing.assert_array_equal(extra[0::2], np.broadcast_to(extra[:1], extra[0::2].shape))
    assert not np.allclose(extra[0], extra[1])


def test_stddev_batch_smaller_than_group_is_one_group():
    x = jnp.array([[1.0], [2.0], [3.0]])
    y = _apply(MinibatchStdDev(group_size=4, epsilon=0.0), x)
    np.testing.assert_allclose(y[:, 1], np.full(3, np.std([1.0, 2.0, 3.0])), rtol=1e-6)
    # A batch of one still runs: its variance is 0, so the statistic is sqrt(epsilon).
    np.testing.assert_allclose(_apply(MinibatchStdDev(), jnp.ones((1, 2)))[:, 2], [1e-4], rtol=1e-5)


def test_stddev_keeps_dtype_and_runs_under_jit():
    x = jnp.linspace(-1.0, 1.0, 4 * 2 * 2 * 4).reshape(4, 2, 2, 4).astype(jnp.bfloat16)
    y = jax.jit(lambda x: _apply(MinibatchStdDev(), x))(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        y[..., 4:].astype(jnp.float32),
        _apply(MinibatchStdDev(), x.astype(jnp.float32))[..., 4:],
        rtol=1e-2,
    )


def test_stddev_gradients_check_and_are_finite_at_zero_variance():
    layer = MinibatchStdDev(group_size=2, num_channels=2)
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(1), (4 * 3 * 2 * 4,), jnp.float64).reshape(
            4, 3, 2, 4
        )
        check_grads(lambda x: jnp.sum(_apply(layer, x) ** 2), (x,), order=2, modes=("rev",))
    grad = jax.grad(lambda x: jnp.sum(_apply(layer, x)))(jnp.ones((4, 2, 2, 4)))
    chex.assert_tree_all_finite(grad)


def test_stddev_errors_name_the_input():
    with pytest.raises(
        ValueError, match=r"batch divisible by the group size .*got x of shape \(6, 3\)"
    ):
        _apply(MinibatchStdDev(group_size=4), jnp.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"channels divisible by 2; got x of shape \(4, 3\)"):
        _apply(MinibatchStdDev(num_channels=2), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="group_size >= 1 and num_channels >= 1; got group_size=0"):
        _apply(MinibatchStdDev(group_size=0), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"rank >= 2\); got shape \(4,\)"):
        _apply(MinibatchStdDev(), jnp.zeros(4))


# --- MinibatchDiscrimination ------------------------------------------------------------------


def test_discrimination_hand_computed():
    # A=K=D=1 and T=1: M = x = (0, 1, 3); pairwise L1 distances 1, 3, 2.
    layer = MinibatchDiscrimination(num_kernels=1, kernel_dim=1)
    params = {"kernel": jnp.ones((1, 1, 1)), "bias": jnp.array([0.5])}
    y = layer.apply({"params": params}, jnp.array([[0.0], [1.0], [3.0]]))
    e = np.exp
    np.testing.assert_allclose(
        y,
        [[0.0, e(-1) + e(-3) + 0.5], [1.0, e(-1) + e(-2) + 0.5], [3.0, e(-3) + e(-2) + 0.5]],
        rtol=1e-6,
    )


def test_discrimination_l1_over_the_kernel_dimension():
    # One kernel of dimension 2 on identity T: M_i = x_i, distance |dx| + |dy|.
    layer = MinibatchDiscrimination(num_kernels=1, kernel_dim=2, use_bias=False)
    params = {"kernel": jnp.eye(2).reshape(2, 1, 2)}
    y = layer.apply({"params": params}, jnp.array([[0.0, 0.0], [1.0, -2.0]]))
    np.testing.assert_allclose(y[:, 2], [np.exp(-3.0), np.exp(-3.0)], rtol=1e-6)


def test_discrimination_properties():
    layer = MinibatchDiscrimination(num_kernels=7, kernel_dim=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (5 * 2 * 2 * 3,)).reshape(5, 2, 2, 3)
    variables = layer.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"kernel": (12, 7, 3), "bias": (7,)}}
    y = jax.jit(layer.apply)(variables, x)
    chex.assert_shape(y, (5, 12 + 7))
    np.testing.assert_array_equal(y[:, :12], x.reshape(5, 12))  # Flattened, as Salimans et al.
    # Permuting the batch permutes the features.
    perm = jnp.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(layer.apply(variables, x[perm]), y[perm], rtol=1e-6)
    # Identical examples are at distance 0 from the B - 1 others; a lone example has none.
    same = layer.apply(variables, jnp.ones((4, 12)))
    np.testing.assert_allclose(same[:, 12:], np.full((4, 7), 3.0), rtol=1e-6)
    np.testing.assert_allclose(layer.apply(variables, jnp.ones((1, 12)))[:, 12:], np.zeros((1, 7)))


def test_discrimination_gradients():
    layer = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(2), (4 * 5,), jnp.float64).reshape(4, 5)
        kernel = jax.random.normal(jax.random.PRNGKey(3), (5 * 3 * 2,), jnp.float64).reshape(
            5, 3, 2
        )

        def f(kernel, x):
            y = layer.apply({"params": {"kernel": kernel, "bias": jnp.zeros(3)}}, x)
            return jnp.sum(jnp.sin(y))

        check_grads(f, (kernel, x), order=1, modes=("rev",))
    # Identical examples sit on the kink of |.|: the gradient is still finite.
    grads = jax.grad(lambda x: jnp.sum(layer.apply(layer.init(jax.random.PRNGKey(0), x), x)))(
        jnp.ones((3, 5))
    )
    chex.assert_tree_all_finite(grads)


def test_discrimination_dtype():
    layer = MinibatchDiscrimination(num_kernels=2, kernel_dim=2, dtype=jnp.bfloat16)
    x = jnp.ones((3, 4))
    variables = layer.init(jax.random.PRNGKey(0), x)
    assert variables["params"]["kernel"].dtype == jnp.float32
    assert layer.apply(variables, x).dtype == jnp.bfloat16


def test_discrimination_rejects_a_vector():
    with pytest.raises(ValueError, match=r"\[batch, features\].*got shape \(4,\)"):
        MinibatchDiscrimination().init(jax.random.PRNGKey(0), jnp.zeros(4))
