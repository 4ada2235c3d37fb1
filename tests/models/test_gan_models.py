"""Shapes, ranges and input checks of the GAN models (DCGAN, MLP/PacGAN)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.dcgan import (
    DCGANDiscriminator,
    DCGANGenerator,
    TinyDCGANDiscriminator,
    TinyDCGANGenerator,
)
from gen_jax.models.mlp_gan import (
    MLPDiscriminator,
    TinyMLPDiscriminator,
    TinyMLPGenerator,
)

KEY = jax.random.PRNGKey(0)


def _out_shape(module, x, **kwargs):
    """Output shape of init_with_output, traced abstractly (no compilation)."""
    out, _ = jax.eval_shape(lambda k, x: module.init_with_output(k, x, **kwargs), KEY, x)
    return out.shape


@pytest.mark.parametrize("image_size, channels", [(28, 1), (32, 3), (64, 3), (14, 1)])
def test_dcgan_shapes(image_size, channels):
    g = DCGANGenerator(image_size=image_size, channels=channels, ngf=2)
    d = DCGANDiscriminator(image_size=image_size, ndf=2)
    z = jnp.zeros((3, 8))
    expected = (3, image_size, image_size, channels)
    assert _out_shape(g, z, train=True) == expected
    assert _out_shape(g, z.reshape(3, 1, 1, 8), train=False) == expected  # z as [B,1,1,nz]
    x = jnp.zeros((3, image_size, image_size, channels))
    assert _out_shape(d, x, train=True) == (3, 1, 1, 1)


def test_dcgan64_is_the_pytorch_examples_network():
    g = DCGANGenerator(image_size=64, channels=3, ngf=64)
    _, variables = jax.eval_shape(
        lambda k: g.init_with_output(k, jnp.zeros((1, 100)), train=False), KEY
    )
    kernels = sorted(
        v.shape
        for p, v in jax.tree_util.tree_leaves_with_path(variables["params"])
        if "kernel" in jax.tree_util.keystr(p)
    )
    # nz -> 8ngf -> 4ngf -> 2ngf -> ngf -> 3, all 4x4 (as HWIO kernels).
    assert kernels == sorted(
        [(4, 4, 100, 512), (4, 4, 512, 256), (4, 4, 256, 128), (4, 4, 128, 64), (4, 4, 64, 3)]
    )


def test_tiny_dcgan_output_is_in_tanh_range():
    g, d = TinyDCGANGenerator(), TinyDCGANDiscriminator()

    @jax.jit
    def run(z):
        y, variables = g.init_with_output(jax.random.PRNGKey(1), z, train=False)
        # Blow up the output layer's weights: a tanh saturates at +-1, a linear layer would not.
        params = dict(variables["params"])
        last = max(k for k in params if k.startswith("PhaseConvTranspose"))
        params[last] = {"kernel": 1e4 * params[last]["kernel"]}
        big = {**variables, "params": params}
        y_big = g.apply(big, z, train=False)
        y_train, _ = g.apply(big, z, train=True, mutable=["batch_stats"])
        logits, _ = d.init_with_output(jax.random.PRNGKey(2), y, train=False)
        return y, y_big, y_train, logits

    # Only the init's draws use the classic threefry: jax 0.10's default compiles slowly on
    # XLA:CPU for some conv-kernel shapes. z is drawn flat for the same reason.
    z = jax.random.normal(KEY, (4 * 8,)).reshape(4, 8)
    with jax.threefry_partitionable(False):
        y, y_big, y_train, logits = run(z)
    assert y.shape == (4, 28, 28, 1) and y.dtype == jnp.float32
    for out in (y, y_big, y_train):
        assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
    assert np.max(np.abs(y_big)) == 1.0 and np.max(np.abs(y_train)) == 1.0
    assert logits.shape == (4, 1, 1, 1) and logits.dtype == jnp.float32


@pytest.mark.parametrize("image_size", [4, 7, 30, 48, 100])
def test_unsupported_image_size_raises(image_size):
    with pytest.raises(ValueError, match=f"image_size={image_size}"):
        _out_shape(DCGANGenerator(image_size=image_size, ngf=2), jnp.zeros((2, 8)))
    x = jnp.zeros((2, image_size, image_size, 1))
    with pytest.raises(ValueError, match=f"image_size={image_size}"):
        _out_shape(DCGANDiscriminator(image_size=image_size, ndf=2), x)


@pytest.mark.parametrize("shape", [(2, 32, 32, 1), (2, 28, 32, 1), (2, 64, 64, 3)])
def test_dcgan_discriminator_rejects_other_image_sizes(shape):
    with pytest.raises(ValueError, match=r"expected \[B, 28, 28, C\]"):
        _out_shape(DCGANDiscriminator(image_size=28, ndf=2), jnp.zeros(shape))


# --- MLP pair ------------------------------------------------------------------------------------


def test_mlp_shapes():
    assert _out_shape(TinyMLPGenerator(out_dim=2), jnp.zeros((6, 4))) == (6, 2)
    assert _out_shape(TinyMLPDiscriminator(), jnp.zeros((6, 2))) == (6, 1)


def test_pacgan_discriminator_packs_consecutive_samples():
    x = jax.random.normal(KEY, (6, 2))
    packed = TinyMLPDiscriminator(pack=2)
    logits, variables = packed.init_with_output(jax.random.PRNGKey(1), x)
    assert logits.shape == (3, 1)
    # The same network judging rows [x0 x1], [x2 x3], [x4 x5].
    plain = TinyMLPDiscriminator(pack=1).apply(variables, x.reshape(3, 4))
    np.testing.assert_allclose(logits, plain, rtol=1e-6)


@pytest.mark.parametrize("batch, pack", [(5, 2), (7, 3), (1, 2)])
def test_pacgan_discriminator_rejects_batches_not_divisible_by_pack(batch, pack):
    with pytest.raises(ValueError, match=f"pack={pack}"):
        _out_shape(MLPDiscriminator(hidden=(4,), pack=pack), jnp.zeros((batch, 2)))


def test_batch_norm_generator_updates_statistics_in_train_mode_and_uses_them_in_eval():
    gen = TinyMLPGenerator(out_dim=2, batch_norm=True)
    z = 3.0 + jax.random.normal(KEY, (8, 4))
    variables = gen.init(jax.random.PRNGKey(1), z, train=False)
    assert "batch_stats" in variables
    # Hidden Dense layers drop their bias (BatchNorm shifts); the output layer keeps it.
    assert "bias" not in variables["params"]["Dense_0"]
    assert "bias" in variables["params"]["Dense_1"]
    out, updates = gen.apply(variables, z, train=True, mutable=["batch_stats"])
    old, new = variables["batch_stats"]["BatchNorm_0"], updates["batch_stats"]["BatchNorm_0"]
    assert not np.allclose(old["mean"], new["mean"])
    assert not np.allclose(old["var"], new["var"])
    # Eval mode reads the running statistics: it changes with them, and each sample's output
    # is independent of the rest of the batch.
    eval_old = gen.apply(variables, z, train=False)
    eval_new = gen.apply({**variables, "batch_stats": updates["batch_stats"]}, z, train=False)
    assert not np.allclose(eval_old, eval_new)
    np.testing.assert_allclose(
        gen.apply(variables, z[:1], train=False), eval_old[:1], rtol=1e-5, atol=1e-6
    )
    # Eval mode leaves the statistics alone.
    _, unchanged = gen.apply(variables, z, train=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, unchanged["batch_stats"], variables["batch_stats"])
    assert out.shape == (8, 2)


def test_plain_generator_has_no_batch_stats():
    variables = TinyMLPGenerator(out_dim=2).init(KEY, jnp.zeros((3, 4)), train=False)
    assert "batch_stats" not in variables


def test_maxout_discriminator_takes_the_max_over_pieces():
    disc = MLPDiscriminator(hidden=(3,), maxout_pieces=4)
    x = jax.random.normal(KEY, (5, 2))
    logits, variables = disc.init_with_output(jax.random.PRNGKey(1), x)
    assert logits.shape == (5, 1)
    p = variables["params"]
    assert p["Dense_0"]["kernel"].shape == (2, 12)
    pieces = (x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]).reshape(5, 3, 4)
    expected = pieces.max(-1) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_discriminator_input_scale_scales_the_input():
    x = jax.random.normal(KEY, (4, 2))
    variables = TinyMLPDiscriminator().init(KEY, x)
    scaled = TinyMLPDiscriminator(input_scale=0.5).apply(variables, x)
    np.testing.assert_allclose(scaled, TinyMLPDiscriminator().apply(variables, 0.5 * x), rtol=1e-6)


def test_maxout_pieces_must_be_positive():
    with pytest.raises(ValueError, match="maxout_pieces"):
        _out_shape(MLPDiscriminator(hidden=(4,), maxout_pieces=0), jnp.zeros((2, 2)))
