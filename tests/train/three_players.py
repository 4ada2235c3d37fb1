"""A three-player family for the engine's tests: BiGAN / ALI on a 2-D Gaussian.

Donahue et al. 2017 (arXiv:1605.09782), Dumoulin et al. 2017 (arXiv:1606.00704): G maps
z to x, an encoder E maps x to z, and D judges joint pairs, (x, E(x)) against (G(z), z).
D's phase updates D; the second phase updates G and E jointly on the flipped labels. D's
layers are spectrally normalised, so it carries a collection (the power-iteration vectors
in "batch_stats") that only its own phase may change. (Batch norm in D would not do here:
it normalises the real and the generated batch apart, which removes the mean offset D has
to see.) Tiny MLPs; also imported
by the 8-device script of tests/test_parallel.py.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gen_jax import losses
from gen_jax.nn.spectral_norm import SpectralNorm
from gen_jax.train import Phase, PlayerSpec, create_gan_state

DIM = 2  # Both x and z.
DATA_MEAN = jnp.array([2.0, -1.0])
DATA_STD = 0.3


class Mlp(nn.Module):
    out: int
    hidden: int = 16

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        del train
        return nn.Dense(self.out)(nn.relu(nn.Dense(self.hidden)(x)))


class JointDiscriminator(nn.Module):
    """D(x, z): one logit per pair, from spectrally normalised Dense layers."""

    hidden: int = 32

    @nn.compact
    def __call__(self, x, z, *, train: bool = False):
        h = jnp.concatenate([x, z], axis=-1)
        h = nn.relu(SpectralNorm(nn.Dense(self.hidden))(h, train=train))
        h = nn.relu(SpectralNorm(nn.Dense(self.hidden))(h, train=train))
        return SpectralNorm(nn.Dense(1))(h, train=train)[:, 0]


def sample_data(key, n):
    return DATA_MEAN + DATA_STD * jax.random.normal(key, (n, DIM))


def bigan_setup(nets, batch, key, extra):
    """z ~ N(0, I), G(z), and E(x) of the real batch."""
    del extra
    x = batch["real"]
    z = jax.random.normal(key, x.shape)
    return {"z": z, "fake": nets("g", z), "code": nets("e", x)}


def d_term(nets, batch, key, aux):
    del key
    real = nets("d", batch["real"], aux["code"])
    fake = nets("d", aux["fake"], aux["z"])
    loss = jnp.mean(losses.minimax_discriminator_loss(real, fake))
    return loss, {"loss": loss, "real_logit": jnp.mean(real), "fake_logit": jnp.mean(fake)}


def ge_term(nets, batch, key, aux):
    """The flipped game: (G(z), z) should look real and (x, E(x)) generated."""
    del key
    real = nets("d", batch["real"], aux["code"])
    fake = nets("d", aux["fake"], aux["z"])
    g = losses.non_saturating_generator_loss(fake)
    e = losses.non_saturating_generator_loss(-real)
    return jnp.mean(g + e), {"loss": jnp.mean(g + e)}


def phases(separate: bool = False):
    """D, then G and E jointly; with `separate`, G and E in phases of their own."""
    d = Phase("d", ("d",), (d_term,), setup=bigan_setup, per_draw=True)
    if not separate:
        return (d, Phase("ge", ("g", "e"), (ge_term,), setup=bigan_setup))
    return (
        d,
        Phase("g", ("g",), (ge_term,), setup=bigan_setup),
        Phase("e", ("e",), (ge_term,), setup=bigan_setup),
    )


def make_state(seed=0, batch=8, txs=None):
    """The three players, each with its own optimizer (Adam 1e-2, b1 0.5 by default)."""
    txs = txs or {}
    tx = optax.adam(1e-2, b1=0.5)
    x = jnp.zeros((batch, DIM))
    return create_gan_state(
        jax.random.PRNGKey(seed),
        {
            "g": PlayerSpec(Mlp(DIM), txs.get("g", tx), (x,), use_ema=True),
            "e": PlayerSpec(Mlp(DIM), txs.get("e", tx), (x,)),
            "d": PlayerSpec(JointDiscriminator(), txs.get("d", tx), (x, x)),
        },
    )
