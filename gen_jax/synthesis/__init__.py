"""Optimisation in input space: style transfer, texture synthesis, colour preservation,
feature inversion, DeepDream and adversarial examples (FGSM)."""

from gen_jax.synthesis.adversarial import fgsm, iterative_fgsm
from gen_jax.synthesis.color import (
    combine_luminance,
    luminance,
    match_color,
    match_luminance,
    rgb_to_yiq,
    yiq_to_rgb,
)
from gen_jax.synthesis.deep_dream import (
    ClassifierFeatures,
    DreamObjective,
    DreamResult,
    deep_dream,
    octave_shapes,
)
from gen_jax.synthesis.inversion import InversionLoss, InversionResult, invert_features
from gen_jax.synthesis.networks import feature_net
from gen_jax.synthesis.optimize import OptimizeResult, optimize_image
from gen_jax.synthesis.style import (
    GATYS_CONTENT_LAYERS,
    GATYS_STYLE_LAYERS,
    PerceptualLoss,
    SynthesisResult,
    content_targets,
    style_grams,
    style_transfer,
    texture_synthesis,
)

__all__ = [
    "GATYS_CONTENT_LAYERS",
    "GATYS_STYLE_LAYERS",
    "ClassifierFeatures",
    "DreamObjective",
    "DreamResult",
    "InversionLoss",
    "InversionResult",
    "OptimizeResult",
    "PerceptualLoss",
    "SynthesisResult",
    "combine_luminance",
    "content_targets",
    "deep_dream",
    "feature_net",
    "fgsm",
    "invert_features",
    "iterative_fgsm",
    "luminance",
    "match_color",
    "match_luminance",
    "octave_shapes",
    "optimize_image",
    "rgb_to_yiq",
    "style_grams",
    "style_transfer",
    "texture_synthesis",
    "yiq_to_rgb",
]
