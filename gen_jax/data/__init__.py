"""Datasets: IDX files, Fashion-MNIST, the PacGAN 2-D mixtures, on-device batching."""

from gen_jax.data.device import epoch_batch_indices, to_signed_unit
from gen_jax.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from gen_jax.data.idx import IDXFormatError, read_idx, write_idx
from gen_jax.data.images import SKIMAGE_IMAGES, load_image, save_image, side_by_side
from gen_jax.data.mixtures import (
    Mixture,
    get_mixture,
    grid_mixture,
    ring_mixture,
    sample_mixture,
)
from gen_jax.data.mnist import load_mnist_subset, stratified_split
from gen_jax.data.stacked_mnist import (
    NUM_STACKED_MNIST_MODES,
    sample_stacked_mnist,
    stacked_mnist_label,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "NUM_STACKED_MNIST_MODES",
    "SKIMAGE_IMAGES",
    "IDXFormatError",
    "Mixture",
    "epoch_batch_indices",
    "get_mixture",
    "grid_mixture",
    "load_fashion_mnist",
    "load_image",
    "load_mnist_subset",
    "read_idx",
    "ring_mixture",
    "sample_mixture",
    "sample_stacked_mnist",
    "save_image",
    "side_by_side",
    "stacked_mnist_label",
    "stratified_split",
    "to_signed_unit",
    "write_idx",
]
