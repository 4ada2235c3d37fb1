"""Pure jax.numpy loss functions (no Flax); each returns per-example values."""

from gen_jax.losses.adversarial import (
    GAN_LOSSES,
    get_gan_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    maximum_likelihood_discriminator_loss,
    maximum_likelihood_generator_loss,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
    wasserstein_discriminator_loss,
    wasserstein_generator_loss,
)
from gen_jax.losses.penalties import r1_penalty
from gen_jax.losses.perceptual import (
    GRAM_NORMALIZATIONS,
    content_loss,
    gram_matrix,
    style_layer_loss,
    total_variation,
)

__all__ = [
    "GAN_LOSSES",
    "GRAM_NORMALIZATIONS",
    "content_loss",
    "get_gan_loss",
    "gram_matrix",
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
    "r1_penalty",
    "style_layer_loss",
    "total_variation",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
]
