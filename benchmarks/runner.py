"""How every benchmark times its work: untimed warm-up, timed repeats, medians, compile times.

Two shapes of measurement cover the benchmarks:

* one function, called `warmup` times untimed (the first call compiles), then `repeats`
  times timed: `repeat_seconds` / `median_seconds`;
* several implementations of the same work side by side (gen_jax's rows and the PyTorch
  reference): each is a `Runner` that does its untimed work in ``setup`` and one timed
  repeat in ``run``; `interleave` sets them all up, then runs repeat 1 of every runner,
  repeat 2 of every runner, and so on, so that a change in background load hits every
  row alike, and the caller reports each runner's median.

The clock is an argument (``time.perf_counter`` by default) so that the order of the calls
and the medians can be tested with a fake one.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import jax

__all__ = [
    "Log",
    "Runner",
    "compile_seconds",
    "compile_timed",
    "interleave",
    "median_seconds",
    "repeat_seconds",
    "seconds",
    "stderr_log",
]

Log = Callable[[str], None]
Clock = Callable[[], float]

# JAX's compile-time events: tracing, lowering to MLIR, XLA compilation.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def stderr_log(msg: str) -> None:
    """The default progress sink of every benchmark: a line on stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


def seconds(
    fn: Callable[..., Any],
    *args: Any,
    ready: Callable[[Any], Any] = jax.block_until_ready,
    clock: Clock = time.perf_counter,
) -> tuple[float, Any]:
    """(wall seconds, result) of ``fn(*args)``, the clock stopped once ``ready(result)``
    returns: JAX dispatches asynchronously, so the default waits for the result's arrays.
    A PyTorch runner passes a ``ready`` that synchronises its device."""
    t0 = clock()
    result = fn(*args)
    ready(result)
    return clock() - t0, result


def repeat_seconds(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn(*args)``, after ``warmup`` untimed
    calls (the first one compiles a jitted ``fn``)."""
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, found {repeats}")
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    return [seconds(fn, *args, clock=clock)[0] for _ in range(repeats)]


def median_seconds(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> float:
    """The median of `repeat_seconds`."""
    return statistics.median(repeat_seconds(fn, *args, repeats=repeats, warmup=warmup, clock=clock))


@contextlib.contextmanager
def compile_seconds() -> Iterator[dict[str, float]]:
    """Sums JAX's trace, lowering and XLA compile durations inside the block.

    Yields ``{"seconds": total, "events": count}``, filled in as the block runs: the
    compile time of a call that also runs (an `optimize_image` whose first call compiles),
    and, for a timed call, whether it recompiled (``events > 0``).
    """
    totals = {"seconds": 0.0, "events": 0}

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        if event in COMPILE_EVENTS:
            totals["seconds"] += duration
            totals["events"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield totals
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def compile_timed(jitted, *args: Any, clock: Clock = time.perf_counter) -> tuple[Any, float]:
    """(``jitted.lower(*args).compile()``, the seconds it took): a program compiled ahead
    of its first call, so that no timed call pays for it."""
    t0 = clock()
    compiled = jitted.lower(*args).compile()
    return compiled, clock() - t0


class Runner(Protocol):
    """One implementation of a benchmark's work, as `interleave` drives it."""

    key: str  # the row's key in the result
    info: dict[str, Any]  # what setup and the repeats found (compile_s, iterations, ...)

    def setup(self, log: Log) -> None:
        """The untimed work: compiling, warm-up, first calls."""

    def run(self) -> float:
        """One timed repeat; returns its seconds."""


def interleave(
    runners: Sequence[Runner],
    repeats: int,
    log: Log = stderr_log,
    on_repeat: Callable[[Runner, int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Sets every runner up, then times ``repeats`` rounds of one repeat of each runner.

    Args:
      runners: the implementations, in the order of the rows; their keys are distinct.
      repeats: rounds; in each, every runner runs once, in order.
      log: progress sink, passed to each ``setup``.
      on_repeat: called as ``on_repeat(runner, repeat, seconds)`` after each run (repeat
        counts from 0), to log it.

    Returns:
      runner key -> the seconds of its repeats, in order (their median is the row's time).
    """
    keys = [r.key for r in runners]
    if len(set(keys)) != len(keys):
        raise ValueError(f"runners: expected distinct keys, found {keys}")
    for runner in runners:
        runner.setup(log)
    timed: dict[str, list[float]] = {key: [] for key in keys}
    for rep in range(repeats):
        for runner in runners:
            elapsed = runner.run()
            timed[runner.key].append(elapsed)
            if on_repeat is not None:
                on_repeat(runner, rep, elapsed)
    return timed
