"""ConditionalBatchNorm: BatchNorm when there is one class, per-label affine, flax's statistics."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.normalization import ConditionalBatchNorm

EPS = 1e-5


def _images(seed, shape=(4, 3, 2, 3)):
    # Shifted and scaled, so normalising visibly does something.
    return 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(seed), (int(np.prod(shape)),)).reshape(
        shape
    )


def test_hand_computed_train_and_eval():
    # Channel 0 of the batch is [1, 3]: mean 2, variance 1; channel 1 is [0, 0]: variance 0.
    x = jnp.array([[1.0, 0.0], [3.0, 0.0]])
    labels = jnp.array([0, 1])
    cbn = ConditionalBatchNorm(num_classes=2)
    variables = cbn.init(jax.random.PRNGKey(0), x, labels, train=False)
    params = {
        "scale": {"embedding": jnp.array([[2.0, 1.0], [-1.0, 1.0]])},
        "bias": {"embedding": jnp.array([[0.5, 7.0], [0.0, -7.0]])},
    }
    y, updates = cbn.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        x,
        labels,
        train=True,
        mutable=["batch_stats"],
    )
    z = 1.0 / np.sqrt(1.0 + EPS)  # (x - mean) / sqrt(var + eps) for x = mean + 1.
    np.testing.assert_allclose(y, [[2.0 * -z + 0.5, 7.0], [-1.0 * z, -7.0]], rtol=1e-6)
    # Running averages: 0.9 * (0, 1) + 0.1 * batch (mean (2, 0), variance (1, 0)).
    stats = updates["batch_stats"]["norm"]
    np.testing.assert_allclose(stats["mean"], [0.2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(stats["var"], [1.0, 0.9], rtol=1e-6)

    # Eval uses the running averages: (x - 0.2) / sqrt(1 + eps) for channel 0 of label 0.
    y_eval = cbn.apply(
        {"params": params, "batch_stats": updates["batch_stats"]}, x, labels, train=False
    )
    np.testing.assert_allclose(
        y_eval[0, 0], 2.0 * (1.0 - 0.2) / np.sqrt(1.0 + EPS) + 0.5, rtol=1e-6
    )
    np.testing.assert_allclose(
        y_eval[1, 1], 1.0 * (0.0 - 0.0) / np.sqrt(0.9 + EPS) - 7.0, rtol=1e-6
    )


@pytest.mark.parametrize("train", [True, False])
def test_one_class_is_batch_norm_with_that_scale_and_bias(train):
    x = _images(0)
    gamma, beta = jnp.array([0.5, -2.0, 1.5]), jnp.array([1.0, 0.0, -3.0])
    stats = {"mean": jnp.array([0.1, 2.0, -1.0]), "var": jnp.array([4.0, 0.5, 2.0])}
    cbn = ConditionalBatchNorm(num_classes=1)
    bn = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=EPS)
    y, cbn_stats = cbn.apply(
        {
            "params": {"scale": {"embedding": gamma[None]}, "bias": {"embedding": beta[None]}},
            "batch_stats": {"norm": stats},
        },
        x,
        jnp.zeros((4,), jnp.int32),
        train=train,
        mutable=["batch_stats"],
    )
    y_ref, bn_stats = bn.apply(
        {"params": {"scale": gamma, "bias": beta}, "batch_stats": stats},
        x,
        mutable=["batch_stats"],
    )
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(
        cbn_stats["batch_stats"]["norm"], bn_stats["batch_stats"], rtol=1e-6
    )


def test_statistics_update_in_train_mode_only():
    x = _images(1)
    labels = jnp.array([0, 1, 2, 1])
    cbn = ConditionalBatchNorm(num_classes=3)
    variables = cbn.init(jax.random.PRNGKey(0), x, labels, train=False)
    chex.assert_trees_all_equal(
        variables["batch_stats"], {"norm": {"mean": jnp.zeros(3), "var": jnp.ones(3)}}
    )
    _, eval_updates = cbn.apply(variables, x, labels, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(eval_updates["batch_stats"], variables["batch_stats"])
    _, train_updates = cbn.apply(variables, x, labels, train=True, mutable=["batch_stats"])
    mean = np.mean(np.asarray(x), axis=(0, 1, 2))
    np.testing.assert_allclose(train_updates["batch_stats"]["norm"]["mean"], 0.1 * mean, rtol=1e-5)


def test_different_labels_give_different_outputs_and_equal_labels_equal_ones():
    x = jnp.tile(_images(2, (1, 3, 2, 3)), (4, 1, 1, 1))  # Four copies of one image.
    cbn = ConditionalBatchNorm(num_classes=3)
    labels = jnp.array([0, 1, 2, 1])
    variables = cbn.init(jax.random.PRNGKey(0), x, labels, train=False)
    y0 = cbn.apply(variables, x, labels, train=False)
    # At init every class has gamma = 1, beta = 0: a plain batch norm.
    np.testing.assert_allclose(y0[0], y0[1], rtol=1e-6)
    params = jax.tree.map(
        lambda p: p + jnp.arange(p.size, dtype=p.dtype).reshape(p.shape) / 10, variables["params"]
    )
    y = cbn.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, x, labels, train=False
    )
    assert not np.allclose(y[0], y[1]) and not np.allclose(y[1], y[2])
    np.testing.assert_array_equal(y[1], y[3])


def test_continuous_condition_is_a_dense_projection():
    x = _images(3)
    condition = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [2.0, -1.0]])
    cbn = ConditionalBatchNorm()
    variables = cbn.init(jax.random.PRNGKey(0), x, condition, train=False)
    assert jax.tree.map(jnp.shape, variables["params"]) == {
        "scale": {"kernel": (2, 3), "bias": (3,)},
        "bias": {"kernel": (2, 3), "bias": (3,)},
    }
    w_g = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    w_b = jnp.array([[0.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
    params = {
        "scale": {"kernel": w_g, "bias": jnp.ones(3)},
        "bias": {"kernel": w_b, "bias": jnp.zeros(3)},
    }
    y = cbn.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        x,
        condition,
        train=True,
        mutable=["batch_stats"],
    )[0]
    mean, var = np.mean(x, axis=(0, 1, 2)), np.var(x, axis=(0, 1, 2))
    x_hat = (np.asarray(x) - mean) / np.sqrt(var + EPS)
    gamma = np.asarray(condition @ w_g + 1.0)[:, None, None, :]
    beta = np.asarray(condition @ w_b)[:, None, None, :]
    np.testing.assert_allclose(y, gamma * x_hat + beta, rtol=1e-4, atol=1e-4)


def test_one_hot_vector_equals_labels_with_the_same_tables():
    x = _images(4)
    labels = jnp.array([2, 0, 1, 2])
    scale, bias = jnp.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 1.0]]), jnp.eye(3)
    by_label = ConditionalBatchNorm(num_classes=3).apply(
        {
            "params": {"scale": {"embedding": scale}, "bias": {"embedding": bias}},
            "batch_stats": {"norm": {"mean": jnp.zeros(3), "var": jnp.ones(3)}},
        },
        x,
        labels,
        train=False,
    )
    by_vector = ConditionalBatchNorm().apply(
        {
            "params": {
                "scale": {"kernel": scale, "bias": jnp.zeros(3)},
                "bias": {"kernel": bias, "bias": jnp.zeros(3)},
            },
            "batch_stats": {"norm": {"mean": jnp.zeros(3), "var": jnp.ones(3)}},
        },
        x,
        jax.nn.one_hot(labels, 3),
        train=False,
    )
    np.testing.assert_allclose(by_label, by_vector, rtol=1e-6, atol=1e-6)


def test_jit_flat_features_dtype_and_finite_gradients():
    x = _images(5, (6, 4))
    labels = jnp.array([0, 1, 0, 1, 0, 1])
    cbn = ConditionalBatchNorm(num_classes=2, dtype=jnp.bfloat16)
    variables = cbn.init(jax.random.PRNGKey(0), x, labels, train=False)
    chex.assert_trees_all_equal_dtypes(
        variables["params"],
        {"scale": {"embedding": jnp.zeros(1)}, "bias": {"embedding": jnp.zeros(1)}},
    )

    @jax.jit
    def loss(params, x):
        y, updates = cbn.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            labels,
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.sum(jnp.sin(y.astype(jnp.float32))), (y, updates)

    (_, (y, updates)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables["params"], x
    )
    chex.assert_shape(y, x.shape)
    assert y.dtype == jnp.bfloat16
    chex.assert_tree_all_finite((grads, updates))
    assert updates["batch_stats"]["norm"]["mean"].dtype == jnp.float32


def test_errors_name_the_condition():
    x = jnp.zeros((4, 3))
    with pytest.raises(
        ValueError,
        match=r"integer labels of shape \[batch\] = \(4,\); got condition of shape \(4, 3\) "
        r"and dtype float32.*num_classes=None",
    ):
        ConditionalBatchNorm(num_classes=3).init(
            jax.random.PRNGKey(0), x, jnp.zeros((4, 3)), train=False
        )
    with pytest.raises(
        ValueError,
        match=r"float condition of shape \[batch, dim\] with batch = 4; got condition of "
        r"shape \(4,\) and dtype int32.*set num_classes",
    ):
        ConditionalBatchNorm().init(
            jax.random.PRNGKey(0), x, jnp.zeros((4,), jnp.int32), train=False
        )
    with pytest.raises(ValueError, match=r"batch = 4; got condition of shape \(3, 2\)"):
        ConditionalBatchNorm().init(jax.random.PRNGKey(0), x, jnp.zeros((3, 2)), train=False)
    with pytest.raises(ValueError, match="num_classes must be >= 1 or None; got 0"):
        ConditionalBatchNorm(num_classes=0).init(
            jax.random.PRNGKey(0), x, jnp.zeros((4,), jnp.int32), train=False
        )
    with pytest.raises(ValueError, match=r"rank >= 2\); got shape \(4,\)"):
        ConditionalBatchNorm(num_classes=2).init(
            jax.random.PRNGKey(0), jnp.zeros(4), jnp.zeros((4,), jnp.int32), train=False
        )
