"""Where a style-transfer evaluation spends its time on XLA:CPU, by kind of operation.

    python -m benchmarks.synthesis_profile [--size 256] [--iterations 5] [--out FILE.md]
    taskset -c 0 python -m benchmarks.synthesis_profile ...   # one core: shares add up

Runs the optimisation of `benchmarks.synthesis_speed` (gen_jax side only: the same VGG19,
objective and L-BFGS) once to compile, then once more under `jax.profiler`, and sums the
duration of every operation the XLA:CPU runtime executed, per loss-and-gradient
evaluation. Operations are named by their optimised HLO (dumped by XLA into a temporary
folder, so this module sets ``--xla_dump_to`` before JAX starts) and put in one of these
kinds by the strongest operation they contain (a product, else a convolution, else a
stacking):

* Winograd products: batched matrix products with 16 or 36 batches (F(2x2, 3x3) or
  F(4x4, 3x3)), ``[positions, tiles, C] x [positions, C, K]``;
* Winograd kernel/output transforms: products of a 16 or 36 row matrix against a
  flattened array (in the loop these are the output transforms: the kernel transforms
  run once per run in a program of their own, `optimize_image`'s ``_prepare``, whose
  total is reported on its own line);
* Winograd input transforms: the fusions that stack 4 or 6 pieces on a new leading axis
  (the two passes of `gen_jax.nn.xla_cpu.winograd_conv3x3`'s input transform);
* Gram products: every other matrix product (products with a scalar or vector result,
  the optimiser's inner products, count as other);
* direct convolutions;
* other: elementwise fusions, pools, pads, copies, the optimiser's own vector work.

On several cores XLA runs independent operations at the same time, so the kinds can add up
to more than the wall time; pin the process to one core for shares that add up.
"""

from __future__ import annotations

import os
import sys
import tempfile

if "jax" in sys.modules:  # pragma: no cover - only when imported after JAX by hand
    _DUMP_DIR = None
else:
    _DUMP_DIR = tempfile.mkdtemp(prefix="gen_jax_hlo_")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={_DUMP_DIR}"
    ).strip()

import argparse
import collections
import glob
import re
import shutil
from collections.abc import Iterable, Mapping

import jax
import numpy as np

from benchmarks.machine import describe_devices
from benchmarks.report import check_out_paths, table, write_text
from benchmarks.synthesis_speed import BenchConfig, jax_runners, network_and_loss
from benchmarks.synthesis_work import MIN_SIZE, jax_targets, load_images

# The optimised HLO is dumped only when XLA compiles: a program found in JAX's persistent
# compilation cache (JAX_COMPILATION_CACHE_DIR, as the test script sets) would leave none.
jax.config.update("jax_enable_compilation_cache", False)

KINDS = (
    "Winograd products",
    "Winograd kernel/output transforms",
    "Winograd input transforms",
    "Gram products",
    "direct convolutions",
    "other",
)

# `%name = f32[...]{...} op(` at the start of an HLO instruction.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
# The HLO modules of `optimize_image`'s loop and of its once-per-run `_prepare`.
_LOOP_MODULE = "jit__run_chunk"
_PREPARE_MODULE = "jit__prepare"
# Events that contain other events (the runtime's loops and conditionals).
_PARENTS = ("ThunkExecutor", "while", "cond", "SlinkyThreadPool", "end:")


def _dims(shape: str) -> tuple[int, ...]:
    """``f32[36,64,512]{2,1,0}`` -> (36, 64, 512)."""
    inner = shape[shape.index("[") + 1 : shape.index("]")]
    return tuple(int(d) for d in inner.split(",") if d)


# What names a fusion's kind, strongest first: its products, then its convolutions, then
# its stacking; a fusion with none of these is "other".
_DEFINING_OPS = ("dot", "convolution", "concatenate")


def _kind_of(op: str, shape: str) -> str:
    if op == "convolution":
        return "direct convolutions"
    if op == "dot":
        dims = _dims(shape)
        if len(dims) == 3 and dims[0] in (16, 36):
            return "Winograd products"
        if len(dims) == 2 and dims[0] in (16, 36):
            return "Winograd kernel/output transforms"
        # Vector and scalar products are the optimiser's (L-BFGS's inner products).
        return "Gram products" if len(dims) >= 2 else "other"
    if op == "concatenate" and _dims(shape)[:1] in ((4,), (6,)):
        # The transform's passes stack m + 2 = 4 or 6 pieces on a new leading axis (a
        # pool's gradient stacks its phases on an inner one).
        return "Winograd input transforms"
    return "other"


def hlo_kinds(hlo_text: str) -> dict[str, str]:
    """Every instruction of an optimised HLO module -> its kind (see the module docstring).

    A fusion takes the kind of the strongest operation in the computation it calls
    (`_DEFINING_OPS`), wherever that sits: XLA often ends a fusion with a bitcast.
    """
    defining: dict[str, tuple[str, str]] = {}
    calls: dict[str, str] = {}
    kinds: dict[str, str] = {}
    computation = None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header and "=" not in line.split("{")[0]:
            computation = header.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, op = m.groups()
        if op in _DEFINING_OPS and computation is not None:
            best = defining.get(computation)
            if best is None or _DEFINING_OPS.index(op) < _DEFINING_OPS.index(best[0]):
                defining[computation] = (op, shape)
        called = _CALLS.search(line)
        if called:
            calls[name] = called.group(1)
        kinds[name] = _kind_of(op, shape)
    for name, computation_name in calls.items():
        if computation_name in defining:
            kinds[name] = _kind_of(*defining[computation_name])
    return kinds


def summarize(
    durations_ms: Iterable[tuple[str, float]], kinds: Mapping[str, str], evaluations: int
) -> dict[str, float]:
    """Milliseconds per evaluation of each kind, from (operation, duration) pairs."""
    totals = collections.Counter({k: 0.0 for k in KINDS})
    for name, ms in durations_ms:
        if name.startswith(_PARENTS):
            continue
        totals[kinds.get(name, "other")] += ms
    return {k: totals[k] / evaluations for k in KINDS}


def _profiled_durations(trace_dir: str) -> dict[str, list[tuple[str, float]]]:
    """HLO module -> (operation, ms) of each operation XLA:CPU ran, from a trace folder.

    Operations are told apart by module: instruction names such as ``ynn_fusion.3``
    recur in every compiled program. They run on XLA's worker threads and on the thread
    that starts the program, so every line of the trace is read.
    """
    from jax.profiler import ProfileData

    (path,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    out: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            for e in line.events:
                module = dict(e.stats).get("hlo_module")
                if module is not None:
                    out[module].append((e.name, e.duration_ns / 1e6))
    return out


def profile(size: int, iterations: int, log=print) -> dict:
    """Profiles `iterations` L-BFGS iterations of the benchmark's style transfer at `size`."""
    if _DUMP_DIR is None:
        raise RuntimeError("import benchmarks.synthesis_profile before JAX to name operations")
    cfg = BenchConfig(sizes=(size,), iterations=(iterations,), use_torch=False).resolve()
    content, style, _ = load_images(size, cfg.seed)
    loss, params, network = network_and_loss(cfg, np.stack([content, style]))
    targets, grams = jax_targets(loss, params, content, style, cfg.precision)
    # The benchmark's own runner: the same `optimize_image` call and evaluation count.
    (runner,) = jax_runners(cfg, loss, content, (params, targets, grams), iterations)
    log(f"[profile] {size} px, {iterations} iterations: compiling")
    runner.optimize()
    wall = runner.run()
    evaluations = runner.info["evaluations"]
    trace_dir = tempfile.mkdtemp(prefix="gen_jax_trace_")
    try:
        jax.profiler.start_trace(trace_dir)
        runner.optimize()
        jax.profiler.stop_trace()
        by_module = _profiled_durations(trace_dir)
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)
    durations = by_module.get(_LOOP_MODULE, [])
    if not durations:
        raise RuntimeError(f"the trace has no operations of {_LOOP_MODULE}")
    prepare_ms = sum(
        ms for name, ms in by_module.get(_PREPARE_MODULE, []) if not name.startswith(_PARENTS)
    )
    dumps = glob.glob(os.path.join(_DUMP_DIR, f"*{_LOOP_MODULE}*cpu_after_optimizations.txt"))
    if not dumps:
        raise RuntimeError(f"no optimised HLO of the optimisation loop in {_DUMP_DIR}")
    with open(max(dumps, key=os.path.getmtime)) as f:
        kinds = hlo_kinds(f.read())
    per_eval = summarize(durations, kinds, evaluations)
    return {
        "size": size,
        "iterations": iterations,
        "evaluations": evaluations,
        "wall_ms_per_evaluation": 1e3 * wall / evaluations,
        "ms_per_evaluation": per_eval,
        "prepare_ms": prepare_ms,
        "network": network,
        "device": describe_devices(),
    }


def format_markdown(result: dict) -> str:
    """The table of kinds, then the run's facts."""
    per_eval = result["ms_per_evaluation"]
    total = sum(per_eval.values())
    cells = [(k, f"{per_eval[k]:.1f}", f"{100 * per_eval[k] / total:.0f} %") for k in KINDS]
    cells.append(("all operations", f"{total:.1f}", ""))
    header = ("kind", "ms per evaluation", "share of the operations' time")
    lines = [
        f"## Style-transfer evaluation at {result['size']} px by kind of operation",
        "",
        *table(header, cells, "lrr"),
        "",
        (
            f"- wall time per loss-and-gradient evaluation, unprofiled: "
            f"{result['wall_ms_per_evaluation']:.1f} ms ({result['evaluations']} evaluations "
            f"in {result['iterations']} L-BFGS iterations)"
        ),
        (
            f"- once per run, before the loop (the Winograd kernel transforms): "
            f"{result['prepare_ms']:.1f} ms of operations, not in the table"
        ),
        f"- {result['network']}",
        f"- cores available to this process: {len(os.sched_getaffinity(0))}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256, help=f"image side in pixels (>= {MIN_SIZE})")
    p.add_argument("--iterations", type=int, default=5, help="L-BFGS iterations profiled")
    p.add_argument("--out", help="also write the markdown table here")
    try:
        args = p.parse_args(argv)
        if args.size < MIN_SIZE:
            p.error(f"--size: expected >= {MIN_SIZE}, found {args.size}")
        if args.iterations < 1:
            p.error(f"--iterations: expected >= 1, found {args.iterations}")
        check_out_paths(p, out=args.out)
        result = profile(args.size, args.iterations)
    finally:
        # Also after a refused argument: the dump folder was made at import.
        if _DUMP_DIR is not None:
            shutil.rmtree(_DUMP_DIR, ignore_errors=True)
    text = format_markdown(result)
    print(text)
    write_text(args.out, text)
    return result


if __name__ == "__main__":
    main()
