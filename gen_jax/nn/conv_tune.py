"""Measured choice of algorithm for each convolution shape: ``algorithm="tune"``.

`gen_jax.nn.conv.winograd_plan`'s ``"auto"`` is a fixed rule, measured on one machine (a
2-core x86 VM, `python -m benchmarks.vgg_layer_speed`) and applied on the CPU backend
only. Which algorithm is fastest for a shape depends on the machine: the core count, the
matrix-product library, on a GPU cuDNN's convolutions against cuBLAS's batched products.
``"tune"`` measures instead, the way ``torch.backends.cudnn.benchmark`` does: the first
time a program is traced with a stride-1 3x3 convolution of a new shape, every
candidate runs on the backend's first device and the fastest is kept for the rest of
the process. The candidates are the direct convolution and Winograd F(2x2, 3x3) and
F(4x4, 3x3), each with its batched products in either order (`gen_jax.nn.winograd`).

Each candidate is timed as VGG runs its layers inside an optimisation loop: the
convolution, a bias and a ReLU, forward and input gradient, in a 2-step `lax.scan`, the
Winograd kernel transforms passed in as arguments (computed once, as
`gen_jax.models.vgg.prepare_variables` does; `gen_jax.nn.conv.conv_general_dilated` on its
own transforms them at every call). Each candidate runs once to compile and warm up, then
is timed up to `_REPEATS` times; its best time counts, and one more than twice as slow as
the best so far on its first timing is not timed again. A Winograd candidate that fails to
compile or run (say, out of memory on a small accelerator) is recorded with its error and
left out; the direct convolution's failure is the caller's error, raised.

The measurement runs while the caller's program is being traced (under
`jax.ensure_compile_time_eval`), once per key: backend, device kind, shapes, padding,
dtype and precision (including `jax.default_matmul_precision`'s). It costs a compile and
a few runs per candidate, seconds per shape on a CPU; `tuning_records` lists what was
measured and chosen. `set_tuning_budget` caps the measuring time of a process: past it,
new shapes take ``"auto"``'s fixed rule unmeasured. A convolution sharded over devices is
tuned at its whole shape on one device. Only float32 and float64 inputs are tuned; 16-bit
floats stay direct, as under ``"auto"`` (Winograd's transforms lose too much there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax.nn import winograd

__all__ = [
    "Choice",
    "candidates",
    "clear_tuning",
    "relative_l2",
    "set_tuning_budget",
    "tuned_choice",
    "tuning_budget",
    "tuning_records",
]

# Timed calls per candidate after the compiling one (the best counts).
_REPEATS = 3
# Steps of the scan each timed call runs (where L-BFGS's line search runs its evaluations).
_STEPS = 2
# After its first timing, a candidate this many times slower than the best is dropped.
_PRUNE = 2.0
# How much of a failed candidate's error message is kept in its record.
_ERROR_CHARS = 300


class Choice(NamedTuple):
    """How a stride-1 3x3 convolution is computed: ``tile`` None is the direct
    convolution; 2 or 4 is Winograd F(tile x tile, 3 x 3) with the kernel on the left of
    its batched products when ``kernel_first`` (None: `gen_jax.nn.winograd`'s rule)."""

    tile: int | None
    kernel_first: bool | None = None

    @property
    def name(self) -> str:
        if self.tile is None:
            return "direct"
        order = {None: "", False: ", data first", True: ", kernel first"}[self.kernel_first]
        return f"winograd{self.tile}{order}"


_DIRECT = Choice(None, None)
# One compiled kernel transform per shape and tile, shared by both product orders.
_winograd_kernels = jax.jit(winograd.winograd_kernels, static_argnums=1)
_lock = threading.RLock()
_records: dict[tuple, dict[str, Any]] = {}
# What measure_s is read from (a test substitutes it).
_clock = time.perf_counter
# The process's cap on measuring time in seconds (None: none); see set_tuning_budget.
_budget_s: float | None = None


def candidates(out_side: int) -> list[Choice]:
    """What is tried for a convolution whose output is ``out_side`` pixels on its shorter
    side: the direct convolution, then each Winograd tile no larger than the output, in
    both product orders."""
    found = [_DIRECT]
    for tile in winograd.TILES:
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
    """The fastest `Choice` for this convolution on ``backend``, measured on first use.

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
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        return _DIRECT
    backend = backend or jax.default_backend()
    device = jax.devices(backend)[0]
    key = (
        backend,
        device.device_kind,
        lhs_shape,
        rhs_shape,
        pads,
        dtype.name,
        repr(precision),
        str(jax.config.jax_default_matmul_precision),
    )
    with _lock:
        record = _records.get(key)
        spent = sum(r["measure_s"] for r in _records.values())
        if record is None and _budget_s is not None and spent >= _budget_s:
            # Deferred: gen_jax.nn.conv imports this module.
            from gen_jax.nn.conv import winograd_plan

            record = {
                "choice": winograd_plan(
                    lhs_shape, rhs_shape, (1, 1), pads, dtype, "auto", backend, precision
                ),
                "seconds": {},
                "failed": {},
                "deviation": {},
                "skipped": f"the tuning budget of {_budget_s:g} s was spent ({spent:.1f} s)",
                "measure_s": 0.0,
            }
        if record is None:
            t0 = _clock()
            record = _measure(lhs_shape, rhs_shape, pads, dtype, precision, device)
            record["measure_s"] = _clock() - t0
        if key not in _records:
            record.update(
                backend=backend,
                device_kind=device.device_kind,
                lhs_shape=lhs_shape,
                rhs_shape=rhs_shape,
                pads=pads,
                dtype=dtype.name,
                precision=key[-2:],
            )
            _records[key] = record
    return record["choice"]


def tuning_budget() -> float | None:
    """The cap `set_tuning_budget` set (None: none)."""
    return _budget_s


def set_tuning_budget(seconds: float | None) -> None:
    """Caps this process's measuring time (the records' ``measure_s`` added up).

    Once the cap is reached, a new shape is not measured: it takes ``"auto"``'s fixed rule
    (`gen_jax.nn.conv.winograd_plan`; on GPUs the direct convolution), and its record says
    so in ``skipped``. The choice is kept like a measured one, so a program's preparation
    and application agree. Shapes measured already keep their choices. For jobs with a
    deadline on a machine whose compiles are slow (each candidate compiles once per
    shape). None (the default) removes the cap.

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
    """Every measurement of this process, oldest first: the shapes and key fields, the
    ``choice`` made, ``seconds`` per scan step of each candidate (by `Choice.name`; the
    best of its timings, a single one for a candidate dropped early), ``failed``, the error
    of each candidate that could not run (by name), ``deviation``, each Winograd
    candidate's relative L2 distance from the direct convolution's output and input
    gradient on the timing's inputs (the larger of the two), ``measure_s``, what the
    measurement took, compiles included, and ``skipped``, why nothing was measured, for
    shapes that came after `set_tuning_budget`'s cap."""
    with _lock:
        return [dict(r) for r in _records.values()]


def clear_tuning() -> None:
    """Forgets every measurement: programs traced afterwards measure again (the budget of
    `set_tuning_budget` stays, and counts from zero again)."""
    with _lock:
        _records.clear()


def _measure(lhs_shape, rhs_shape, pads, dtype, precision, device) -> dict[str, Any]:
    c, k = rhs_shape[2:]
    out_side = min(n + lo + hi - 2 for n, (lo, hi) in zip(lhs_shape[1:3], pads))
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
        for choice in candidates(out_side):
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
    """``||got - want|| / ||want||``, in float64."""
    want = np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def _time_candidate(choice: Choice, x, w, b, pads, precision, limit):
    """(seconds per scan step of relu(conv + b), forward and input gradient, for each timed
    call; the last step's (relu output, input gradient) as NumPy arrays). Timing stops
    after the first call when that one took over ``limit``."""
    # Deferred: gen_jax.nn.conv imports this module.
    from gen_jax.nn.conv import conv_general_dilated

    if choice.tile is None:
        kernels = ()

        def conv(x, w, kernels):
            return conv_general_dilated(
                x,
                w,
                (1, 1),
                pads,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=precision,
                algorithm="direct",
            )

    else:
        kernels = _winograd_kernels(w, choice.tile)

        def conv(x, w, kernels):
            return winograd.winograd_conv3x3(
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
