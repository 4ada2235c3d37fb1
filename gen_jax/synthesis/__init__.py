"""Optimisation in input space: style transfer, texture synthesis, colour preservation."""

from gen_jax.synthesis.color import (
    combine_luminance,
    luminance,
    match_color,
    match_luminance,
    rgb_to_yiq,
    yiq_to_rgb,
)
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
    "OptimizeResult",
    "PerceptualLoss",
    "SynthesisResult",
    "combine_luminance",
    "content_targets",
    "luminance",
    "match_color",
    "match_luminance",
    "optimize_image",
    "rgb_to_yiq",
    "style_grams",
    "style_transfer",
    "texture_synthesis",
    "yiq_to_rgb",
]
