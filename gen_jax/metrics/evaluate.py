"""One call that scores generated 28x28 images with a pretrained classifier's features.

`score_images` extracts the classifier's penultimate features and logits for a reference
set of real images and for the samples, and returns every feature-space metric of
`evaluate_feature_metrics` (prefixed by the feature network, e.g. ``fmnist_cnn/frechet``),
the classifier score of the samples (and of the reference, for scale), and, for
three-channel samples scored with the MNIST classifier, the stacked-MNIST mode count and
KL of the PacGAN protocol. It is what `experiments/score_samples.py`,
`experiments/calibrate_metrics.py` and the GAN experiments' ``results.json`` use.

Images are float in [-1, 1] (the tanh scale of the generators, background -1) or uint8
pixels in [0, 255], which are mapped by ``(x - 127.5) / 127.5`` exactly as
`gen_jax.data.to_signed_unit` does. Float images outside [-1, 1], or float images with no
negative value at all (almost surely [0, 1] or [0, 255] images given unconverted), are
refused rather than silently mis-scaled.

Multi-channel images (C = 3, stacked MNIST) go through the one-channel classifier channel
by channel: the feature vector of a sample is the concatenation of its channels' features
[C * F], and its class distribution is the product of the channels' ones, a K**C-way
distribution (1,000 stacked-MNIST modes for K = 10, C = 3), so the classifier score of
such samples ranges from 1 to K**C.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.metrics.classifier_score import classifier_score
from gen_jax.metrics.features import FEATURE_METRIC_KEYS, evaluate_feature_metrics, extract_features
from gen_jax.metrics.stacked_mnist import mode_histogram_stats, sampling_floor_kl

__all__ = [
    "FEATURE_PREFIXES",
    "REFERENCE_DATASETS",
    "load_reference_images",
    "score_images",
    "to_model_range",
]

# The reference datasets `score_images` knows by name, and the classifier each defaults to.
REFERENCE_DATASETS: dict[str, str] = {
    "fashion_mnist": "fashion_mnist",
    "mnist": "mnist",
    "stacked_mnist": "mnist",
}
# The key prefix of each pretrained classifier's feature metrics.
FEATURE_PREFIXES: dict[str, str] = {"fashion_mnist": "fmnist_cnn", "mnist": "mnist_cnn"}

# Fewest images per set: density/coverage need a 5th real neighbour, precision/recall a 3rd.
MIN_IMAGES = 6
# Default number of stacked-MNIST reference samples (they are drawn, not a fixed set).
STACKED_REFERENCE_SAMPLES = 10_000
_RANGE_TOLERANCE = 1e-3

ClassifyFn = Callable[[jax.Array], Mapping[str, jax.Array]]


def to_model_range(
    images: Any, name: str = "images", *, allow_nonnegative: bool = False
) -> np.ndarray:
    """Checks a batch of 28x28 images and returns it as float32 [N, 28, 28, C] in [-1, 1].

        uint8 x  ->  (x - 127.5) / 127.5          float x  ->  x (checked, not rescaled)

    Args:
      images: [N, 28, 28] or [N, 28, 28, C] with C in {1, 3}; uint8 pixels in [0, 255] or
        floats in [-1, 1] (NumPy or jax).
      name: how error messages call the input.
      allow_nonnegative: accept float images with no negative value (for outputs known to
        be on the tanh scale, e.g. a collapsed generator's all-white samples).

    Returns:
      float32 NumPy array [N, 28, 28, C] (a channel axis appended to 3-D input).

    Raises:
      ValueError: the shape is not one of the above, N < 1, the dtype is neither uint8 nor
        floating, a float value is not finite or outside [-1, 1] (tolerance 1e-3; values
        in [-1.001, 1.001] are clipped), or no float value is negative (images in [0, 1]
        or [0, 255] that were not mapped to [-1, 1]).
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:3] != (28, 28) or x.shape[3] not in (1, 3) or x.shape[0] < 1:
        raise ValueError(
            f"{name}: expected [N, 28, 28], [N, 28, 28, 1] or [N, 28, 28, 3] images with "
            f"N >= 1, found shape {list(np.shape(images))}"
        )
    if x.dtype == np.uint8:
        return ((x.astype(np.float32) - 127.5) / 127.5).astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name}: expected uint8 pixels in [0, 255] or floats in [-1, 1], found dtype {x.dtype}"
        )
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - _RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        hint = " (uint8-scale pixels stored as floats? pass them as uint8)" if hi > 2 else ""
        raise ValueError(f"{name}: expected floats in [-1, 1], found [{lo:g}, {hi:g}]{hint}")
    if lo >= 0 and not allow_nonnegative:
        raise ValueError(
            f"{name}: expected floats in [-1, 1] with background -1, found none below 0 "
            f"(range [{lo:g}, {hi:g}]); images in [0, 1] must be mapped by 2 * x - 1"
        )
    return np.clip(x, -1.0, 1.0)


def load_reference_images(
    dataset: str, *, num_real: int | None = None, key: jax.Array | None = None
) -> np.ndarray:
    """Real images a generator of `dataset` is compared with, float32 in [-1, 1].

    * "fashion_mnist": the 10,000 official test images (`load_fashion_mnist("test")`);
    * "mnist": the 1,000 held-out digits of the MNIST subset, which the shipped MNIST
      classifier never saw (`load_mnist_subset("heldout")`);
    * "stacked_mnist": `num_real` (default 10,000) stacked samples drawn from those
      held-out digits (`sample_stacked_mnist`), [N, 28, 28, 3].

    Args:
      dataset: a key of `REFERENCE_DATASETS`.
      num_real: how many images; None: the whole set (10,000 stacked samples). For the
        fixed sets a smaller number draws a random subset without replacement.
      key: PRNG key for the subset or the stacked samples (default `PRNGKey(0)`).

    Returns:
      float32 [N, 28, 28, C] in [-1, 1], C = 3 for "stacked_mnist", else 1.

    Raises:
      ValueError: unknown `dataset`, or `num_real` < 1 or larger than a fixed set.
      FileNotFoundError, ImportError: the dataset is not installed (see its loader).
    """
    # Imported here: the data modules are only needed when a reference is named.
    from gen_jax.data.fashion_mnist import load_fashion_mnist
    from gen_jax.data.mnist import load_mnist_subset
    from gen_jax.data.stacked_mnist import sample_stacked_mnist

    if dataset not in REFERENCE_DATASETS:
        raise ValueError(
            f"reference: expected one of {list(REFERENCE_DATASETS)} or an image array, "
            f"found {dataset!r}"
        )
    key = jax.random.PRNGKey(0) if key is None else key
    if num_real is not None and (not isinstance(num_real, (int, np.integer)) or num_real < 1):
        raise ValueError(f"num_real: expected a positive int or None, found {num_real!r}")
    if dataset == "stacked_mnist":
        digits, labels = load_mnist_subset("heldout")
        n = STACKED_REFERENCE_SAMPLES if num_real is None else int(num_real)
        x, _ = jax.jit(sample_stacked_mnist, static_argnums=3)(key, digits, labels, n)
        return np.asarray(x)
    if dataset == "fashion_mnist":
        images, _ = load_fashion_mnist("test")
    else:
        images, _ = load_mnist_subset("heldout")
    return to_model_range(_subset(images, num_real, key, dataset), dataset)


def _subset(images: np.ndarray, num: int | None, key: jax.Array, name: str) -> np.ndarray:
    """`num` rows of `images` drawn without replacement (all of them, in order, for None)."""
    if num is None or num == len(images):
        return images
    if num > len(images):
        raise ValueError(f"num_real: expected at most the {len(images)} {name} images, found {num}")
    idx = np.sort(np.asarray(jax.random.choice(key, len(images), (int(num),), replace=False)))
    return images[idx]


def _channelwise(classify: ClassifyFn, channels: int) -> Callable[[jax.Array], jax.Array]:
    """x [B, 28, 28, C] -> [B, C * F + C * K]: each channel's features, then its logits."""

    def fn(x):
        b = x.shape[0]
        # [B, 28, 28, C] -> [B, C, 28, 28] -> [B * C, 28, 28, 1]: a sample's channels are
        # consecutive classifier inputs.
        flat = jnp.moveaxis(x, -1, 1).reshape(b * channels, 28, 28, 1)
        out = classify(flat)
        features = out["features"].astype(jnp.float32).reshape(b, -1)
        logits = out["logits"].astype(jnp.float32).reshape(b, -1)
        return jnp.concatenate([features, logits], axis=-1)

    return fn


def _joint_logits(logits: np.ndarray) -> jax.Array:
    """[N, C, K] per-channel logits -> [N, K**C] log-probabilities of the joint class.

    The joint class of digits (d_0, ..., d_{C-1}) is sum_c d_c K**(C-1-c), the
    stacked-MNIST mode 100 d_0 + 10 d_1 + d_2 for C = 3.
    """
    log_p = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    n, c = log_p.shape[:2]
    joint = log_p[:, 0]
    for i in range(1, c):
        joint = (joint[:, :, None] + log_p[:, i][:, None, :]).reshape(n, -1)
    return joint


def score_images(
    images: Any,
    *,
    reference: str | Any,
    classifier: str | ClassifyFn | None = None,
    num_real: int | None = None,
    key: jax.Array,
    prefix: str | None = None,
    count_modes: bool | None = None,
    batch_size: int = 500,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    classifier_score_splits: int = 10,
    allow_nonnegative: bool = False,
) -> dict[str, float | int]:
    """Scores generated images against real ones in a pretrained classifier's feature space.

    With ``P`` the feature prefix (``fmnist_cnn`` for the Fashion-MNIST classifier,
    ``mnist_cnn`` for the MNIST one), the result holds

    * ``P/frechet``, ``P/kid_mean``, ``P/kid_std``, ``P/precision``, ``P/recall``,
      ``P/density``, ``P/coverage``: `evaluate_feature_metrics` of the classifier's
      penultimate features (per channel, concatenated, for C = 3);
    * ``classifier_score_mean``, ``classifier_score_std``: the Inception-score formula on
      the classifier's logits (`classifier_score`, ``classifier_score_splits`` parts), and
      ``real_classifier_score_mean`` / ``_std``, the same for the reference images;
    * with ``count_modes`` (three-channel samples and the MNIST classifier by default):
      ``stacked_mnist/modes`` and ``stacked_mnist/kl`` (covered modes of 1,000 and
      KL(mode histogram || uniform) in nats, the PacGAN protocol, see
      `gen_jax.metrics.stacked_mnist`), ``stacked_mnist/real_modes`` and
      ``stacked_mnist/real_kl`` of the reference, and ``stacked_mnist/sampling_floor``,
      (K - 1) / (2N), the KL that even perfect samples and a perfect classifier get;
    * ``num_samples``, ``num_real``: the set sizes.

    Args:
      images: samples [N, 28, 28] or [N, 28, 28, C], C in {1, 3}: float in [-1, 1] or
        uint8 in [0, 255] (converted; see `to_model_range`), N >= 6.
      reference: a dataset name ("fashion_mnist", "mnist", or "stacked_mnist" for C = 3;
        see `load_reference_images`), or real images in the same format as `images` with
        the same C.
      classifier: a pretrained classifier name ("fashion_mnist" or "mnist"), or a function
        ``x [B, 28, 28, 1] in [-1, 1] -> {"logits": [B, K], "features": [B, F]}`` such as
        `gen_jax.models.classifier.classifier_fn(name)`. Default: the classifier of the
        named reference dataset; required when `reference` is an array.
      num_real: the number of reference images; None: all of a fixed set or array (10,000
        stacked samples for "stacked_mnist"); smaller: a random subset.
      key: PRNG key (reference subset or stacked draws, KID subsets).
      prefix: the feature metrics' key prefix; default from `FEATURE_PREFIXES` for a
        named classifier, "classifier" for a function.
      count_modes: report the stacked-MNIST modes; default: C = 3 and classifier "mnist".
        Needs C = 3 and K = 10 classes.
      batch_size: images per classifier call.
      kid_subsets, kid_subset_size: KID subsets (the size is capped at the smaller set).
      classifier_score_splits: parts of the classifier score (capped at N).
      allow_nonnegative: accept float samples with no negative value (see
        `to_model_range`); for generator outputs known to be on the tanh scale.

    Returns:
      A flat dict of Python floats (ints for counts), keys as above.

    Raises:
      ValueError: a malformed or wrongly scaled image array, a channel mismatch between
        samples and reference, fewer than 6 images in either set, an unknown reference or
        classifier name, a missing `classifier` for an array reference, or `count_modes`
        without three channels and ten classes.
      TypeError: `classifier` is neither a string nor callable.
      ClassifierWeightsError: the pretrained classifier's weight file is missing or corrupt.

    References:
      Heusel et al. 2017 (arXiv:1706.08500); Bińkowski et al. 2018 (arXiv:1801.01401);
      Kynkäänniemi et al. 2019 (arXiv:1904.06991); Naeem et al. 2020 (arXiv:2002.09797);
      Salimans et al. 2016 (arXiv:1606.03498); Lin et al., PacGAN, 2018 (arXiv:1712.04086).
    """
    # Imported here: gen_jax.metrics must not depend on gen_jax.models at import time.
    from gen_jax.models.classifier import PRETRAINED_CLASSIFIERS, classifier_fn

    fake = to_model_range(images, "images", allow_nonnegative=allow_nonnegative)
    channels = fake.shape[-1]
    ref_key, kid_key = jax.random.split(key)

    # Resolve the classifier before loading any data, so a bad name fails first.
    named_reference = isinstance(reference, str)
    if named_reference and reference not in REFERENCE_DATASETS:
        raise ValueError(
            f"reference: expected one of {list(REFERENCE_DATASETS)} or an image array, "
            f"found {reference!r}"
        )
    if classifier is None:
        if not named_reference:
            raise ValueError(
                "classifier: expected a classifier name or function when reference is an "
                "image array, found None"
            )
        classifier = REFERENCE_DATASETS[reference]
    if isinstance(classifier, str):
        if classifier not in PRETRAINED_CLASSIFIERS:
            raise ValueError(
                f"classifier: expected one of {list(PRETRAINED_CLASSIFIERS)} or a function, "
                f"found {classifier!r}"
            )
        name = classifier
        prefix = FEATURE_PREFIXES[name] if prefix is None else prefix
        classify = classifier_fn(name)
    elif callable(classifier):
        name, classify = None, classifier
        prefix = "classifier" if prefix is None else prefix
    else:
        raise TypeError(
            f"classifier: expected a name or a function, found {type(classifier).__name__}"
        )

    if named_reference:
        expected = 3 if reference == "stacked_mnist" else 1
        if channels != expected:
            hint = " (use reference='stacked_mnist')" if channels == 3 else ""
            raise ValueError(
                f"images: reference {reference!r} has {expected} channel(s), found images of "
                f"shape {list(fake.shape)}{hint}"
            )
        real = load_reference_images(reference, num_real=num_real, key=ref_key)
    else:
        if not hasattr(reference, "shape"):
            reference = np.asarray(reference)
        if reference.ndim not in (3, 4):
            to_model_range(reference, "reference")  # raises its shape error
        # Subset first: only the drawn images are converted to float32.
        real = to_model_range(_subset(reference, num_real, ref_key, "reference"), "reference")
        if real.shape[-1] != channels:
            raise ValueError(
                f"reference: expected {channels}-channel images like `images`, found shape "
                f"{list(real.shape)}"
            )
    for set_name, x in (("images", fake), ("reference", real)):
        if len(x) < MIN_IMAGES:
            raise ValueError(f"{set_name}: expected at least {MIN_IMAGES} images, found {len(x)}")

    fn = _channelwise(classify, channels)
    out_dim = jax.eval_shape(classify, jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))
    num_features = out_dim["features"].shape[-1]
    num_classes = out_dim["logits"].shape[-1]
    if count_modes is None:
        count_modes = channels == 3 and name == "mnist"
    if count_modes and (channels != 3 or num_classes != 10):
        raise ValueError(
            f"count_modes: expected three-channel images and a 10-class classifier, found "
            f"{channels} channel(s) and {num_classes} classes"
        )

    def split(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cut = channels * num_features
        return outputs[:, :cut], outputs[:, cut:].reshape(-1, channels, num_classes)

    real_features, real_logits = split(extract_features(fn, real, batch_size))
    fake_features, fake_logits = split(extract_features(fn, fake, batch_size))

    results: dict[str, float | int] = {}
    metrics = evaluate_feature_metrics(
        real_features,
        fake_features,
        key=kid_key,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
    )
    results |= {f"{prefix}/{k}": metrics[k] for k in FEATURE_METRIC_KEYS}
    for tag, logits in (("", fake_logits), ("real_", real_logits)):
        joint = _joint_logits(logits) if channels > 1 else jnp.asarray(logits[:, 0])
        mean, std = classifier_score(joint, splits=min(classifier_score_splits, len(logits)))
        results[f"{tag}classifier_score_mean"] = float(mean)
        results[f"{tag}classifier_score_std"] = float(std)
    if count_modes:
        for tag, logits in (("", fake_logits), ("real_", real_logits)):
            digits = np.argmax(logits, axis=-1)  # [N, 3]
            stats = mode_histogram_stats(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
            results[f"stacked_mnist/{tag}modes"] = stats["modes"]
            results[f"stacked_mnist/{tag}kl"] = stats["kl"]
        results["stacked_mnist/sampling_floor"] = sampling_floor_kl(len(fake))
    results["num_samples"] = len(fake)
    results["num_real"] = len(real)
    return results
