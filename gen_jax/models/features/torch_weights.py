"""Reads PyTorch checkpoint files (`torch.save`) into numpy arrays, without PyTorch.

Two container formats are read:

  * zip (the default of `torch.save` since PyTorch 1.6): one folder `<prefix>/` holding
    `data.pkl` (the pickled object), `data/<key>` (one raw storage per key, no header) and
    `byteorder` ("little" or "big"; absent means little);
  * legacy (`_use_new_zipfile_serialization=False`, and every file written before 1.6,
    e.g. pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`): consecutive pickles of the
    magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys-info dict, the
    object, and the sorted list of storage keys; then, for each key in that order, an
    int64 little-endian element count followed by the storage's little-endian bytes.

In both, a tensor is pickled as a call `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)` (or `_v3`, which adds the dtype) whose storage is a persistent id
`('storage', StorageType, key, location, numel[, view_metadata])`. Here the storage is
read as raw bytes and the tensor rebuilt with `numpy.lib.stride_tricks.as_strided`, then
copied out in native byte order, so views (transposes, slices) come back as plain arrays.

Safety: the unpickler resolves only the names a tensor checkpoint needs (the rebuild
helpers, storage and dtype names, `collections.OrderedDict`); any other global (a class,
`os.system`, ...) raises `TorchCheckpointError` before anything is called, so loading a
file never runs code from it. Each load gets its own stand-ins for those names, so a
pickle's BUILD (attribute setting) can change nothing that outlives the load. Checkpoints
that pickle other objects (an `argparse.Namespace` beside the weights, a whole
`nn.Module`) are refused: re-save them with `torch.save(model.state_dict(), path)`.

Damaged files: whatever a file holds, reading it returns the object or raises
`TorchCheckpointError` naming the file (or `FileNotFoundError`); sizes declared in a file
are checked against the bytes it has before anything of that size is allocated, and a
tensor whose overlapping strides (`expand`) would copy out more bytes than both its storage
and `_MAX_EXPANDED_BYTES` (1 GiB) hold is refused rather than materialised.

Command line: `python -m gen_jax.models.features.torch_weights IN.pth OUT.npz` converts a
checkpoint's state dict to an `.npz` that `numpy.load` reads directly.
"""

from __future__ import annotations

import argparse
import collections
import errno
import functools
import io
import math
import os
import pickle
import pickletools
import struct
import sys
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "STATE_DICT_WRAPPER_KEYS",
    "StateDictMismatchError",
    "TorchCheckpointError",
    "check_state_dict_shapes",
    "load_torch_checkpoint",
    "load_torch_state_dict",
    "load_weight_file",
    "main",
    "save_npz_state_dict",
]

# Checked in this order by `load_torch_state_dict` when the top-level object is a dict that
# is not itself a state dict (training checkpoints: {"epoch": .., "state_dict": ..}).
STATE_DICT_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# A tensor may be larger than its storage only through overlapping (e.g. zero) strides; its
# copy is refused past this size, so a damaged size cannot ask for terabytes.
_MAX_EXPANDED_BYTES = 1 << 30

# What reading a damaged pickle or archive raises (beyond our own checks): bad opcodes, a
# short stream, wrong argument counts or types for the rebuild helpers, a missing memo
# entry, and from zipfile bad headers (OSError, BadZipFile, UnicodeDecodeError in a name),
# "encrypted" entries from a flipped flag bit (RuntimeError), unknown compression methods
# (NotImplementedError), damaged deflate streams (zlib.error) and cut ones (EOFError), and
# from numpy a mangled .npy header in an .npz (ValueError, TypeError, tokenize.TokenError).
_DAMAGED = (
    pickle.UnpicklingError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OSError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    tokenize.TokenError,
)

# Legacy typed-storage classes (the storage type in a persistent id) -> element dtype.
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
    # Untyped storages (dtypes without a legacy class, with `_rebuild_tensor_v3`) count bytes.
    "UntypedStorage": np.dtype(np.uint8),
}

# `torch.<dtype>` globals (pickled by name, the dtype argument of `_rebuild_tensor_v3`).
_TORCH_DTYPES = {
    "float64": np.float64,
    "double": np.float64,
    "float32": np.float32,
    "float": np.float32,
    "float16": np.float16,
    "half": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "int64": np.int64,
    "long": np.int64,
    "int32": np.int32,
    "int": np.int32,
    "int16": np.int16,
    "short": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "complex64": np.complex64,
    "complex128": np.complex128,
}


class TorchCheckpointError(ValueError):
    """A file is not a readable PyTorch checkpoint, or holds more than tensors and containers."""


class StateDictMismatchError(ValueError):
    """A state dict's names or shapes are not those a model expects."""


class _StorageType:
    """Stands in for a `torch.<X>Storage` class: only its element dtype matters."""

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, dtype


class _DType:
    """Stands in for a `torch.<dtype>` object."""

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, np.dtype(dtype)


class _Storage:
    """A storage's raw bytes (uint8, possibly still unread) and its declared element dtype."""

    def __init__(self, raw: np.ndarray | None, dtype: np.dtype):
        self.raw, self.dtype = raw, dtype


class _TensorType:
    """Stands in for `torch.Tensor` / `torch.nn.Parameter` as the type argument of a rebuild.

    An instance without attributes (one per load): a pickle can neither call it nor set
    anything on it.
    """

    __slots__ = ()


def _fresh(fn) -> Any:
    """A new callable object for `fn`, so that a pickle's BUILD on it changes only this copy."""
    return functools.partial(fn)


def _find_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "checkpoint file not found", str(path))
    return path


def _swap_view(raw: np.ndarray, dtype: np.dtype, big_endian: bool) -> np.ndarray:
    """Views raw bytes as `dtype`, in native order (copying only when bytes must be swapped)."""
    if not big_endian or dtype.itemsize == 1:
        return raw.view(dtype)
    if dtype.kind in "biufc":
        return raw.view(dtype.newbyteorder(">")).astype(dtype)
    # ml_dtypes (bfloat16, float8) have no byte-order variants: swap as unsigned integers.
    return raw.view(f">u{dtype.itemsize}").astype(f"=u{dtype.itemsize}").view(dtype)


class _Unpickler(pickle.Unpickler):
    """An unpickler that knows only tensors, storages and OrderedDict.

    `storage_loader(dtype, key, numel, view_metadata)` returns the `_Storage` for a
    persistent id. When `big_endian`, storages hold big-endian values.
    """

    def __init__(self, file, source: str, storage_loader, big_endian: bool = False):
        super().__init__(file)
        self._file = file
        self._source, self._storage_loader, self._big_endian = source, storage_loader, big_endian
        self._tensor_type = _TensorType()
        # Everything here is either an immutable builtin type (OrderedDict, tuple) or made
        # for this load alone: BUILD can set attributes on objects it finds here, and that
        # must not reach the module's own functions and classes.
        self._allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _fresh(self._rebuild_tensor_v2),
            ("torch._utils", "_rebuild_tensor_v3"): _fresh(self._rebuild_tensor_v3),
            ("torch._utils", "_rebuild_parameter"): _fresh(_rebuild_parameter),
            ("torch._utils", "_rebuild_parameter_with_state"): _fresh(_rebuild_parameter),
            ("torch._tensor", "_rebuild_from_type_v2"): _fresh(self._rebuild_from_type_v2),
            ("torch", "Tensor"): self._tensor_type,
            ("torch.nn.parameter", "Parameter"): self._tensor_type,
            ("torch", "Size"): tuple,
            ("torch.storage", "UntypedStorage"): _StorageType(
                "UntypedStorage", _STORAGE_DTYPES["UntypedStorage"]
            ),
        }
        for name, dtype in _STORAGE_DTYPES.items():
            self._allowed["torch", name] = _StorageType(name, dtype)
        for name, dtype in _TORCH_DTYPES.items():
            self._allowed["torch", name] = _DType(name, dtype)

    def load(self) -> Any:
        # Checked first because the C unpickler trusts them: a damaged memo index makes it
        # allocate a memo table of that size (gigabytes) before failing.
        start = self._file.tell()
        # A damaged protocol-0 string warns ("invalid escape sequence"): with warnings as
        # errors that would escape as DeprecationWarning instead of a damaged-file error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _check_pickle_ops(self._file, self._source)
            self._file.seek(start)
            return super().load()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[module, name]
        except KeyError:
            hint = ""
            if module.startswith("__torch__"):
                hint = " (a TorchScript archive? save the module's state_dict() instead)"
            raise TorchCheckpointError(
                f"{self._source}: refusing to load the global {module}.{name}: this loader "
                "accepts only tensors, numbers, strings and containers and never runs code "
                "from a checkpoint; re-save the weights with "
                f"torch.save(model.state_dict(), path){hint}"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise TorchCheckpointError(
                f"{self._source}: expected storage references ('storage', type, key, location, "
                f"numel), found the persistent id {pid!r}"
            )
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        view_metadata = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise TorchCheckpointError(
                f"{self._source}: storage {key} has type {storage_type!r}; expected a "
                "torch.<X>Storage class"
            )
        if not isinstance(numel, int) or numel < 0:
            raise TorchCheckpointError(
                f"{self._source}: storage {key} has size {numel!r}; expected an int >= 0"
            )
        return self._storage_loader(storage_type.dtype, key, numel, view_metadata)

    def _rebuild_from_type_v2(self, func, new_type, args, state) -> Any:
        # Tensor subclasses (Parameter) come back as plain arrays; `state` is their __dict__.
        if new_type is not self._tensor_type:
            raise TorchCheckpointError(
                f"{self._source}: expected a torch.Tensor subclass, found {new_type!r}"
            )
        return func(*args)

    def _rebuild_tensor_v2(
        self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
    ) -> np.ndarray | None:
        return self._rebuild(storage, storage_offset, size, stride, None)

    def _rebuild_tensor_v3(
        self,
        storage,
        storage_offset,
        size,
        stride,
        requires_grad,
        backward_hooks,
        dtype,
        metadata=None,
    ) -> np.ndarray | None:
        if not isinstance(dtype, _DType):
            raise TorchCheckpointError(f"{self._source}: expected a torch dtype, found {dtype!r}")
        return self._rebuild(storage, storage_offset, size, stride, dtype.dtype)

    def _rebuild(self, storage, offset, size, stride, dtype) -> np.ndarray | None:
        if not isinstance(storage, _Storage):
            raise TorchCheckpointError(
                f"{self._source}: expected a tensor's storage, found {type(storage).__name__}"
            )
        if storage.raw is None:  # First pass over a legacy file: storages not read yet.
            return None
        dtype = storage.dtype if dtype is None else dtype
        size, stride = tuple(size), tuple(stride)
        bad = (
            len(size) != len(stride)
            or not all(isinstance(v, int) for v in (offset, *size, *stride))
            or offset < 0
            or min(size + stride, default=0) < 0
        )
        if bad:
            raise TorchCheckpointError(
                f"{self._source}: bad tensor layout: offset {offset!r}, size {size!r}, stride "
                f"{stride!r}; expected non-negative ints and as many strides as dimensions"
            )
        n_elements = storage.raw.size // dtype.itemsize
        if math.prod(size) == 0:
            return np.zeros(size, dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= n_elements:
            raise TorchCheckpointError(
                f"{self._source}: a tensor of size {size}, stride {stride} at offset {offset} "
                f"reaches element {last} of a storage of {n_elements} {dtype} elements"
            )
        nbytes = math.prod(size) * dtype.itemsize
        if nbytes > max(storage.raw.size, _MAX_EXPANDED_BYTES):
            raise TorchCheckpointError(
                f"{self._source}: a tensor of size {size}, stride {stride} would expand a "
                f"storage of {storage.raw.size} bytes to {nbytes} bytes; refusing to copy it "
                f"(more than {_MAX_EXPANDED_BYTES} bytes: a damaged size?)"
            )
        flat = _swap_view(storage.raw[: n_elements * dtype.itemsize], dtype, self._big_endian)
        view = np.lib.stride_tricks.as_strided(
            flat[offset:],
            shape=size,
            strides=tuple(s * dtype.itemsize for s in stride),
            writeable=False,
        )
        # Copy: the result must not alias the (shared, read-only) storage bytes.
        return np.array(view, copy=True, order="C")


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def _check_pickle_ops(f, source: str) -> None:
    """Reads one pickle's opcodes without running them; refuses memo indices past the count.

    Writers number memo entries from 0 in order, so a valid index is below the number of
    opcodes read so far.
    """
    try:
        for n, (op, arg, _) in enumerate(pickletools.genops(f)):
            if op.name in _MEMO_OPS and not 0 <= int(arg) <= n:
                raise TorchCheckpointError(
                    f"{source}: corrupt pickle: memo index {arg} at opcode {n} ({op.name})"
                )
    except ValueError as e:  # genops: unknown opcode, truncated argument, no STOP
        if isinstance(e, TorchCheckpointError):
            raise
        raise TorchCheckpointError(f"{source}: corrupt pickle: {e}") from e


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    return data


def _read_zip(path: Path, archive: zipfile.ZipFile) -> Any:
    names = archive.namelist()
    pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise TorchCheckpointError(
            f"{path}: expected a torch.save zip archive with one '<prefix>/data.pkl', found "
            f"{len(pickles)} among {len(names)} entries"
            + (
                " (this looks like a NumPy .npz file)"
                if names and names[0].endswith(".npy")
                else ""
            )
        )
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "constants.pkl" in names:
        raise TorchCheckpointError(
            f"{path}: this is a TorchScript archive (torch.jit.save); expected a torch.save "
            "checkpoint: save the module's state_dict() with torch.save"
        )
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise TorchCheckpointError(
                f"{path}: byteorder record is {byteorder!r}; expected 'little' or 'big'"
            )
    storages: dict[str, np.ndarray] = {}

    def load_storage(dtype: np.dtype, key: str, numel: int, view_metadata) -> _Storage:
        if key not in storages:
            record = f"{prefix}data/{key}"
            try:
                info = archive.getinfo(record)
            except KeyError:
                raise TorchCheckpointError(
                    f"{path}: the pickle refers to storage {key!r} but the archive has no "
                    f"'{record}'"
                ) from None
            nbytes = numel * dtype.itemsize
            # The declared size first, so a damaged numel allocates nothing; then only the
            # bytes the storage needs.
            if info.file_size >= nbytes:
                with archive.open(info) as f:
                    data = f.read(nbytes)
            if info.file_size < nbytes or len(data) < nbytes:
                raise TorchCheckpointError(
                    f"{path}: '{record}' holds {info.file_size} bytes; expected {numel} x "
                    f"{dtype.itemsize} = {nbytes}"
                )
            storages[key] = np.frombuffer(data, np.uint8, nbytes)
        return _Storage(storages[key], dtype)

    f = io.BytesIO(archive.read(pickles[0]))
    return _Unpickler(f, str(path), load_storage, byteorder == "big").load()


def _read_legacy(path: Path, f) -> Any:
    def header(what: str, check) -> Any:
        # The headers are plain ints and dicts: the restricted unpickler reads them too.
        value = _Unpickler(f, str(path), _no_storages(path)).load()
        if not check(value):
            raise TorchCheckpointError(
                f"{path}: not a PyTorch checkpoint: bad legacy {what} {value!r}"
            )
        return value

    header("magic number", lambda v: v == _LEGACY_MAGIC)
    header("protocol version", lambda v: v == _LEGACY_PROTOCOL)
    sys_info = header("sys info", lambda v: isinstance(v, dict))
    if not sys_info.get("little_endian", True):
        # No such file to test against: refuse rather than guess the storages' byte order.
        raise TorchCheckpointError(f"{path}: legacy checkpoint written big-endian: unsupported")

    # Pass 1: the object pickle, recording each storage's dtype and size; tensors are not
    # built because their bytes come after the pickle.
    object_start = f.tell()
    wanted: dict[str, tuple[np.dtype, int]] = {}

    def record(dtype, key, numel, view_metadata) -> _Storage:
        wanted.setdefault(key, (dtype, numel))
        return _Storage(None, dtype)

    _Unpickler(f, str(path), record).load()
    keys = _Unpickler(f, str(path), _no_storages(path)).load()
    if not (isinstance(keys, list) and set(map(str, keys)) == set(wanted)):
        raise TorchCheckpointError(
            f"{path}: the legacy storage key list does not match the storages the object uses"
        )
    raw: dict[str, np.ndarray] = {}
    keys_end = f.tell()
    size = f.seek(0, io.SEEK_END)
    f.seek(keys_end)
    for key in keys:
        dtype, numel = wanted[str(key)]
        count = f.read(8)
        nbytes = numel * dtype.itemsize
        # Compared with what is left first: a damaged numel must not become a huge read.
        data = f.read(nbytes) if nbytes <= size - f.tell() else b""
        if len(count) < 8 or struct.unpack("<q", count)[0] != numel or len(data) < nbytes:
            raise TorchCheckpointError(
                f"{path}: truncated or inconsistent legacy storage {key!r}: expected {numel} "
                f"elements of {dtype}"
            )
        raw[str(key)] = np.frombuffer(data, np.uint8)

    def load_storage(dtype, key, numel, view_metadata) -> _Storage:
        data = raw[key]
        if view_metadata is not None:  # (view_key, offset, size): pre-1.0 storage views.
            _, offset, view_size = view_metadata
            data = data[offset * dtype.itemsize : (offset + view_size) * dtype.itemsize]
        return _Storage(data, dtype)

    # Pass 2: the object again, now with every storage in memory.
    f.seek(object_start)
    return _Unpickler(f, str(path), load_storage).load()


def _no_storages(path: Path):
    """A storage loader for pickles that must hold none (the legacy headers and key list)."""

    def refuse(dtype, key, numel, view_metadata):
        raise TorchCheckpointError(
            f"{path}: unexpected storage reference {key!r} in a legacy header or key list"
        )

    return refuse


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Reads a whole `torch.save` file, tensors as numpy arrays, without importing torch.

    Args:
      path: a file written by `torch.save`, zip (PyTorch >= 1.6) or legacy format.

    Returns:
      The saved object with every tensor (and `nn.Parameter`) replaced by a C-contiguous
      numpy array of its size and dtype in native byte order (bfloat16 and float8 as
      `ml_dtypes` types); dicts, lists, tuples, numbers and strings as they were.

    Raises:
      FileNotFoundError: `path` does not exist.
      TorchCheckpointError: not a checkpoint, corrupt, or it pickles anything but tensors,
        storages and plain containers. The message names `path`.
    """
    path = _find_file(path)
    try:
        with open(path, "rb") as f:
            is_legacy = f.read(1) == b"\x80"
        # A legacy file is a pickle (byte 80 first); only then can it not be a zip whose
        # end record happens to appear in the storage bytes.
        if not is_legacy and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_zip(path, archive)
        if not is_legacy:
            raise TorchCheckpointError(
                f"{path}: not a PyTorch checkpoint: expected a zip archive written by "
                "torch.save or a legacy file starting with a binary pickle (byte 80)"
            )
        # From memory: a damaged size field then cannot make a read allocate more than the
        # file holds.
        return _read_legacy(path, io.BytesIO(path.read_bytes()))
    except TorchCheckpointError:
        raise
    except _DAMAGED as e:
        raise TorchCheckpointError(f"{path}: corrupt PyTorch checkpoint: {e}") from e


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    )


def load_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads the state dict of a PyTorch checkpoint as numpy arrays, without importing torch.

    Which dict is the state dict: the saved object itself when it is a non-empty dict of
    str -> tensor; otherwise, for a dict, its first entry among `STATE_DICT_WRAPPER_KEYS`
    ("state_dict", "model_state_dict", "model"), by the same rule, recursively. When every
    name starts with "module." (a model saved from `nn.DataParallel`), that prefix is
    removed.

    Args:
      path: a file written by `torch.save`, zip (PyTorch >= 1.6) or legacy format.

    Returns:
      {name: array} in the file's order, arrays as in `load_torch_checkpoint` (a scalar
      tensor is a 0-d array).

    Raises:
      FileNotFoundError: `path` does not exist.
      TorchCheckpointError: as `load_torch_checkpoint`, or no state dict found by the rule
        above. The message names `path`.
    """
    obj = load_torch_checkpoint(path)
    trail = []
    while not _is_state_dict(obj):
        key = None
        if isinstance(obj, Mapping):
            key = next((k for k in STATE_DICT_WRAPPER_KEYS if k in obj), None)
        if key is None:
            if isinstance(obj, Mapping):
                found = "a dict with keys " + repr(list(obj)[:10])
                non_tensor = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
                if obj and len(non_tensor) < len(obj):
                    found += f" of which {non_tensor[:5]!r} are not tensors"
            else:
                found = type(obj).__name__
            where = "".join(f"[{k!r}]" for k in trail)
            raise TorchCheckpointError(
                f"{path}: expected a state dict (a dict of name -> tensor), or a dict holding "
                f"one under one of {STATE_DICT_WRAPPER_KEYS}; found at object{where} {found}"
            )
        trail.append(key)
        obj = obj[key]
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _is_npz(path: Path) -> bool:
    with open(path, "rb") as f:
        starts_like_a_zip = f.read(4) == b"PK\x03\x04"  # as np.savez writes them
    if not starts_like_a_zip or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return bool(names) and all(n.endswith(".npy") for n in names)


def load_weight_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a state dict from a PyTorch checkpoint or from its `.npz` conversion.

    Args:
      path: a `torch.save` file (read by `load_torch_state_dict`) or an `.npz` written by
        `save_npz_state_dict` / the command line. Told apart by content, not name.

    Returns:
      {name: array}.

    Raises:
      FileNotFoundError: `path` does not exist.
      TorchCheckpointError: neither format, or corrupt. The message names `path`.
    """
    path = _find_file(path)
    try:
        is_npz = _is_npz(path)
    except _DAMAGED as e:  # A zip end record, but a damaged directory.
        raise TorchCheckpointError(f"{path}: corrupt zip archive: {e}") from e
    if not is_npz:
        return load_torch_state_dict(path)
    try:
        # Arrays are read (and their CRCs checked) inside: NpzFile reads lazily.
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except MemoryError as e:  # numpy allocates the declared shape before reading
        raise TorchCheckpointError(
            f"{path}: an array header declares more than fits in memory (damaged?): {e}"
        ) from e
    except _DAMAGED as e:
        raise TorchCheckpointError(f"{path}: corrupt .npz weight file: {e}") from e


def save_npz_state_dict(state_dict: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes a state dict as an uncompressed `.npz` (one array per name), at exactly `path`.

    bfloat16 and float8 arrays are widened to float32: `.npz` files cannot name those dtypes
    (NumPy would write them as raw bytes that `numpy.load` cannot interpret).

    Args:
      state_dict: {name: array-like}, e.g. from `load_torch_state_dict`.
      path: the output file; no ".npz" suffix is added.

    Raises:
      TypeError: a name is not a str.
    """
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"state_dict names must be str, found {name!r}")
        value = np.asarray(value)
        if value.dtype.kind == "V" or type(value.dtype).__module__.startswith("ml_dtypes"):
            value = value.astype(np.float32)
        arrays[name] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def check_state_dict_shapes(
    state_dict: Mapping[str, Any],
    expected: Mapping[str, Sequence[int]],
    *,
    source: str = "state dict",
    ignore_suffixes: Sequence[str] = (),
) -> None:
    """Checks that a state dict has exactly the expected names and shapes.

    Args:
      state_dict: {name: array}.
      expected: {name: shape} of the model.
      source: what to call the state dict in the message (normally the file path).
      ignore_suffixes: names ending with one of these are allowed beside the expected ones
        (e.g. "num_batches_tracked").

    Raises:
      StateDictMismatchError: one message naming every missing, unexpected and mis-shaped
        key (the first few of each, with counts).
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [
        k for k in state_dict if k not in expected and not k.endswith(tuple(ignore_suffixes))
    ]
    misshaped = [
        f"{k}: expected {tuple(expected[k])}, found {tuple(np.shape(state_dict[k]))}"
        for k in expected
        if k in state_dict and tuple(np.shape(state_dict[k])) != tuple(expected[k])
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            problems.append(f"{len(items)} {label} keys: {', '.join(items[:8])}")
            problems[-1] += ", ..." if len(items) > 8 else ""
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped: " + "; ".join(misshaped[:8]))
    if problems:
        raise StateDictMismatchError(
            f"{source}: the weights do not match the model ({len(expected)} expected tensors): "
            + " | ".join(problems)
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: converts a PyTorch checkpoint's state dict to `.npz`."""
    parser = argparse.ArgumentParser(
        prog="python -m gen_jax.models.features.torch_weights",
        description="Convert a PyTorch checkpoint (torch.save) to .npz, without PyTorch.",
    )
    parser.add_argument("input", help="the .pth / .pt file")
    parser.add_argument("output", help="the .npz file to write")
    args = parser.parse_args(argv)
    try:
        state = load_torch_state_dict(args.input)
    except (OSError, TorchCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_npz_state_dict(state, args.output)
    n_values = sum(int(np.size(v)) for v in state.values())
    print(f"{args.input}: {len(state)} tensors, {n_values:,} values -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
