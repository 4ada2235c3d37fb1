"""The measured choice behind ``algorithm="tune"``: a table, filled once per key, savable.

``"auto"`` is a fixed rule (`_plan.fixed_choice`), measured on one machine (a 2-core x86
VM, `python -m benchmarks.vgg_layer_speed`) and applied on the CPU backend only. Which
algorithm is fastest for a shape depends on the machine: the core count, the
matrix-product library, on a GPU cuDNN's convolutions against cuBLAS's batched products.
``"tune"`` measures instead, the way ``torch.backends.cudnn.benchmark`` does: the
candidates are the direct convolution and Winograd F(2x2, 3x3) and F(4x4, 3x3), each
with its batched products in either order (`candidates`).

The table. Every choice is an entry keyed by backend, device kind, input and kernel
shapes, padding, dtype and precision (the convolution's own and
`jax.default_matmul_precision`'s). Every trace of a ``"tune"`` convolution looks its key
up; only a key missing from the table is measured, once, and its entry is kept for the
rest of the process. So within a process the same inputs always compile to the same
program, and a network's preparation (`gen_jax.models.features.prepare`) and its
application agree. `save_tuning` writes the table to a JSON file and `load_tuning` reads
it back: a later process (or another machine of the same device kind) then compiles the
same programs without measuring anything.

Measuring. The first trace that meets a new key runs every candidate on the backend's
first device (under `jax.ensure_compile_time_eval`, while the caller's program is being
traced), timed as VGG runs its layers inside an optimisation loop: the convolution, a
bias and a ReLU, forward and input gradient, in a 2-step `lax.scan`, the Winograd kernel
transforms passed in as arguments (computed once, as VGG's `prepare` hook does). Each
candidate runs once to compile and warm up, then is timed up to `_REPEATS` times; its
best time counts, and one more than twice as slow as the best so far on its first timing
is not timed again. A Winograd candidate that fails to compile or run (say, out of memory
on a small accelerator) is recorded with its error and left out; the direct
convolution's failure is the caller's error, raised. It costs a compile and a few runs
per candidate, seconds per shape on a CPU. `set_tuning_budget` caps the measuring time
of a process: past it, new keys take ``"auto"``'s fixed rule unmeasured (and keep it like
a measured choice). A convolution sharded over devices is tuned at its whole shape on one
device. Only float32 and float64 inputs are tuned; 16-bit floats stay direct, as under
``"auto"`` (Winograd's transforms lose too much there).

The file (`save_tuning`): JSON, ``{"format": "gen_jax.nn.xla_cpu tuning", "version": 1,
"jax_version": ..., "entries": [...]}``, one entry per key, oldest first, with the fields
of `tuning_records` (``choice`` as ``{"tile": 2 | 4 | null, "kernel_first": true | false
| null}``). `load_tuning` checks every entry before it adds any.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax.nn.xla_cpu import _winograd
from gen_jax.nn.xla_cpu._direct import direct_conv
from gen_jax.nn.xla_cpu._plan import DIRECT, Choice, fixed_choice, output_side

# Timed calls per candidate after the compiling one (the best counts).
_REPEATS = 3
# Steps of the scan each timed call runs (where L-BFGS's line search runs its evaluations).
_STEPS = 2
# After its first timing, a candidate this many times slower than the best is dropped.
_PRUNE = 2.0
# How much of a failed candidate's error message is kept in its record.
_ERROR_CHARS = 300
# What a tuning file says it is; `load_tuning` refuses anything else.
_FORMAT = "gen_jax.nn.xla_cpu tuning"
_VERSION = 1
_TUNED_DTYPES = ("float32", "float64")
# An entry's key, in order (the key tuple is these values, hashable).
_KEY_FIELDS = ("backend", "device_kind", "lhs_shape", "rhs_shape", "pads", "dtype", "precision")

# One compiled kernel transform per shape and tile, shared by both product orders.
_winograd_kernels = jax.jit(_winograd.winograd_kernels, static_argnums=1)
_lock = threading.RLock()
# The table: key -> record (see `tuning_records`); insertion order is the records' order.
_table: dict[tuple, dict[str, Any]] = {}
# What measure_s is read from (a test substitutes it).
_clock = time.perf_counter
# The process's cap on measuring time in seconds (None: none); see set_tuning_budget.
_budget_s: float | None = None


def candidates(out_side: int) -> list[Choice]:
    """What ``"tune"`` tries for a convolution whose output is ``out_side`` pixels on its
    shorter side, in this order: the direct convolution, then each Winograd tile no larger
    than the output, in both product orders."""
    found = [DIRECT]
    for tile in _winograd.TILES:
        if tile <= out_side:
            found += [Choice(tile, False), Choice(tile, True)]
    return found


def tuned_choice(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dtype: Any,
    precision: Any = None,
    backend: str | None = None,
) -> Choice:
    """The table's `Choice` for this convolution on ``backend``, measured if it has none.

    Args:
      lhs_shape, rhs_shape: NHWC input and [3, 3, C, K] kernel shapes.
      pads: ((top, bottom), (left, right)), each in 0..2.
      dtype: the input's dtype; other than float32 and float64 gives the direct convolution
        without measuring.
      precision: the convolution's ``precision`` argument.
      backend: the platform to measure on (default `jax.default_backend()`).

    Raises:
      ValueError: a kernel that is not 3x3 or does not match the input's channels, or a
        padding outside 0..2.
    """
    lhs_shape = tuple(int(n) for n in lhs_shape)
    rhs_shape = tuple(int(n) for n in rhs_shape)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if len(lhs_shape) != 4 or rhs_shape[:2] != (3, 3) or rhs_shape[2] != lhs_shape[3]:
        raise ValueError(
            f"tuned_choice: expected an NHWC input and a [3, 3, C, K] kernel with matching C; "
            f"got shapes {lhs_shape} and {rhs_shape}."
        )
    if len(pads) != 2 or not all(0 <= p <= 2 for pair in pads for p in pair):
        raise ValueError(
            f"tuned_choice: padding must be ((top, bottom), (left, right)) in 0..2; got {pads}."
        )
    dtype = jnp.dtype(dtype)
    if dtype.name not in _TUNED_DTYPES:
        return DIRECT
    backend = backend or jax.default_backend()
    device = jax.devices(backend)[0]
    precisions = (repr(precision), str(jax.config.jax_default_matmul_precision))
    key = (backend, device.device_kind, lhs_shape, rhs_shape, pads, dtype.name, precisions)
    with _lock:
        record = _table.get(key)
        if record is not None:
            return record["choice"]
        spent = _spent_s()
        if _budget_s is not None and spent >= _budget_s:
            record = {
                "choice": fixed_choice(lhs_shape, rhs_shape, pads, dtype, "auto", backend),
                "seconds": {},
                "failed": {},
                "deviation": {},
                "skipped": f"the tuning budget of {_budget_s:g} s was spent ({spent:.1f} s)",
                "measure_s": 0.0,
            }
        else:
            t0 = _clock()
            record = _measure(lhs_shape, rhs_shape, pads, dtype, precision, device)
            record["measure_s"] = _clock() - t0
        record.update(zip(_KEY_FIELDS, key))
        _table[key] = record
    return record["choice"]


def _spent_s() -> float:
    """Seconds this process measured for (loaded entries were measured elsewhere)."""
    return sum(r["measure_s"] for r in _table.values() if "loaded_from" not in r)


def tuning_budget() -> float | None:
    """The cap `set_tuning_budget` set (None: none)."""
    return _budget_s


def set_tuning_budget(seconds: float | None) -> None:
    """Caps this process's measuring time (the measured records' ``measure_s`` added up).

    Once the cap is reached, a new key is not measured: it takes ``"auto"``'s fixed rule
    (on GPUs the direct convolution), and its record says so in ``skipped``. The choice is
    kept like a measured one, so a program's preparation and application agree. Keys in
    the table already keep their choices; entries read by `load_tuning` do not count
    against the cap. For jobs with a deadline on a machine whose compiles are slow (each
    candidate compiles once per shape). None (the default) removes the cap.

    Raises:
      ValueError: a negative or non-finite number of seconds.
    """
    global _budget_s
    if seconds is not None:
        seconds = float(seconds)
        if not (np.isfinite(seconds) and seconds >= 0):
            raise ValueError(
                f"set_tuning_budget: seconds must be a finite number >= 0 or None; got {seconds}."
            )
    with _lock:
        _budget_s = seconds


def tuning_records() -> list[dict[str, Any]]:
    """The table, one record per key, oldest first (copies).

    Each has the key's fields (``backend``, ``device_kind``, ``lhs_shape``, ``rhs_shape``,
    ``pads``, ``dtype``, ``precision``: the convolution's and the default matmul
    precision's, as strings), the ``choice`` (a `Choice`), ``seconds`` per scan step of
    each candidate (by `Choice.name`; the best of its timings, a single one for a
    candidate dropped early), ``failed``, the error of each candidate that could not run
    (by name), ``deviation``, each Winograd candidate's `relative_l2` distance from the
    direct convolution's output and input gradient on the timing's inputs (the larger of
    the two), ``measure_s``, what the measurement took, compiles included, ``skipped``, why
    nothing was measured, for keys that came after `set_tuning_budget`'s cap, and
    ``loaded_from``, the file of an entry `load_tuning` read.
    """
    with _lock:
        return [dict(r) for r in _table.values()]


def clear_tuning() -> None:
    """Empties the table: programs traced afterwards measure (or load) again (the budget
    of `set_tuning_budget` stays, and counts from zero again)."""
    with _lock:
        _table.clear()


def save_tuning(path: str | os.PathLike[str]) -> int:
    """Writes the table to ``path`` as JSON (the module docstring's format).

    Args:
      path: the file to write (replaced if it exists; its folder must exist).

    Returns:
      The number of entries written.
    """
    with _lock:
        entries = [_entry_to_json(r) for r in _table.values()]
    document = {
        "format": _FORMAT,
        "version": _VERSION,
        "jax_version": jax.__version__,
        "entries": entries,
    }
    path = Path(path)
    # Written whole, then renamed: a reader never sees half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(partial, path)
    return len(entries)


def load_tuning(path: str | os.PathLike[str]) -> int:
    """Adds the entries of a `save_tuning` file to the table; their keys are not measured.

    Every entry is checked before any is added. An entry whose key the table holds already
    must agree with it (programs traced before would otherwise differ from those traced
    after); `clear_tuning` first to replace the table.

    Args:
      path: a file written by `save_tuning`.

    Returns:
      The number of entries read.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: naming ``path``: not JSON, another format or version, an entry with a
        missing or bad field, an entry that disagrees with the table, or a file whose
        entries were all tuned for devices this process does not have (the backend and
        device kind are part of every key, so they would never be used).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a tuning file (invalid JSON: {e}).") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise ValueError(
            f"{path}: not a tuning file: expected a JSON object with "
            f"format {_FORMAT!r} (written by save_tuning)."
        )
    if document.get("version") != _VERSION:
        raise ValueError(
            f"{path}: tuning file version {document.get('version')!r}; this gen_jax reads "
            f"version {_VERSION}."
        )
    raw = document.get("entries")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: 'entries' must be a list; got {type(raw).__name__}.")
    records = []
    for i, entry in enumerate(raw):
        try:
            records.append(_entry_from_json(entry))
        except (KeyError, TypeError, ValueError) as e:
            detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"{path}: entry {i}: {detail}") from None
    here = _devices_here({r["backend"] for r in records})
    tuned_for = sorted({(r["backend"], r["device_kind"]) for r in records})
    if records and not any(kind in here for kind in tuned_for):
        raise ValueError(
            f"{path}: tuned for {tuned_for} (backend, device kind); this process has "
            f"{sorted(here) or 'none of those backends'}, so no entry would ever be used."
        )
    with _lock:
        for i, record in enumerate(records):
            old = _table.get(_record_key(record))
            if old is not None and old["choice"] != record["choice"]:
                raise ValueError(
                    f"{path}: entry {i} ({record['lhs_shape']} * {record['rhs_shape']}, "
                    f"{record['dtype']}) chooses {record['choice'].name!r} where this process "
                    f"chose {old['choice'].name!r}; call clear_tuning() first to replace "
                    "the table."
                )
        for record in records:
            key = _record_key(record)
            if key not in _table:
                _table[key] = {**record, "loaded_from": str(path)}
    return len(records)


def _devices_here(backends) -> set[tuple[str, str]]:
    """(backend, device kind) of this process's devices, for the named backends."""
    found = set()
    for backend in backends:
        try:
            devices = jax.devices(backend)
        except (RuntimeError, ValueError):  # A backend this process has not got.
            continue
        found.update((backend, d.device_kind) for d in devices)
    return found


def _record_key(record: dict[str, Any]) -> tuple:
    return tuple(record[f] for f in _KEY_FIELDS)


def _entry_to_json(record: dict[str, Any]) -> dict[str, Any]:
    entry = {f: record[f] for f in _KEY_FIELDS}
    entry["choice"] = record["choice"]._asdict()
    for field in ("seconds", "failed", "deviation", "measure_s", "skipped"):
        if field in record:
            entry[field] = record[field]
    return entry


def _ints(value, n: int, what: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise ValueError(f"{what} must be a list of {n} integers >= 0; got {value!r}.")
    return tuple(value)


def _entry_from_json(entry: Any) -> dict[str, Any]:
    """A table record from one file entry; raises on anything `tuned_choice` would not
    have written (ValueError, TypeError, or KeyError naming a missing field)."""
    if not isinstance(entry, dict):
        raise TypeError(f"expected an object; got {type(entry).__name__}")
    backend, device_kind, dtype = entry["backend"], entry["device_kind"], entry["dtype"]
    if not (isinstance(backend, str) and isinstance(device_kind, str)):
        raise ValueError(
            f"backend and device_kind must be strings; got {backend!r}, {device_kind!r}."
        )
    if dtype not in _TUNED_DTYPES:
        raise ValueError(f"dtype must be one of {_TUNED_DTYPES}; got {dtype!r}.")
    lhs_shape = _ints(entry["lhs_shape"], 4, "lhs_shape")
    rhs_shape = _ints(entry["rhs_shape"], 4, "rhs_shape")
    if rhs_shape[:2] != (3, 3) or rhs_shape[2] != lhs_shape[3]:
        raise ValueError(
            f"expected a [3, 3, C, K] kernel matching the input's C; got {lhs_shape} and "
            f"{rhs_shape}."
        )
    pads = entry["pads"]
    if not isinstance(pads, list) or len(pads) != 2:
        raise ValueError(f"pads must be [[top, bottom], [left, right]]; got {pads!r}.")
    pads = tuple(_ints(p, 2, "pads") for p in pads)
    if max(p for pair in pads for p in pair) > 2 or output_side(lhs_shape, pads) < 1:
        raise ValueError(f"pads must be in 0..2 and leave an output; got {pads}.")
    precision = entry["precision"]
    if not (isinstance(precision, list) and len(precision) == 2):
        raise ValueError(f"precision must be a list of 2 strings; got {precision!r}.")
    if not all(isinstance(p, str) for p in precision):
        raise ValueError(f"precision must be a list of 2 strings; got {precision!r}.")
    choice = _choice_from_json(entry["choice"], output_side(lhs_shape, pads))
    failed = entry.get("failed", {})
    if not isinstance(failed, dict):
        raise ValueError(f"failed must be an object of error messages; got {failed!r}.")
    record = {
        "choice": choice,
        "seconds": _floats(entry.get("seconds", {}), "seconds"),
        "failed": {str(k): str(v) for k, v in failed.items()},
        "deviation": _floats(entry.get("deviation", {}), "deviation"),
        "measure_s": float(entry.get("measure_s", 0.0)),
    }
    if entry.get("skipped") is not None:
        record["skipped"] = str(entry["skipped"])
    key = (backend, device_kind, lhs_shape, rhs_shape, pads, dtype, tuple(precision))
    record.update(zip(_KEY_FIELDS, key))
    return record


def _choice_from_json(value: Any, side: int) -> Choice:
    """A `Choice` that `tuned_choice` could have made for an output ``side`` pixels on its
    shorter side: a candidate, or a tile in the fixed rule's order (a skipped key)."""
    if not isinstance(value, dict) or set(value) != {"tile", "kernel_first"}:
        raise ValueError(f"choice must be {{'tile': ..., 'kernel_first': ...}}; got {value!r}.")
    tile, kernel_first = value["tile"], value["kernel_first"]
    if not (tile is None or (isinstance(tile, int) and not isinstance(tile, bool))):
        raise ValueError(f"choice's tile must be null or an integer; got {tile!r}.")
    if kernel_first is not None and not isinstance(kernel_first, bool):
        raise ValueError(f"choice's kernel_first must be null or a boolean; got {kernel_first!r}.")
    choice = Choice(tile, kernel_first)
    valid = candidates(side) + [Choice(t, None) for t in _winograd.TILES if t <= side]
    if choice not in valid:
        raise ValueError(
            f"choice {choice} is not one for an output of {side} px on its shorter side; "
            f"expected one of {valid}."
        )
    return choice


def _floats(value: Any, what: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object of numbers; got {value!r}.")
    return {str(k): float(v) for k, v in value.items()}


def _measure(lhs_shape, rhs_shape, pads, dtype, precision, device) -> dict[str, Any]:
    c, k = rhs_shape[2:]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(lhs_shape).astype(dtype)
    w = (rng.standard_normal(rhs_shape) * np.sqrt(2.0 / (9 * c))).astype(dtype)
    b = (rng.standard_normal((k,)) * 0.1).astype(dtype)
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    # Each Winograd candidate's largest relative L2 distance from the direct convolution's
    # relu output and input gradient, measured on the same inputs.
    deviation: dict[str, float] = {}
    reference = None
    best: tuple[float, Choice] | None = None
    with jax.ensure_compile_time_eval():
        x, w, b = jax.device_put((x, w, b), device)
        for choice in candidates(output_side(lhs_shape, pads)):
            limit = None if best is None else _PRUNE * best[0]
            try:
                times, outputs = _time_candidate(choice, x, w, b, pads, precision, limit)
            except Exception as e:  # Any backend failure rules a Winograd candidate out.
                if choice.tile is None:
                    raise
                failed[choice.name] = f"{type(e).__name__}: {e}"[:_ERROR_CHARS]
                continue
            t = seconds[choice.name] = min(times)
            if choice.tile is None:
                reference = outputs
            elif outputs is not None and reference is not None:
                deviation[choice.name] = max(map(relative_l2, outputs, reference))
            if best is None or t < best[0]:
                best = (t, choice)
    return {"choice": best[1], "seconds": seconds, "failed": failed, "deviation": deviation}


def relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    """``||got - want|| / ||want||``, in float64 (the records' ``deviation``)."""
    want = np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def _time_candidate(choice: Choice, x, w, b, pads, precision, limit):
    """(seconds per scan step of relu(conv + b), forward and input gradient, for each timed
    call; the last step's (relu output, input gradient) as NumPy arrays). Timing stops
    after the first call when that one took over ``limit``."""
    if choice.tile is None:
        kernels = ()

        def conv(x, w, kernels):
            # What conv_general_dilated(..., algorithm="direct") runs for this shape.
            return direct_conv(x, w, pads, precision, None)

    else:
        kernels = _winograd_kernels(w, choice.tile)

        def conv(x, w, kernels):
            return _winograd.winograd_conv3x3(
                x,
                w,
                pads,
                tile=choice.tile,
                precision=precision,
                kernels=kernels,
                kernel_first=choice.kernel_first,
            )

    def run(x, w, b, kernels):
        def body(carry, _):
            c = carry[0]
            y, vjp = jax.vjp(lambda c: jax.nn.relu(conv(c, w, kernels) + b), c)
            (dx,) = vjp(y)  # The gradient of 0.5 |y|^2.
            return (c - 1e-6 * dx, y, dx), None

        y = jax.eval_shape(lambda x: conv(x, w, kernels), x)
        init = (x, jnp.zeros(y.shape, y.dtype), jnp.zeros_like(x))
        return lax.scan(body, init, None, length=_STEPS)[0]

    run = jax.jit(run)
    _, y, dx = jax.block_until_ready(run(x, w, b, kernels))
    outputs = (np.asarray(y), np.asarray(dx))
    times = []
    for _ in range(_REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(run(x, w, b, kernels))
        times.append((time.perf_counter() - t0) / _STEPS)
        if limit is not None and times[0] > limit:
            break
    return times, outputs
