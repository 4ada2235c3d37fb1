"""Data parallelism through `jax.sharding`: a one-axis mesh, sharded batches, replicated state.

Nothing here is model-specific. The same code runs on one CPU, on 8 fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), on one GPU, and on many hosts after
`jax.distributed.initialize()`: `jax.jit` partitions the step from the shardings of its
inputs (GSPMD), and batch statistics such as batch-norm means are computed over the global
batch, so the sharded step is the single-device step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named 'data' over `devices` (all devices by default)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device (state, small datasets)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sharding that splits axis `batch_axis` across the 'data' axis of the mesh."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every array leaf of `tree` on all devices of `mesh`."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(tree: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Splits every array leaf of `tree` along `batch_axis` across the mesh.

    Raises:
      ValueError: if a leaf's batch dimension is not divisible by the number of devices.
    """
    n = mesh.shape[DATA_AXIS]

    def put(x):
        if x.shape[batch_axis] % n:
            raise ValueError(
                f"batch axis {batch_axis} of an array of shape {x.shape} is not "
                f"divisible by the {n} devices of the mesh"
            )
        return jax.device_put(x, batch_sharding(mesh, batch_axis))

    return jax.tree.map(put, tree)


def constrain_batch(tree: Any, mesh: Mesh | None, batch_axis: int = 0) -> Any:
    """Inside jit: asks XLA to shard `tree` along `batch_axis` (no-op without a mesh)."""
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, batch_sharding(mesh, batch_axis))
