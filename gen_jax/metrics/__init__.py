"""Evaluation metrics: feature-space distances, classifier score, image quality, likelihood.

Feature networks are never imported here: callers pass features (or logits) computed by
their own network, e.g. through ``extract_features(feature_fn, images)``.
"""

from gen_jax.metrics.classifier_score import classifier_score
from gen_jax.metrics.evaluate import load_reference_images, score_images, to_model_range
from gen_jax.metrics.features import (
    FEATURE_METRIC_KEYS,
    evaluate_feature_metrics,
    extract_features,
)
from gen_jax.metrics.frechet import (
    GaussianMoments,
    frechet_distance,
    frechet_distance_jax,
    gaussian_moments,
)
from gen_jax.metrics.image_quality import psnr, ssim
from gen_jax.metrics.kernel import kernel_distance, polynomial_kernel, polynomial_mmd2_unbiased
from gen_jax.metrics.likelihood import (
    bits_per_dim_to_nats,
    nats_to_bits_per_dim,
    quantization_bin_width,
)
from gen_jax.metrics.modes import mixture_mode_stats, summarize_mode_stats
from gen_jax.metrics.prdc import density_coverage, nearest_neighbour_radii, prdc, precision_recall
from gen_jax.metrics.stacked_mnist import (
    classify_stacked_mnist,
    mode_histogram_stats,
    sampling_floor_kl,
    stacked_mnist_floor,
    stacked_mnist_modes,
)
from gen_jax.metrics.texture import (
    histogram_distance,
    shuffled_pixels,
    spectrum_distance,
    texture_report,
    texture_spectra,
)

__all__ = [
    "FEATURE_METRIC_KEYS",
    "GaussianMoments",
    "bits_per_dim_to_nats",
    "classifier_score",
    "classify_stacked_mnist",
    "density_coverage",
    "evaluate_feature_metrics",
    "extract_features",
    "frechet_distance",
    "frechet_distance_jax",
    "gaussian_moments",
    "histogram_distance",
    "kernel_distance",
    "load_reference_images",
    "mixture_mode_stats",
    "mode_histogram_stats",
    "nats_to_bits_per_dim",
    "nearest_neighbour_radii",
    "polynomial_kernel",
    "polynomial_mmd2_unbiased",
    "prdc",
    "precision_recall",
    "psnr",
    "quantization_bin_width",
    "sampling_floor_kl",
    "score_images",
    "shuffled_pixels",
    "spectrum_distance",
    "ssim",
    "stacked_mnist_floor",
    "stacked_mnist_modes",
    "summarize_mode_stats",
    "texture_report",
    "texture_spectra",
    "to_model_range",
]
