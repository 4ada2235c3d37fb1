"""Adversarial (GAN) losses: generator / discriminator pairs over discriminator logits.

Convention, shared by every function in this module:

* Inputs are discriminator **logits** (pre-sigmoid scores; a critic's raw output for the
  Wasserstein and hinge families), never probabilities. Models output logits; the
  sigmoid lives only inside the losses, fused with the log.
* Logits have shape ``[batch, ...]`` with any trailing shape: ``[B]``, ``[B, 1]`` and a
  PatchGAN map ``[B, H, W, 1]`` all work unchanged.
* The loss is computed elementwise, then averaged over all trailing axes, so every
  function returns per-example values of shape ``[batch]``. The caller reduces over the
  batch (usually with ``jnp.mean``).
* ``*_generator_loss(fake_logits)`` is minimised by the generator G;
  ``*_discriminator_loss(real_logits, fake_logits, ...)`` is minimised by the
  discriminator (or critic) D. ``real_logits`` and ``fake_logits`` must have the same
  shape.
* Log-probabilities are written with ``softplus``: ``-log sigmoid(x) = softplus(-x)``
  and ``-log(1 - sigmoid(x)) = softplus(x)``, which stay finite (in value and gradient)
  where ``log(sigmoid(x))`` underflows to ``log(0)``.

Families (see ``GAN_LOSSES`` / ``get_gan_loss``): ``minimax``, ``non_saturating``,
``maximum_likelihood``, ``least_squares``, ``wasserstein``, ``hinge``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "GAN_LOSSES",
    "get_gan_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "maximum_likelihood_discriminator_loss",
    "maximum_likelihood_generator_loss",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_discriminator_loss",
    "non_saturating_generator_loss",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
]

GeneratorLossFn = Callable[..., jax.Array]
DiscriminatorLossFn = Callable[..., jax.Array]


# ------------------------------------------------------------------------------------------
# Private helpers.
# ------------------------------------------------------------------------------------------


def _as_logits(logits: ArrayLike, name: str) -> jax.Array:
    """Converts `logits` to a floating array of rank >= 1, naming `name` in the error."""
    x = jnp.asarray(logits)
    if x.ndim == 0:
        raise ValueError(
            f"{name} must have a leading batch axis, shape [batch, ...]; "
            f"got a 0-d array (shape {x.shape})."
        )
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def _as_logit_pair(real_logits: ArrayLike, fake_logits: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Validates and converts the (real, fake) logits of a discriminator loss."""
    r = _as_logits(real_logits, "real_logits")
    f = _as_logits(fake_logits, "fake_logits")
    if r.shape != f.shape:
        raise ValueError(
            "real_logits and fake_logits must have the same shape; "
            f"got real_logits.shape={r.shape} and fake_logits.shape={f.shape}."
        )
    return r, f


def _per_example(elementwise: jax.Array) -> jax.Array:
    """Averages `[batch, ...]` over all trailing axes, giving `[batch]`."""
    return jnp.mean(elementwise, axis=tuple(range(1, elementwise.ndim)))


# ------------------------------------------------------------------------------------------
# Minimax (Goodfellow et al. 2014) and its non-saturating / maximum-likelihood variants.
# ------------------------------------------------------------------------------------------


def minimax_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Minimax (saturating) generator loss of the original GAN.

    G minimises ``log(1 - D(G(z))) = -softplus(x)`` with ``x`` the logit of D on a fake.
    Its gradient ``-sigmoid(x)`` vanishes when D confidently rejects fakes (``x -> -inf``),
    which is why the paper recommends the non-saturating loss in practice.

    Args:
      fake_logits: discriminator logits on generated samples, shape ``[batch, ...]``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Goodfellow et al., Generative Adversarial Networks, 2014 (arXiv:1406.2661).
    """
    x = _as_logits(fake_logits, "fake_logits")
    # log(1 - sigmoid(x)) = -softplus(x), finite for any x.
    return _per_example(-jax.nn.softplus(x))


def minimax_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Standard GAN discriminator loss (sigmoid cross-entropy), with one-sided smoothing.

    D minimises ``-log D(x_real) - log(1 - D(G(z))) = softplus(-r) + softplus(f)``.
    With one-sided label smoothing ``s`` the real target becomes ``1 - s``:
    ``(1 - s) * softplus(-r) + s * softplus(r) + softplus(f)``; fake targets stay 0.

    The same function is the discriminator loss of the ``non_saturating`` and
    ``maximum_likelihood`` families (those change only the generator's loss).

    Args:
      real_logits: discriminator logits on data, shape ``[batch, ...]``.
      fake_logits: discriminator logits on generated samples, same shape as
        ``real_logits``.
      label_smoothing: ``s`` in ``[0, 1)``; 0 disables smoothing.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Goodfellow et al., Generative Adversarial Networks, 2014 (arXiv:1406.2661);
      one-sided label smoothing: Salimans et al., Improved Techniques for Training GANs,
      2016 (arXiv:1606.03498).
    """
    r, f = _as_logit_pair(real_logits, fake_logits)
    # A traced `label_smoothing` (under jit) cannot be checked; a Python number can.
    if isinstance(label_smoothing, (int, float)) and not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
    # -log sigmoid(r) = softplus(-r) and -log(1 - sigmoid(r)) = softplus(r): no log(0).
    real_term = (1.0 - label_smoothing) * jax.nn.softplus(-r) + label_smoothing * jax.nn.softplus(r)
    fake_term = jax.nn.softplus(f)
    return _per_example(real_term + fake_term)


def non_saturating_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Non-saturating generator loss (the "-log D trick").

    G minimises ``-log D(G(z)) = softplus(-x)``. Same fixed point as the minimax loss, but
    its gradient ``-sigmoid(-x)`` is close to -1 (strong) when D confidently rejects fakes.

    Args:
      fake_logits: discriminator logits on generated samples, shape ``[batch, ...]``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Goodfellow et al., Generative Adversarial Networks, 2014 (arXiv:1406.2661), Sec. 3.
    """
    x = _as_logits(fake_logits, "fake_logits")
    # -log sigmoid(x) = softplus(-x), finite for any x.
    return _per_example(jax.nn.softplus(-x))


# The non-saturating family trains D exactly as the minimax one does.
non_saturating_discriminator_loss = minimax_discriminator_loss


def maximum_likelihood_generator_loss(
    fake_logits: ArrayLike,
    *,
    max_logit: float = 50.0,
) -> jax.Array:
    """Maximum-likelihood generator loss of Goodfellow's NIPS 2016 tutorial.

    ``J(G) = -1/2 E exp(sigma^{-1}(D(G(z))))``, and ``sigma^{-1}(D)`` is exactly the logit
    ``x``, so the loss is ``-0.5 * exp(x)``. With an optimal D, its gradient equals that of
    ``KL(p_data || p_G)``, i.e. maximum likelihood.

    Deviation from the paper: ``exp`` overflows float32 above ``x ~ 88``, so we evaluate
    ``-0.5 * exp(min(x, max_logit))``. This keeps value and gradient finite; the gradient
    is zero above the cap, where D is already completely fooled.

    Args:
      fake_logits: discriminator logits on generated samples, shape ``[batch, ...]``.
      max_logit: cap on the logit inside ``exp`` (keep it below ~88 for float32).

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Goodfellow, NIPS 2016 Tutorial: Generative Adversarial Networks, Sec. 3.2.3
      (arXiv:1701.00160).
    """
    x = _as_logits(fake_logits, "fake_logits")
    return _per_example(-0.5 * jnp.exp(jnp.minimum(x, max_logit)))


# The maximum-likelihood family trains D with the standard (minimax) loss.
maximum_likelihood_discriminator_loss = minimax_discriminator_loss


# ------------------------------------------------------------------------------------------
# Least squares (Mao et al. 2017).
# ------------------------------------------------------------------------------------------


def least_squares_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Least-squares (LSGAN) generator loss, ``a=0, b=c=1`` coding.

    G minimises ``0.5 * (D(G(z)) - 1)^2`` on D's raw output (no sigmoid).

    Args:
      fake_logits: discriminator outputs on generated samples, shape ``[batch, ...]``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Mao et al., Least Squares Generative Adversarial Networks, 2017 (arXiv:1611.04076).
    """
    f = _as_logits(fake_logits, "fake_logits")
    return _per_example(0.5 * jnp.square(f - 1.0))


def least_squares_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    """Least-squares (LSGAN) discriminator loss, ``a=0, b=c=1`` coding.

    D minimises ``0.5 * (D(x) - 1)^2 + 0.5 * D(G(z))^2`` on its raw output (no sigmoid).

    Args:
      real_logits: discriminator outputs on data, shape ``[batch, ...]``.
      fake_logits: discriminator outputs on generated samples, same shape as
        ``real_logits``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Mao et al., Least Squares Generative Adversarial Networks, 2017 (arXiv:1611.04076).
    """
    r, f = _as_logit_pair(real_logits, fake_logits)
    return _per_example(0.5 * jnp.square(r - 1.0) + 0.5 * jnp.square(f))


# ------------------------------------------------------------------------------------------
# Wasserstein (Arjovsky et al. 2017) and hinge (Lim & Ye 2017; Miyato et al. 2018).
# ------------------------------------------------------------------------------------------


def wasserstein_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Wasserstein GAN generator loss.

    G minimises ``-D(G(z))``, with ``D`` the critic's raw score.

    Args:
      fake_logits: critic scores on generated samples, shape ``[batch, ...]``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Arjovsky et al., Wasserstein GAN, 2017 (arXiv:1701.07875).
    """
    f = _as_logits(fake_logits, "fake_logits")
    return _per_example(-f)


def wasserstein_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    """Wasserstein GAN critic loss.

    The critic minimises ``D(G(z)) - D(x)``, the negative of its estimate of the
    Wasserstein-1 distance. The Lipschitz constraint (clipping, gradient penalty, spectral
    norm) is not part of this function.

    Args:
      real_logits: critic scores on data, shape ``[batch, ...]``.
      fake_logits: critic scores on generated samples, same shape as ``real_logits``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Arjovsky et al., Wasserstein GAN, 2017 (arXiv:1701.07875).
    """
    r, f = _as_logit_pair(real_logits, fake_logits)
    return _per_example(f - r)


def hinge_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Hinge GAN generator loss.

    G minimises ``-D(G(z))`` (no hinge on the generator's side).

    Args:
      fake_logits: discriminator scores on generated samples, shape ``[batch, ...]``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Lim & Ye, Geometric GAN, 2017 (arXiv:1705.02894); Miyato et al., Spectral
      Normalization for GANs, 2018 (arXiv:1802.05957).
    """
    f = _as_logits(fake_logits, "fake_logits")
    return _per_example(-f)


def hinge_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    """Hinge GAN discriminator loss.

    D minimises ``relu(1 - D(x)) + relu(1 + D(G(z)))``.

    Args:
      real_logits: discriminator scores on data, shape ``[batch, ...]``.
      fake_logits: discriminator scores on generated samples, same shape as
        ``real_logits``.

    Returns:
      Per-example loss, shape ``[batch]`` (mean over trailing axes).

    References:
      Lim & Ye, Geometric GAN, 2017 (arXiv:1705.02894); Miyato et al., Spectral
      Normalization for GANs, 2018 (arXiv:1802.05957).
    """
    r, f = _as_logit_pair(real_logits, fake_logits)
    return _per_example(jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f))


# ------------------------------------------------------------------------------------------
# Registry.
# ------------------------------------------------------------------------------------------

GAN_LOSSES: dict[str, tuple[GeneratorLossFn, DiscriminatorLossFn]] = {
    "minimax": (minimax_generator_loss, minimax_discriminator_loss),
    "non_saturating": (non_saturating_generator_loss, non_saturating_discriminator_loss),
    "maximum_likelihood": (
        maximum_likelihood_generator_loss,
        maximum_likelihood_discriminator_loss,
    ),
    "least_squares": (least_squares_generator_loss, least_squares_discriminator_loss),
    "wasserstein": (wasserstein_generator_loss, wasserstein_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
}


def get_gan_loss(name: str) -> tuple[GeneratorLossFn, DiscriminatorLossFn]:
    """Returns the ``(generator_loss, discriminator_loss)`` pair of a GAN loss family.

    Args:
      name: one of the keys of ``GAN_LOSSES``.

    Returns:
      ``(generator_fn, discriminator_fn)``, following this module's convention.

    Raises:
      ValueError: if ``name`` is not a known family.
    """
    try:
        return GAN_LOSSES[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in GAN_LOSSES)
        raise ValueError(f"Unknown GAN loss {name!r}; expected one of {valid}.") from None
