"""bfloat16 compute with float32 parameters: the GAN and one-player steps stay finite, close
to float32, and keep every parameter, optimizer state and EMA in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import losses
from gen_jax.models.classifier import TinyClassifier
from gen_jax.models.dcgan import TinyDCGANDiscriminator, TinyDCGANGenerator
from gen_jax.models.mlp_gan import TinyMLPDiscriminator, TinyMLPGenerator
from gen_jax.train import (
    PlayerSpec,
    compute_dtype,
    create_gan_state,
    create_train_state,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    make_train_step,
    normal_latent,
    r1_term,
)

B = 8
TX = optax.adam(1e-3, b1=0.5)


def _dcgan(dtype):
    # Only the init's draws use the classic threefry (fast to compile on XLA:CPU).
    with jax.threefry_partitionable(False):
        return create_gan_state(
            jax.random.PRNGKey(0),
            {
                "g": PlayerSpec(
                    TinyDCGANGenerator(dtype=dtype), TX, (jnp.zeros((B, 8)),), use_ema=True
                ),
                "d": PlayerSpec(
                    TinyDCGANDiscriminator(dtype=dtype), TX, (jnp.zeros((B, 28, 28, 1)),)
                ),
            },
        )


def _dtypes(tree):
    return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_gan_step_is_finite_close_and_keeps_float32_state():
    step = jax.jit(
        make_gan_step(
            gan_phases(
                losses.non_saturating_generator_loss,
                losses.non_saturating_discriminator_loss,
                normal_latent(8),
            )
        )
    )
    real = jax.random.uniform(jax.random.PRNGKey(1), (1, B, 28, 28, 1), minval=-1, maxval=1)
    f32, bf16 = _dcgan(jnp.float32), _dcgan(jnp.bfloat16)
    # The same float32 parameters: only the compute differs.
    jax.tree.map(np.testing.assert_array_equal, f32["g"].params, bf16["g"].params)
    new32, m32 = step(f32, {"real": real})
    new16, m16 = step(bf16, {"real": real})
    for name, value in m16.items():
        assert value.dtype == jnp.float32 and np.isfinite(value), name
    for name in ("d/loss", "g/loss"):
        np.testing.assert_allclose(m16[name], m32[name], rtol=2e-2)
    for name in ("d/grad_norm", "g/grad_norm"):
        np.testing.assert_allclose(m16[name], m32[name], rtol=5e-2)
    for player in ("g", "d"):
        p16, p32 = new16[player], new32[player]
        assert _dtypes(p16.params) == _dtypes(p16.opt_state) == {jnp.dtype(jnp.float32)}
        assert _dtypes(p16.collections) <= {jnp.dtype(jnp.float32)}
        # Adam's first step moves each weight by the learning rate times the sign of its
        # gradient: the two agree but where a gradient near 0 changes sign under bfloat16.
        before = jax.tree.leaves(f32[player].params)
        moves16 = [a - p for a, p in zip(jax.tree.leaves(p16.params), before)]
        moves32 = [b - p for b, p in zip(jax.tree.leaves(p32.params), before)]
        agree = np.mean(
            np.concatenate([np.ravel(np.sign(a) == np.sign(b)) for a, b in zip(moves16, moves32)])
        )
        assert agree > 0.95, (player, agree)
    assert _dtypes(new16["g"].ema_params) == {jnp.dtype(jnp.float32)}
    assert new16.generate(jnp.zeros((2, 8))).dtype == jnp.float32


def test_bfloat16_gan_with_r1_trains_a_few_hundred_steps_finite():
    def state(dtype):
        return create_gan_state(
            jax.random.PRNGKey(0),
            {
                "g": PlayerSpec(TinyMLPGenerator(dtype=dtype), TX, (jnp.zeros((64, 4)),)),
                "d": PlayerSpec(TinyMLPDiscriminator(dtype=dtype), TX, (jnp.zeros((64, 2)),)),
            },
        )

    phases = gan_phases(
        losses.non_saturating_generator_loss,
        losses.non_saturating_discriminator_loss,
        normal_latent(4),
        d_terms=(r1_term(1.0),),
    )

    def draw(data, key, step):
        return {"real": 1.0 + 0.1 * jax.random.normal(jax.random.fold_in(key, step), (1, 64, 2))}

    chunk = make_train_chunk(make_gan_step(phases), draw, 300)
    s16, m16 = chunk(state(jnp.bfloat16), None)
    s32, m32 = chunk(state(jnp.float32), None)
    for m in (m16, m32):
        assert all(np.isfinite(v).all() for v in m.values())
    z = normal_latent(4)(jax.random.PRNGKey(2), 1000)
    mean16, mean32 = np.mean(s16.generate(z), 0), np.mean(s32.generate(z), 0)
    # Both generators have moved from about 0 to near the data's mean of 1, and agree.
    assert np.all(np.abs(mean32 - 1.0) < 0.5) and np.all(np.abs(mean16 - mean32) < 0.05)


def test_bfloat16_one_player_step_is_close_to_float32():
    def xent(nets, batch, key, aux):
        logits = nets("model", batch["x"], rngs={"dropout": key}).astype(jnp.float32)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))
        return loss, {"loss": loss}

    batch = {
        "x": jax.random.uniform(jax.random.PRNGKey(1), (B, 28, 28, 1), minval=-1, maxval=1),
        "y": jnp.arange(B) % 10,
    }
    step = jax.jit(make_train_step(xent))
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        spec = PlayerSpec(TinyClassifier(dtype=dtype), TX, (jnp.zeros((1, 28, 28, 1)),))
        state = create_train_state(jax.random.PRNGKey(0), spec)
        out[dtype] = step(state, batch)
    (_, m32), (s16, m16) = out[jnp.float32], out[jnp.bfloat16]
    np.testing.assert_allclose(m16["train/loss"], m32["train/loss"], rtol=2e-2)
    assert _dtypes(s16.params) == _dtypes(s16.model.opt_state) == {jnp.dtype(jnp.float32)}


def test_compute_dtype_names_the_option():
    assert compute_dtype("bfloat16") == jnp.bfloat16
    with pytest.raises(ValueError, match=r"--dtype.*float16"):
        compute_dtype("float16")
