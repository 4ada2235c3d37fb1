"""Datasets: IDX files, Fashion-MNIST, the PacGAN 2-D mixtures, on-device batching."""

from gen_jax.data.device import epoch_batch_indices, to_signed_unit
from gen_jax.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from gen_jax.data.idx import IDXFormatError, read_idx, write_idx
from gen_jax.data.mixtures import (
    Mixture,
    get_mixture,
    grid_mixture,
    ring_mixture,
    sample_mixture,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDXFormatError",
    "Mixture",
    "epoch_batch_indices",
    "get_mixture",
    "grid_mixture",
    "load_fashion_mnist",
    "read_idx",
    "ring_mixture",
    "sample_mixture",
    "to_signed_unit",
    "write_idx",
]
