"""Batching for datasets small enough to live on the accelerator whole.

The dataset is put on the device once; the jitted train step draws its batch by index
(`images[epoch_batch_indices(key, step, N, B)]`), so there is no host input pipeline on
the hot path and a run resumed at step s draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["epoch_batch_indices", "to_signed_unit"]


def epoch_batch_indices(
    key: jax.Array, step: ArrayLike, num_examples: int, batch_size: int
) -> jax.Array:
    """Indices of the examples in batch `step`, without replacement within an epoch.

        steps_per_epoch = num_examples // batch_size   (the remainder is dropped)
        epoch, pos = divmod(step, steps_per_epoch)
        perm = permutation(fold_in(key, epoch), num_examples)
        indices = perm[pos * batch_size : (pos + 1) * batch_size]

    A pure function of (key, step): no iterator state to checkpoint.

    Args:
      key: the data PRNG key, the same at every step of the run.
      step: the global step, a non-negative int32 scalar; may be traced.
      num_examples: N, a Python int.
      batch_size: B, a Python int with 1 <= B <= N.

    Returns:
      int32 [B] indices in [0, N), disjoint across the steps of one epoch.

    Raises:
      ValueError: (at trace time) B < 1 or B > N.
    """
    if not 1 <= batch_size <= num_examples:
        raise ValueError(
            f"batch_size: expected 1 <= batch_size <= num_examples = {num_examples}, "
            f"found {batch_size}"
        )
    steps_per_epoch = num_examples // batch_size
    step = jnp.asarray(step, dtype=jnp.int32)
    epoch = step // steps_per_epoch
    pos = step % steps_per_epoch
    # Recomputing the epoch's permutation at every step is a sort of N keys: negligible
    # next to a train step for the N (<= ~1e6) this is meant for, and it keeps the step
    # stateless.
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return lax.dynamic_slice(perm, (pos * batch_size,), (batch_size,)).astype(jnp.int32)


def to_signed_unit(images: ArrayLike) -> jax.Array:
    """Maps uint8 pixels [0, 255] to float32 [-1, 1] (the range of a tanh generator).

        x = (pixels - 127.5) / 127.5

    Args:
      images: uint8 [N, H, W] (a channel axis is appended) or [N, H, W, C].

    Returns:
      float32 [N, H, W, C] (NHWC), with 0 -> -1 and 255 -> 1 exactly.

    Raises:
      ValueError: `images` is not uint8, or not 3- or 4-dimensional.
    """
    images = jnp.asarray(images)
    # Refuse anything but uint8: floats already in [0, 1] would be silently mis-scaled.
    if images.dtype != jnp.uint8:
        raise ValueError(f"to_signed_unit: expected uint8 images, found {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim != 4:
        raise ValueError(
            f"to_signed_unit: expected images of shape [N, H, W] or [N, H, W, C], found "
            f"{list(images.shape)}"
        )
    # Centre first, then scale: x / 127.5 - 1 lets XLA fuse a multiply-add that lands
    # 255 on 1.0000001; (x - 127.5) is exact and 127.5 * f32(1 / 127.5) rounds to 1.
    return (images.astype(jnp.float32) - 127.5) / 127.5
