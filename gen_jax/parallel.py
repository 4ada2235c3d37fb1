"""Data parallelism through `jax.sharding`: a one-axis mesh, sharded batches, replicated state.

Nothing here is model-specific. The same code runs on one CPU, on 8 fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), on one GPU, and on many processes
(hosts) after `initialize()`: `jax.jit` partitions the step from the shardings of its
inputs (GSPMD), and batch statistics such as batch-norm means are computed over the global
batch, so the sharded step is the single-device step.

Many processes (multi-controller JAX): every process runs the same program on its own
devices; the mesh spans the devices of all of them. Then

- `initialize` must run first, before anything touches a device. Its arguments come
  from `--coordinator HOST:PORT --num_processes N --process_id I`
  (`add_distributed_arguments`), from the environment variables
  ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or from the
  cluster (SLURM, Open MPI, Cloud TPU), which jax detects; on a single process it does
  nothing.
- A state or a small dataset that every process holds in full is placed with
  `replicate` (which checks that the processes agree on it); a batch every process holds
  in full with `shard_batch`; a batch of which each process loaded its own rows
  (`process_shard`) with `global_batch_from_process_local`.
- Host-side writes (logs, pictures, JSON) happen on process 0 only (`is_primary`);
  every process runs the same compiled programs in the same order, and orbax checkpoints
  are saved and restored by all processes together.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

T = TypeVar("T")

# Environment variables that may carry the three options (the first is also jax's own).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"

# What `initialize` was called with, once it started the distributed runtime.
_initialized_with: dict[str, Any] | None = None


# --- Processes ---------------------------------------------------------------------------


def cluster_environment() -> str | None:
    """The multi-process cluster this process was launched in, or None.

    ``"slurm"`` inside an ``srun`` step of several tasks, ``"openmpi"`` under ``mpirun``
    with several ranks, ``"tpu"`` on a Cloud TPU VM (where jax asks the metadata server
    how many hosts the slice has; one host is then a single process). Reads only the
    environment: cheap, and it never starts JAX.
    """
    env = os.environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(v in env for v in slurm) and _int_env("SLURM_NTASKS") > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and _int_env("OMPI_COMM_WORLD_SIZE") > 1:
        return "openmpi"
    if _on_cloud_tpu():
        return "tpu"
    return None


def _int_env(name: str) -> int:
    try:
        return int(os.environ.get(name, "1"))
    except ValueError:
        return 1


def _on_cloud_tpu() -> bool:
    """True on a Cloud TPU VM (jax's own flag, set when it imports; libtpu as a fallback)."""
    try:
        from jax._src import cloud_tpu_init

        return bool(cloud_tpu_init.running_in_cloud_tpu_vm)
    except (ImportError, AttributeError):
        return importlib.util.find_spec("libtpu") is not None


def _from_environment() -> dict[str, Any]:
    """The options given by environment variables (only those that are set)."""
    found: dict[str, Any] = {}
    for key, name, parse in (
        ("coordinator", COORDINATOR_ENV, str),
        ("num_processes", NUM_PROCESSES_ENV, int),
        ("process_id", PROCESS_ID_ENV, int),
    ):
        text = os.environ.get(name, "").strip()
        if text:
            try:
                found[key] = parse(text)
            except ValueError as e:
                raise ValueError(
                    f"environment variable {name} must be an integer, got {text!r}"
                ) from e
    return found


def _check_options(coordinator: str | None, num_processes: int | None, process_id: int | None):
    """Raises ValueError naming the option that is malformed or contradicts another."""
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num_processes must be >= 1, got {num_processes}")
    if process_id is not None and process_id < 0:
        raise ValueError(f"--process_id must be >= 0, got {process_id}")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(
            f"--process_id {process_id} must be below --num_processes {num_processes} "
            f"(processes are numbered 0 .. {num_processes - 1})"
        )
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"--coordinator must be HOST:PORT (process 0's address and a free port), "
                f"got {coordinator!r}"
            )


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **kwargs: Any,
) -> bool:
    """Joins this process to a multi-process run (`jax.distributed.initialize`), if it is in one.

    Call it first, before anything touches a device (`jax.devices()`, an array). In order:

    1. explicit arguments (``--coordinator``, ``--num_processes``, ``--process_id``);
    2. else the environment variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
       ``JAX_PROCESS_ID``;
    3. else, in a cluster of several processes (`cluster_environment`: SLURM, Open MPI,
       Cloud TPU), jax detects all three (options given in 1 or 2 then override its
       choice, such as a coordinator port);
    4. else this is a single process and nothing happens (no device is touched).

    Outside a cluster all three options are needed; ``num_processes == 1`` is a single
    process. Calling it again is a no-op, and an error if the options contradict the
    running setup.

    Args:
      coordinator: ``HOST:PORT`` of process 0, where it serves the coordination service
        (the same on every process).
      num_processes: how many processes take part.
      process_id: this process's number, 0 .. num_processes - 1.
      **kwargs: passed on to `jax.distributed.initialize` (``local_device_ids``,
        ``initialization_timeout``, ...).

    Returns:
      True when this process is part of a multi-process run (the distributed runtime is
      up), False for a single process.

    Raises:
      ValueError: options that are incomplete outside a cluster, malformed, or that
        contradict each other or an earlier call; each message names the option.
      RuntimeError: called after JAX already started its devices.
    """
    global _initialized_with
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        given = _from_environment()
    _check_options(given.get("coordinator"), given.get("num_processes"), given.get("process_id"))

    if jax.distributed.is_initialized():
        running = {
            "coordinator": (_initialized_with or {}).get("coordinator"),
            "num_processes": jax.process_count(),
            "process_id": jax.process_index(),
        }
        clash = {
            k: (v, running[k])
            for k, v in given.items()
            if running[k] is not None and v != running[k]
        }
        if clash:
            text = ", ".join(f"--{k} {v!r} (running: {r!r})" for k, (v, r) in clash.items())
            raise ValueError(f"jax.distributed is already initialized differently: {text}")
        return True

    if given.get("num_processes") == 1:
        return False  # One process needs no coordinator.
    cluster = cluster_environment()
    if cluster is None:
        if not given:
            return False
        missing = [
            f"--{k}" for k in ("coordinator", "num_processes", "process_id") if k not in given
        ]
        if missing:
            have = " ".join(f"--{k} {v}" for k, v in given.items())
            raise ValueError(
                f"{have} needs {' and '.join(missing)} as well: outside a cluster that jax "
                "detects (SLURM, Open MPI, Cloud TPU) every process must be given all three "
                f"(or {COORDINATOR_ENV}, {NUM_PROCESSES_ENV}, {PROCESS_ID_ENV})"
            )
    try:
        jax.distributed.initialize(
            coordinator_address=given.get("coordinator"),
            num_processes=given.get("num_processes"),
            process_id=given.get("process_id"),
            **kwargs,
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"gen_jax.parallel.initialize must run before anything uses JAX's devices: {e}"
        ) from e
    _initialized_with = {**given, "cluster": cluster}
    return True


def add_distributed_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--coordinator``, ``--num_processes`` and ``--process_id`` to `parser`.

    All default to None: unset options come from the environment or the cluster
    (`initialize`). Returns the parser.
    """
    group = parser.add_argument_group(
        "many processes",
        "only for a run over several processes or hosts; SLURM, Open MPI and Cloud TPU "
        f"are detected, or set {COORDINATOR_ENV}, {NUM_PROCESSES_ENV}, {PROCESS_ID_ENV}",
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="process 0's address and a free port",
    )
    group.add_argument(
        "--num_processes", type=int, metavar="N", default=None, help="processes in all"
    )
    group.add_argument(
        "--process_id", type=int, metavar="I", default=None, help="this process, 0 .. N-1"
    )
    return parser


def initialize_from_args(args: argparse.Namespace) -> bool:
    """`initialize` with the options `add_distributed_arguments` parsed."""
    return initialize(
        getattr(args, "coordinator", None),
        getattr(args, "num_processes", None),
        getattr(args, "process_id", None),
    )


def is_primary() -> bool:
    """True on process 0, the one that writes logs, pictures and JSON (always on one process)."""
    return jax.process_index() == 0


def on_primary(fn: Callable[[], T], what: str = "a step on process 0") -> T | None:
    """Calls `fn` on process 0 only; every process raises if it raised there.

    The others wait for it (one tiny collective), so what `fn` writes (a folder, a config
    file) is in place when they go on, and a refusal stops every process, not just one.
    Returns `fn`'s result on process 0, None on the others.

    Raises:
      RuntimeError: on the other processes, when `fn` raised on process 0 (which raises
        the original exception).
    """
    if jax.process_count() == 1:
        return fn()
    result, error = None, None
    if is_primary():
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 (re-raised below, once every process knows)
            error = e
    from jax.experimental import multihost_utils

    ok = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if error is not None:
        raise error
    if not ok:
        raise RuntimeError(f"process 0 failed in {what}; its output names the error")
    return result


def process_shard(
    n: int, process_index: int | None = None, process_count: int | None = None
) -> slice:
    """The rows ``[start, stop)`` of `n` that this process loads: contiguous, in process order.

    Balanced: the first ``n % process_count`` processes get one row more. With a batch
    size that divides by the number of devices (which `run_training` requires), every
    process gets the same number of rows, and process p's rows are the ones its devices
    hold of the global batch (the mesh orders devices by process), so
    ``global_batch_from_process_local(x[process_shard(len(x))], mesh)`` equals
    ``shard_batch(x, mesh)``.

    Args:
      n: the number of rows (examples of a dataset, or a global batch size).
      process_index, process_count: default to this run's.
    """
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if not 0 <= index < count:
        raise ValueError(f"process_index {index} must be in 0 .. {count - 1}")
    base, extra = divmod(int(n), count)
    start = index * base + min(index, extra)
    return slice(start, start + base + (index < extra))


# --- Meshes and shardings ------------------------------------------------------------------


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named 'data' over `devices` (all devices of all processes by default).

    With several processes the devices are ordered by process (a stable sort, so each
    process's devices keep jax's order), so each process holds a contiguous block of
    the batch.
    """
    devices = jax.devices() if devices is None else list(devices)
    if len({d.process_index for d in devices}) > 1:
        devices = sorted(devices, key=lambda d: d.process_index)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device (state, small datasets)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sharding that splits axis `batch_axis` across the 'data' axis of the mesh."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def _spans_processes(mesh: Mesh) -> bool:
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def _host_value(x: Any) -> np.ndarray:
    """A leaf as a numpy array this process holds (jax's dtype rules for Python scalars)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            raise ValueError(
                f"an array of shape {x.shape} sharded as {x.sharding} is not held whole by "
                "this process; pass the full value (or gather it first)"
            )
        return np.asarray(x.addressable_data(0))
    value = np.asarray(x)
    return value.astype(jax.dtypes.canonicalize_dtype(value.dtype), copy=False)


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """`x`, held in full by this process, as a global array of `sharding` (any process count)."""
    if _is_key(x):
        data = _place(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    value = _host_value(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _leaf_paths(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _check_same_on_every_process(tree: Any, what: str) -> None:
    """Raises ValueError naming the leaves whose values differ between processes.

    Compares a CRC-32 of each leaf's bytes (one small gather), not the data itself.
    """
    from jax.experimental import multihost_utils

    def crc(x):
        if _is_key(x):
            x = jax.random.key_data(x)
        value = np.ascontiguousarray(_host_value(x))
        return zlib.crc32(
            value.tobytes(), zlib.crc32(repr((value.shape, value.dtype.str)).encode())
        )

    leaves = jax.tree.leaves(tree)
    if not leaves:
        return
    mine = np.asarray([crc(x) for x in leaves], np.uint32)
    every = np.asarray(multihost_utils.process_allgather(mine))  # [processes, leaves]
    differ = np.flatnonzero((every != every[:1]).any(axis=0))
    if differ.size:
        paths = _leaf_paths(tree)
        names = ", ".join(paths[i] or "<root>" for i in differ[:8])
        raise ValueError(
            f"{what} differs between processes at {names}{' ...' if differ.size > 8 else ''}: "
            "every process must hold the same values (same seed, same data files, same "
            "checkpoint)"
        )


def replicate(tree: Any, mesh: Mesh, *, check: bool = True) -> Any:
    """Places every array leaf of `tree` on all devices of `mesh`.

    Every process must hold the whole `tree` (a state it initialised from the same seed
    or restored from the same checkpoint, a small dataset it loaded in full). On a mesh
    that spans several processes the leaves may be numpy arrays or arrays on any of this
    process's devices, and with `check` the processes first compare a checksum of every
    leaf, so a run whose processes disagree (another seed, another data file) stops here
    instead of training a model whose copies differ.

    Raises:
      ValueError: with `check`, a leaf differs between processes (the message names it).
    """
    if not _spans_processes(mesh):
        return jax.device_put(tree, replicated(mesh))
    if check:
        _check_same_on_every_process(tree, "the replicated tree")
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: _place(x, sharding), tree)


def _check_divisible(shape: tuple[int, ...], batch_axis: int, n: int, what: str) -> None:
    if shape[batch_axis] % n:
        raise ValueError(
            f"batch axis {batch_axis} of an array of shape {shape} is not divisible by the "
            f"{n} {what}"
        )


def shard_batch(tree: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Splits every array leaf of `tree` along `batch_axis` across the mesh.

    Every process holds the whole batch (on several processes each keeps its own rows).

    Raises:
      ValueError: if a leaf's batch dimension is not divisible by the number of devices.
    """
    n = mesh.shape[DATA_AXIS]
    sharding = batch_sharding(mesh, batch_axis)
    spans = _spans_processes(mesh)

    def put(x):
        _check_divisible(x.shape, batch_axis, n, "devices of the mesh")
        return _place(x, sharding) if spans else jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


def global_batch_from_process_local(tree: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Assembles a batch sharded over the whole mesh from the rows each process loaded.

    Each process passes its own rows (``process_shard(global_batch_size)`` of them, the
    same number on every process) along `batch_axis`; the result is one global array
    per leaf, its batch axis `process_count` times as long, split over the mesh as
    `shard_batch` splits it. On a single process it is `shard_batch`.
    (`jax.make_array_from_process_local_data`.)

    Raises:
      ValueError: a leaf's local batch does not divide over this process's devices.
    """
    sharding = batch_sharding(mesh, batch_axis)
    mine = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    if not mine:
        raise ValueError("the mesh holds none of this process's devices")
    factor = mesh.devices.size // len(mine)

    def put(x):
        value = _host_value(x)
        _check_divisible(value.shape, batch_axis, len(mine), "devices of this process")
        shape = list(value.shape)
        shape[batch_axis] *= factor
        return jax.make_array_from_process_local_data(sharding, value, tuple(shape))

    return jax.tree.map(put, tree)


def to_host(tree: Any) -> Any:
    """Fetches `tree` to numpy on every process (replicated leaves locally, others gathered)."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree.map(fetch, tree)


def constrain_batch(tree: Any, mesh: Mesh | None, batch_axis: int = 0) -> Any:
    """Inside jit: asks XLA to shard `tree` along `batch_axis` (no-op without a mesh)."""
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, batch_sharding(mesh, batch_axis))
