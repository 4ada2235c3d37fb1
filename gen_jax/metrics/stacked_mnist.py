"""Mode counting on stacked MNIST (Metz et al. 2016; VEEGAN; PacGAN).

The protocol of PacGAN (arXiv:1712.04086, after VEEGAN, arXiv:1705.07761): classify each
channel of N = 26,000 generated 28x28x3 samples with a pretrained MNIST classifier, read
the three digits as a mode in [0, 999], and report

    modes = #{m : n_m > 0}                       (covered modes, of 1,000)
    kl    = sum_m p_m log(p_m / (1/1000))        (KL(generated histogram || uniform), nats)

with p_m = n_m / N. Even samples of the true distribution do not reach kl = 0: a histogram
of N uniform draws over K modes has E[kl] ~= (K - 1) / (2N) (the chi-squared approximation;
0.0192 nats for K = 1000, N = 26,000), and classifier errors add to it.
`stacked_mnist_floor` measures what real stacked digits get with the same classifier,
the value to compare a generator's kl with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data.mnist import load_mnist_subset
from gen_jax.data.stacked_mnist import (
    NUM_STACKED_MNIST_MODES,
    sample_stacked_mnist,
    stacked_mnist_label,
)

__all__ = [
    "PACGAN_NUM_SAMPLES",
    "classify_stacked_mnist",
    "mode_histogram_stats",
    "sampling_floor_kl",
    "stacked_mnist_floor",
    "stacked_mnist_modes",
]

PACGAN_NUM_SAMPLES = 26_000

# classify_fn(images [B, 28, 28, 1] in [-1, 1]) -> logits [B, 10], or a mapping with
# "logits" (the output of gen_jax.models.classifier.classifier_fn).
ClassifyFn = Callable[[jax.Array], Any]


def _default_classifier() -> ClassifyFn:
    """The shipped MNIST classifier; imported here so gen_jax.metrics loads without models."""
    from gen_jax.models.classifier import classifier_fn

    return classifier_fn("mnist")


def _logits(out: Any) -> jax.Array:
    return out["logits"] if isinstance(out, dict) else out


@functools.lru_cache(maxsize=16)
def _modes_program(classify_fn: ClassifyFn) -> Callable[[jax.Array], jax.Array]:
    """The jitted samples -> modes program, one per classify_fn (so one compilation)."""

    @jax.jit
    def modes_of(x):
        b = x.shape[0]
        # [b, 28, 28, 3] -> [b, 3, 28, 28] -> [3b, 28, 28, 1]: the channels of a sample
        # become consecutive classifier inputs.
        channels = jnp.moveaxis(x, -1, 1).reshape(b * 3, 28, 28, 1)
        digits = jnp.argmax(_logits(classify_fn(channels)), axis=-1).reshape(b, 3)
        return stacked_mnist_label(digits)

    return modes_of


def classify_stacked_mnist(
    samples: Any, classify_fn: ClassifyFn, batch_size: int = 1000
) -> np.ndarray:
    """The mode of every stacked sample: each channel classified as a digit.

        mode = 100 * argmax f(x[..., 0]) + 10 * argmax f(x[..., 1]) + argmax f(x[..., 2])

    Batches of `batch_size` samples (3 * batch_size classifier inputs) run through one
    jitted program; the last batch is padded, so there is a single compilation.

    Args:
      samples: float [N, 28, 28, 3] in [-1, 1] (numpy or jax).
      classify_fn: images [B, 28, 28, 1] -> logits [B, 10] or {"logits": ...}, e.g.
        `classifier_fn("mnist")`.
      batch_size: samples per batch, >= 1.

    Returns:
      int64 [N] modes in [0, 999].

    Raises:
      ValueError: `samples` is not [N, 28, 28, 3] with N >= 1, or batch_size < 1.
    """
    shape = tuple(np.shape(samples))
    if len(shape) != 4 or shape[1:] != (28, 28, 3) or shape[0] < 1:
        raise ValueError(
            f"samples: expected stacked-MNIST images [N, 28, 28, 3] with N >= 1, found "
            f"{list(shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, found {batch_size}")

    modes_of = _modes_program(classify_fn)
    n = shape[0]
    batch_size = min(batch_size, n)
    out = []
    for start in range(0, n, batch_size):
        x = jnp.asarray(samples[start : start + batch_size], jnp.float32)
        real = x.shape[0]
        if real < batch_size:
            x = jnp.concatenate([x, jnp.zeros((batch_size - real, *x.shape[1:]), x.dtype)])
        out.append(np.asarray(modes_of(x))[:real])
    return np.concatenate(out).astype(np.int64)


def mode_histogram_stats(
    modes: np.ndarray, num_modes: int = NUM_STACKED_MNIST_MODES
) -> dict[str, float]:
    """Covered modes and KL(histogram || uniform) of a list of mode ids.

        p_m = n_m / N,   kl = sum_{m : p_m > 0} p_m log(p_m * num_modes)

    Args:
      modes: int [N] in [0, num_modes), N >= 1.
      num_modes: K.

    Returns:
      {"modes": #{m : n_m > 0}, "kl": kl in nats, "num_samples": N}.

    Raises:
      ValueError: `modes` is empty, not 1-D, or out of range.
    """
    modes = np.asarray(modes)
    if modes.ndim != 1 or modes.size == 0:
        raise ValueError(f"modes: expected a non-empty 1-D array, found shape {list(modes.shape)}")
    if modes.min() < 0 or modes.max() >= num_modes:
        raise ValueError(
            f"modes: expected ids in [0, {num_modes}), found [{modes.min()}, {modes.max()}]"
        )
    counts = np.bincount(modes, minlength=num_modes)
    p = counts[counts > 0] / modes.size
    return {
        "modes": int((counts > 0).sum()),
        "kl": float(np.sum(p * np.log(p * num_modes))),
        "num_samples": int(modes.size),
    }


def stacked_mnist_modes(
    samples: Any, classify_fn: ClassifyFn | None = None, batch_size: int = 1000
) -> dict[str, float]:
    """Counts the stacked-MNIST modes of generated samples and their KL to uniform.

    The PacGAN protocol (arXiv:1712.04086): N = 26,000 samples, a pretrained
    MNIST classifier on each channel, modes covered of 1,000 and
    KL(generated mode histogram || uniform) in nats (see the module docstring).

    Args:
      samples: float [N, 28, 28, 3] in [-1, 1].
      classify_fn: images [B, 28, 28, 1] -> logits [B, 10] or {"logits": ...}; default
        the shipped MNIST classifier, `classifier_fn("mnist")`.
      batch_size: samples per jitted batch.

    Returns:
      {"modes": covered modes (of 1,000), "kl": nats, "num_samples": N}.

    Raises:
      ValueError: as `classify_stacked_mnist`.
    """
    classify_fn = _default_classifier() if classify_fn is None else classify_fn
    return mode_histogram_stats(classify_stacked_mnist(samples, classify_fn, batch_size))


def sampling_floor_kl(num_samples: int, num_modes: int = NUM_STACKED_MNIST_MODES) -> float:
    """E[KL(histogram of N uniform draws || uniform)] to first order: (K - 1) / (2N) nats.

    2N * KL is the likelihood-ratio (G-) statistic, asymptotically chi-squared with K - 1
    degrees of freedom; it underestimates the mean when N / K is small.
    """
    return (num_modes - 1) / (2.0 * num_samples)


def stacked_mnist_floor(
    classify_fn: ClassifyFn | None = None,
    num_samples: int = PACGAN_NUM_SAMPLES,
    *,
    split: str = "all",
    seed: int = 0,
    batch_size: int = 1000,
) -> dict[str, float]:
    """What real stacked-MNIST data scores: the practical floor of `stacked_mnist_modes`.

    Draws `num_samples` stacked images from the MNIST subset (`sample_stacked_mnist`) and
    scores them like generated ones.

    Args:
      classify_fn: as `stacked_mnist_modes` (default: the shipped MNIST classifier).
      num_samples: N, 26,000 in PacGAN.
      split: the digits to stack: "all", "train" or "heldout" (`load_mnist_subset`); the
        shipped classifier never saw the "heldout" digits.
      seed: the sampling seed.
      batch_size: samples per jitted batch.

    Returns:
      The keys of `stacked_mnist_modes`, plus "sampling_floor" ((K - 1) / (2N), the
      floor of a perfect classifier) and "mode_accuracy" (fraction of samples whose
      three digits were all classified correctly).
    """
    classify_fn = _default_classifier() if classify_fn is None else classify_fn
    images, labels = load_mnist_subset(split)
    x, y = jax.jit(sample_stacked_mnist, static_argnums=3)(
        jax.random.PRNGKey(seed), images, labels, num_samples
    )
    predicted = classify_stacked_mnist(x, classify_fn, batch_size)
    stats = mode_histogram_stats(predicted)
    stats["sampling_floor"] = sampling_floor_kl(num_samples)
    stats["mode_accuracy"] = float(np.mean(predicted == np.asarray(y)))
    return stats
