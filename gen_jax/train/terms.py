"""The engine's standard pieces for GANs: latents, the generated batch, adversarial terms, R1.

Each term wraps a pure loss of `gen_jax.losses` as ``term(nets, batch, key, aux) ->
(loss, metrics)`` (see `gen_jax.train.engine`); the caller composes them into phases,
e.g. the non-saturating GAN with R1 on D:

    phases = gan_phases(
        losses.non_saturating_generator_loss,
        losses.non_saturating_discriminator_loss,
        normal_latent(100),
        d_terms=(r1_term(gamma=0.1),),
    )
    train_step = make_gan_step(phases, n_critic=1)

Mixed precision: the networks may compute in bfloat16 (their ``dtype``) with float32
parameters (``param_dtype``), so gradients and optimizer states stay float32; the terms
cast D's logits to float32 before the loss, so losses, their means and R1's gradient
norms are float32 too.

Conventions the standard terms share: the real examples are ``batch["real"]``; the
phase's setup puts the latents at ``aux["z"]`` and G's output at ``aux["fake"]``; a
conditional family's setup may add ``aux["d_real_kwargs"]`` / ``aux["d_fake_kwargs"]``
(e.g. ``{"labels": y}``), passed to D with the real and the generated examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gen_jax.losses.penalties import r1_penalty
from gen_jax.train.engine import Nets, Phase, Setup, Term

LatentFn = Callable[[jax.Array, int], jax.Array]

__all__ = [
    "discriminator_term",
    "gan_phases",
    "generator_term",
    "normal_latent",
    "r1_term",
    "sample_fake",
]


def normal_latent(dim: int) -> LatentFn:
    """z ~ N(0, I) of shape [B, dim], the DCGAN latent."""

    def sample(key: jax.Array, batch_size: int) -> jax.Array:
        return jax.random.normal(key, (batch_size, dim), jnp.float32)

    return sample


def _mean_logit(logits: jax.Array) -> jax.Array:
    return jnp.mean(logits.astype(jnp.float32))


def _f32(logits: jax.Array) -> jax.Array:
    """Logits in float32: under bfloat16 compute the losses and their means stay float32."""
    return jnp.asarray(logits).astype(jnp.float32)


def sample_fake(sample_latent: LatentFn, *, generator: str = "g") -> Setup:
    """A phase setup drawing ``z = sample_latent(key, B)`` and ``fake = G(z)``.

    B is the batch size of ``batch["real"]``. Returns ``{"z": z, "fake": fake}``; in a
    phase that does not update G, G runs in train mode with its parameters fixed and its
    statistic updates dropped, and no gradient reaches it.
    """

    def setup(nets: Nets, batch: Mapping[str, Any], key: jax.Array, extra) -> dict:
        del extra
        z = sample_latent(key, batch["real"].shape[0])
        return {"z": z, "fake": nets(generator, z)}

    return setup


def discriminator_term(
    loss: Callable[..., jax.Array],
    *,
    discriminator: str = "d",
    loss_kwargs: Mapping[str, Any] | None = None,
) -> Term:
    """D's side of the adversarial loss: ``mean loss(D(real), D(fake), **loss_kwargs)``.

    Args:
      loss: a `gen_jax.losses` discriminator loss, ``f(real_logits, fake_logits) -> [B]``.
      discriminator: the player that judges.
      loss_kwargs: static extras of the loss (``label_smoothing=0.1``).

    Returns:
      A term with metrics ``loss`` (this term's value), ``real_logit`` and ``fake_logit``
      (mean logits). D sees the real batch first, then the generated one, so its batch
      statistics thread real -> fake.
    """
    kwargs = dict(loss_kwargs or {})

    def term(nets: Nets, batch, key, aux):
        del key
        real_logits = _f32(nets(discriminator, batch["real"], **aux.get("d_real_kwargs", {})))
        fake_logits = _f32(nets(discriminator, aux["fake"], **aux.get("d_fake_kwargs", {})))
        value = jnp.mean(loss(real_logits, fake_logits, **kwargs))
        return value, {
            "loss": value,
            "real_logit": _mean_logit(real_logits),
            "fake_logit": _mean_logit(fake_logits),
        }

    return term


def generator_term(loss: Callable[..., jax.Array], *, discriminator: str = "d") -> Term:
    """G's side of the adversarial loss: ``mean loss(D(fake))``, D fixed.

    Args:
      loss: a `gen_jax.losses` generator loss, ``f(fake_logits) -> [B]``.
      discriminator: the player that judges.

    Returns:
      A term with metrics ``loss`` and ``fake_logit``.
    """

    def term(nets: Nets, batch, key, aux):
        del batch, key
        fake_logits = _f32(nets(discriminator, aux["fake"], **aux.get("d_fake_kwargs", {})))
        value = jnp.mean(loss(fake_logits))
        return value, {"loss": value, "fake_logit": _mean_logit(fake_logits)}

    return term


def r1_term(gamma: float, *, discriminator: str = "d") -> Term:
    """The R1 penalty as a term of D's phase: ``gamma / 2 * mean ||grad_x D(x)||^2`` on real x.

    Mescheder, Geiger & Nowozin 2018 (arXiv:1801.04406), Eq. 9; `gen_jax.losses.r1_penalty`.
    D's extra forward runs in train mode with its statistic updates dropped.

    Args:
      gamma: the weight (> 0).
      discriminator: the player penalised.

    Returns:
      A term whose metric ``r1`` is the unweighted mean squared gradient norm.
    """
    if not gamma > 0:
        raise ValueError(f"r1 gamma must be > 0 (leave the term out for none), got {gamma}")

    def term(nets: Nets, batch, key, aux):
        del key

        def d_fn(x):
            return _f32(nets(discriminator, x, update_stats=False, **aux.get("d_real_kwargs", {})))

        r1 = jnp.mean(r1_penalty(d_fn, batch["real"]))
        return 0.5 * gamma * r1, {"r1": r1}

    return term


def gan_phases(
    generator_loss: Callable[..., jax.Array],
    discriminator_loss: Callable[..., jax.Array],
    sample_latent: LatentFn,
    *,
    discriminator_loss_kwargs: Mapping[str, Any] | None = None,
    d_terms: tuple[Term, ...] = (),
    g_terms: tuple[Term, ...] = (),
) -> tuple[Phase, Phase]:
    """The two phases of the classic game: D (once per draw) on its loss, then G on its own.

    Args:
      generator_loss, discriminator_loss: a `gen_jax.losses` pair.
      sample_latent: ``f(key, batch_size) -> z``; latents are drawn outside the modules.
      discriminator_loss_kwargs: static extras of D's loss.
      d_terms, g_terms: further terms of each phase (penalties, reconstruction losses).

    Returns:
      ``(Phase("d", ...), Phase("g", ...))`` for `make_gan_step`.
    """
    setup = sample_fake(sample_latent)
    d_phase = Phase(
        "d",
        ("d",),
        (discriminator_term(discriminator_loss, loss_kwargs=discriminator_loss_kwargs), *d_terms),
        setup=setup,
        per_draw=True,
    )
    g_phase = Phase("g", ("g",), (generator_term(generator_loss), *g_terms), setup=setup)
    return d_phase, g_phase
