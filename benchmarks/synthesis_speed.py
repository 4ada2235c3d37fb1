"""Gatys style transfer through VGG19: gen_jax (one compiled optimisation) against PyTorch eager.

    python -m benchmarks.synthesis_speed [--sizes 256,512] [--iterations N or N1,N2]
        [--optimizer lbfgs|adam] [--weights FILE] [--pooling max|avg] [--repeats R]
        [--conv-algorithm A or A1,A2] [--check_size S] [--out FILE.md] [--no-torch]

The work, the same on both sides at every size S (a square S x S image):

* the objective of `gen_jax.synthesis.style_transfer`: ``alpha * content(relu4_2) +
  beta * sum_l 1/5 E_l(relu1_1 ... relu5_1) + tv_weight * TV``, Gram losses on
  per-position Grams, squared isotropic TV; the image starts at the content image;
* through one VGG19 (`get_feature_net("random_vgg19")`, normalised on the content and
  style images, or trained weights from `--weights`), its parameters loaded into a
  PyTorch `nn.Sequential` (HWIO -> OIHW) with the same input normalisation; the forward
  pass stops at relu5_1 on both sides;
* the same optimiser: L-BFGS with history 10 and a strong-Wolfe line search (optax's
  zoom line search inside `gen_jax.synthesis.optimize_image`, against
  `torch.optim.LBFGS(history_size=10, line_search_fn="strong_wolfe")`), or Adam(0.02).

The line searches of the two L-BFGS implementations differ in their first step and in
how they bracket, so an iteration may cost a different number of loss-and-gradient
evaluations on each side; both are counted (``OptimizeResult.evaluations`` plus the
initial one; a counter in PyTorch's closure) and both rates are reported. After the
timings, one loss-and-gradient evaluation at a small size is compared between the two
implementations (at the highest matmul/conv precision) and with the same objective in
float64 (PyTorch on the CPU), to show that they compute the same function and how closely
each side's float32 rounding follows it (afterwards, so that a run cut short by a time
limit keeps its timed sizes; `check_passed` gives the verdict); the loss at the start
image of every size is compared too.

Several ``--conv-algorithm`` values (say ``auto,tune``) give one gen_jax row per algorithm
at every size, each with its own equal-work check, all timed against the same PyTorch
runs: the comparison of algorithms is side by side in one process, and the PyTorch
reference is paid for once.

Timing (`benchmarks.runner`): gen_jax's compilation is measured from JAX's own compile
events during the first, untimed, call (which also runs the iterations once); PyTorch's
first iterations are untimed as well. Then R repeats of the whole optimisation (from the
same start image, so every repeat does the same work) alternate between the
implementations, so that a change in background load hits both alike, and the median
repeat is reported. Thread pools keep their defaults (XLA:CPU uses every schedulable
core; PyTorch `torch.get_num_threads()`).

This module is the benchmark's configuration, command line and orchestration; the work
on both sides is in `benchmarks.synthesis_work` (the PyTorch side in
`benchmarks.torch_reference`), the check in `benchmarks.synthesis_check`, the markdown in
`benchmarks.synthesis_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from benchmarks import torch_reference
from benchmarks.machine import describe_devices
from benchmarks.report import add_ratios, check_out_paths, parse_config, relative, write_report
from benchmarks.runner import Log, interleave, stderr_log
from benchmarks.synthesis_check import check_references, equal_work_check
from benchmarks.synthesis_report import format_markdown
from benchmarks.synthesis_work import (
    MIN_SIZE,
    OPTIMIZERS,
    PRECISIONS,
    TORCH_EAGER,
    JaxStyleRunner,
    TorchStyleRunner,
    build_network,
    gatys_loss,
    jax_row_key,
    jax_targets,
    load_images,
)
from gen_jax.nn import xla_cpu
from gen_jax.nn.xla_cpu import ALGORITHMS as CONV_ALGORITHMS
from gen_jax.synthesis.style import PerceptualLoss


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to measure; `None` fields take per-backend defaults (see `resolve`)."""

    sizes: tuple[int, ...] = (256, 512)
    iterations: tuple[int, ...] | None = None  # one per size, or one for all
    optimizer: str = "lbfgs"
    precision: str = "highest"
    weights: str | None = None
    pooling: str = "max"
    # gen_jax's VGG convolutions (gen_jax.nn.xla_cpu.ALGORITHMS): one gen_jax row each.
    conv_algorithms: tuple[str, ...] = ("auto",)
    # xla_cpu.set_tuning_budget for the run (None: no cap on "tune"'s measuring time).
    tune_budget_s: float | None = None
    repeats: int | None = None
    check_size: int = 64
    alpha: float = 1.0
    beta: float = 1e3
    tv_weight: float = 1.0
    seed: int = 0
    use_torch: bool = True
    torch_channels_last: bool = True
    torch_threads: int | None = None  # None: PyTorch's default pool, untouched

    def resolve(self) -> BenchConfig:
        """Fills the `None` fields: short runs on the CPU, longer ones on accelerators."""
        on_cpu = jax.default_backend() == "cpu"
        iterations = self.iterations
        if iterations is None:
            # About constant work per size: iterations ~ 1 / pixels (CPU: 12 at 256, 3 at 512).
            base, floor = (12, 2) if on_cpu else (200, 20)
            iterations = tuple(max(floor, round(base * (256 / s) ** 2)) for s in self.sizes)
        elif len(iterations) == 1:
            iterations = iterations * len(self.sizes)
        repeats = self.repeats if self.repeats is not None else (3 if on_cpu else 5)
        cfg = dataclasses.replace(self, iterations=tuple(iterations), repeats=repeats)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if not self.sizes:
            raise ValueError("sizes: expected one or more image sizes, found none")
        for s in (*self.sizes, self.check_size):
            if s < MIN_SIZE:
                raise ValueError(
                    f"sizes/check_size: expected >= {MIN_SIZE} px (relu5_1 follows four 2x2 "
                    f"pools), found {s}"
                )
        if self.iterations is not None:
            if len(self.iterations) not in (1, len(self.sizes)):
                raise ValueError(
                    f"iterations: expected one count or one per size ({len(self.sizes)}), "
                    f"found {len(self.iterations)}"
                )
            if min(self.iterations) < 1:
                raise ValueError(f"iterations: expected positive counts, found {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, found {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, found {self.precision!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling: expected 'max' or 'avg', found {self.pooling!r}")
        if not self.conv_algorithms:
            raise ValueError("conv_algorithms: expected one or more, found none")
        for algorithm in self.conv_algorithms:
            if algorithm not in CONV_ALGORITHMS:
                raise ValueError(
                    f"conv_algorithms: expected each one of {CONV_ALGORITHMS}, found {algorithm!r}"
                )
        if len(set(self.conv_algorithms)) != len(self.conv_algorithms):
            raise ValueError(
                f"conv_algorithms: expected each at most once, found {self.conv_algorithms}"
            )
        if self.tune_budget_s is not None and not self.tune_budget_s >= 0:
            raise ValueError(f"tune_budget_s: expected seconds >= 0, found {self.tune_budget_s}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(
                f"torch_threads: expected a positive integer, found {self.torch_threads}"
            )
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"repeats: expected a positive integer, found {self.repeats}")
        if self.weights is not None and not os.path.isfile(self.weights):
            raise ValueError(f"weights: expected a VGG19 weights file, found no {self.weights}")
        for name in ("alpha", "beta", "tv_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"{name}: expected a non-negative weight, found {getattr(self, name)}"
                )


# ---------------------------------------------------------------------------------------
# The benchmark.


def mark_incomplete(rows: list[dict[str, Any]], asked: dict[int, int]) -> list[str]:
    """Flags (``row["incomplete"] = True``) and describes rows that ran fewer iterations
    than ``asked[size]``: an L-BFGS whose line search found no decrease stops early, and
    its rates then cover less work than the other side's."""
    notes = []
    for row in rows:
        steps = asked[row["size"]]
        row["incomplete"] = row["iterations"] < steps
        if row["incomplete"]:
            notes.append(
                f"INCOMPLETE RUN: {row['name']} at {row['size']} px ran {row['iterations']} of "
                f"{steps} iterations (its L-BFGS stopped: the line search found no decrease), "
                "so the ratios at that size do not compare the same work."
            )
    return notes


def run_benchmark(
    config: BenchConfig,
    log: Log | None = None,
    on_size: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measures both implementations at every size; returns all numbers as a JSON-able dict.

    Args:
      config: what to measure; `None` fields are filled by `BenchConfig.resolve`.
      log: progress sink (default: print to stderr).
      on_size: called with the result so far after each size but the last (its notes say
        which sizes are missing), so that a run cut short keeps what it finished.

    Returns:
      {"config", "device", "images", "network", "check" (the first algorithm's), "checks"
      (one per algorithm), "rows": [{"size", "key", "name",
      "iterations", "evaluations", "iterations_per_s", "evaluations_per_s",
      "flops_per_eval", "speedup_iterations", "speedup_evaluations", ...}], "notes"}.
    """
    log = log or stderr_log
    cfg = config.resolve()
    budget = xla_cpu.tuning_budget()
    xla_cpu.set_tuning_budget(cfg.tune_budget_s)
    try:
        return _run(cfg, log, on_size)
    finally:
        xla_cpu.set_tuning_budget(budget)


def _run(cfg: BenchConfig, log: Log, on_size) -> dict[str, Any]:
    notes: list[str] = []
    device = describe_devices()
    use_torch = cfg.use_torch and torch_reference.torch_importable()
    if cfg.use_torch and not use_torch:
        notes.append("PyTorch rows skipped: `import torch` failed.")
    torch_device = None
    if use_torch:
        found = torch_reference.torch_device(notes, num_threads=cfg.torch_threads)
        if found is not None:
            torch_device, device["torch"] = found
            if cfg.torch_channels_last:
                notes.append("PyTorch activations in torch.channels_last (the image is NCHW).")

    # The network is normalised on the images at the smallest size; the same parameters
    # serve every size and both implementations.
    content, style, image_desc = load_images(min(cfg.sizes), cfg.seed)
    jax_loss, params, network = network_and_loss(cfg, np.stack([content, style]))
    torch_loss = None
    if torch_device is not None:
        torch_loss = torch_reference.style_loss_like(
            jax_loss, params, device=torch_device, channels_last=cfg.torch_channels_last
        )
    log(
        f"style transfer on {device['jax']['platform']} ({device['jax']['device_kind']}), "
        f"{cfg.optimizer}, sizes {cfg.sizes}, iterations {cfg.iterations}; {network}"
    )

    # The equal-work checks run after the timings (below): under "tune" the check's image
    # size has shapes of its own to measure, and a capped tuning budget (and a run's time
    # limit) should go to the sizes that are timed.
    checks: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def result(partial: str | None = None) -> dict[str, Any]:
        return _result_of(cfg, device, image_desc, network, checks, rows, notes, partial)

    for done, (size, steps) in enumerate(zip(cfg.sizes, cfg.iterations), 1):
        log(f"== {size}x{size}, {steps} iteration(s)")
        rows += _measure_size(cfg, size, steps, jax_loss, params, torch_loss, log)
        if on_size is not None and done < len(cfg.sizes):
            missing = ", ".join(str(s) for s in cfg.sizes[done:])
            on_size(
                result(
                    f"PARTIAL RESULT: sizes {missing} px not measured yet"
                    + ("; the equal-work checks run after the last size." if torch_loss else ".")
                )
            )

    if torch_loss is not None:
        references = check_references(jax_loss, params, torch_loss, cfg.check_size, cfg.seed)
        for algorithm in cfg.conv_algorithms:
            check = equal_work_check(
                jax_loss, params, references, cfg.check_size, cfg.seed, log, algorithm
            )
            checks.append(check)
            if not check["passed"]:
                notes.append(
                    f"EQUAL-WORK CHECK FAILED (conv {algorithm}): gen_jax's loss or gradient "
                    "is further from the float64 reference than both the tolerance and "
                    "PyTorch's own; the timings may compare different computations."
                )
    return result()


def network_and_loss(cfg: BenchConfig, images: np.ndarray) -> tuple[PerceptualLoss, dict, str]:
    """(gen_jax objective, VGG19 parameters, the network's description) of ``cfg``, the
    random network normalised on ``images``."""
    module, params, network = build_network(
        images,
        weights=cfg.weights,
        pooling=cfg.pooling,
        seed=cfg.seed,
        conv_algorithms=cfg.conv_algorithms,
    )
    loss = gatys_loss(module, alpha=cfg.alpha, beta=cfg.beta, tv_weight=cfg.tv_weight)
    return loss, params, network


def jax_runners(
    cfg: BenchConfig, loss: PerceptualLoss, x0, args: tuple, steps: int
) -> list[JaxStyleRunner]:
    """One gen_jax runner per algorithm of ``cfg``, ``steps`` iterations from ``x0`` with
    ``args = (params, targets, grams)``; the first one counts the FLOPs."""
    several = len(cfg.conv_algorithms) > 1
    runners = []
    for i, algorithm in enumerate(cfg.conv_algorithms):
        key, name = jax_row_key(algorithm, several)
        runners.append(
            JaxStyleRunner(
                loss,
                x0,
                args,
                steps=steps,
                optimizer=cfg.optimizer,
                precision=cfg.precision,
                algorithm=algorithm,
                key=key,
                name=name,
                count_flops=i == 0,
            )
        )
    return runners


def _measure_size(cfg, size, steps, jax_loss, params, torch_loss, log) -> list[dict[str, Any]]:
    """The rows of one size: every gen_jax algorithm and PyTorch, repeats interleaved."""
    content, style, _ = load_images(size, cfg.seed)
    targets, grams = jax_targets(jax_loss, params, content, style, cfg.precision)
    runners: list[Any] = jax_runners(cfg, jax_loss, content, (params, targets, grams), steps)
    if torch_loss is not None:
        # Each side's targets by its own implementation of the network.
        torch_loss.set_target_images(content, style, cfg.precision == "highest")
        runners.append(
            TorchStyleRunner(
                torch_loss, content, steps=steps, optimizer=cfg.optimizer, precision=cfg.precision
            )
        )

    def logged(runner, rep: int, elapsed: float) -> None:
        info = runner.info
        log(
            f"[{runner.key}] {size} px repeat {rep + 1}/{cfg.repeats}: {elapsed:.2f} s, "
            f"{info['iterations']} it, {info['evaluations']} evals, "
            f"{info['iterations'] / elapsed:.3f} it/s"
        )

    seconds = interleave(runners, cfg.repeats, log, on_repeat=logged)
    flops, platform = (runners[0].info[k] for k in ("flops_per_eval", "flops_platform"))
    rows = []
    for runner in runners:
        median = statistics.median(seconds[runner.key])
        info = {
            k: v for k, v in runner.info.items() if k not in ("flops_per_eval", "flops_platform")
        }
        rows.append(
            {
                "size": size,
                "key": runner.key,
                "name": runner.name,
                "seconds": median,
                "repeat_seconds": seconds[runner.key],
                "iterations_per_s": info["iterations"] / median,
                "evaluations_per_s": info["evaluations"] / median,
                "flops_per_eval": flops,
                "flops_platform": platform,
                "achieved_flops_per_s": flops * info["evaluations"] / median,
                **info,
            }
        )
    ratios = {f"speedup_{what}": f"{what}_per_s" for what in ("iterations", "evaluations")}
    if add_ratios(rows, TORCH_EAGER, ratios) is not None:
        for row in rows:
            row["loss_start_rel_diff"] = relative(row["loss_start"], rows[0]["loss_start"])
    return rows


def _result_of(cfg, device, image_desc, network, checks, rows, notes, partial=None):
    """run_benchmark's JSON-able result: the measurements so far and every note."""
    notes = list(notes)
    if partial:
        notes.insert(0, partial)
    if cfg.precision == "highest":
        notes.append(
            "precision: float32 matmuls and convolutions on both sides in the timings "
            "and in the targets (`optimize_image(precision='highest')`; PyTorch with TF32 "
            "off in cuDNN and matmuls)."
        )
    else:
        notes.append(
            "precision: each framework's default in the timings (on GPUs TF32 convolutions in "
            "cuDNN and XLA, and TF32 matmuls in XLA; on the CPU float32 either way)."
        )
    notes += mark_incomplete(rows, dict(zip(cfg.sizes, cfg.iterations)))
    if any(r.get("timed_compile_events") for r in rows):
        notes.append("gen_jax recompiled during timed runs (see timed_compile_events).")
    return {
        "config": dataclasses.asdict(cfg),
        "device": device,
        "images": image_desc,
        "network": network,
        "check": checks[0] if checks else None,
        "checks": checks,
        "rows": rows,
        "conv_choices": conv_choices() if "tune" in cfg.conv_algorithms else [],
        "notes": notes,
    }


def conv_choices() -> list[dict[str, Any]]:
    """`xla_cpu.tuning_records` of this process as JSON-able rows: each convolution shape
    measured for ``conv_algorithm="tune"``, the choice, and every candidate's seconds."""
    return [
        {
            "input": list(r["lhs_shape"]),
            "kernel": list(r["rhs_shape"]),
            "precision": list(r["precision"]),
            "choice": r["choice"].name,
            "seconds": r["seconds"],
            "failed": r.get("failed", {}),
            "deviation": r.get("deviation", {}),
            "skipped": r.get("skipped"),
            "measure_s": r["measure_s"],
        }
        for r in xla_cpu.tuning_records()
    ]


# ---------------------------------------------------------------------------------------
# Command line.


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, found {text!r}"
        ) from e


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _parse_args(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.synthesis_speed",
        description="Gatys style transfer through VGG19: gen_jax vs PyTorch eager.",
    )
    p.add_argument("--sizes", type=_int_list, default=(256, 512), help="square image sizes")
    p.add_argument(
        "--iterations",
        type=_int_list,
        default=None,
        help="timed iterations per run, one count or one per size (default: ~12 x (256/S)^2 "
        "on CPU, at least 2; ~200 x (256/S)^2 otherwise)",
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="highest",
        help="matmuls and convolutions in the timed runs: highest (float32 on both sides) or "
        "default (each framework's own: TF32 on GPUs; the same float32 on the CPU)",
    )
    p.add_argument(
        "--weights", default=None, help="VGG19 weights (.h5 Keras notop or torchvision .pth)"
    )
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument(
        "--conv-algorithm",
        "--conv-algorithms",
        dest="conv_algorithms",
        type=_str_list,
        default=("auto",),
        help=f"gen_jax's VGG convolutions, one of {', '.join(CONV_ALGORITHMS)}, or several "
        "comma-separated for one gen_jax row each against the same PyTorch runs (default "
        "auto: Winograd on the CPU's wide layers; tune: each layer's algorithm measured on "
        "this machine, listed in the output)",
    )
    p.add_argument(
        "--tune-budget-s",
        dest="tune_budget_s",
        type=float,
        default=None,
        help="cap on conv_algorithm tune's measuring time; shapes met after it take auto's "
        "rule unmeasured (default: no cap)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default: 3 on CPU, 5 otherwise)"
    )
    p.add_argument("--check_size", type=int, default=64, help="image size of the equal-work check")
    p.add_argument("--alpha", type=float, default=1.0, help="content weight")
    p.add_argument("--beta", type=float, default=1e3, help="style weight")
    p.add_argument("--tv_weight", type=float, default=1.0, help="total-variation weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", dest="use_torch", action="store_false", help="skip PyTorch")
    p.add_argument(
        "--torch-contiguous",
        dest="torch_channels_last",
        action="store_false",
        help="PyTorch activations in NCHW contiguous format instead of channels_last",
    )
    p.add_argument(
        "--torch-threads",
        dest="torch_threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) (default: leave PyTorch's default pool)",
    )
    p.add_argument(
        "--out", default=None, help="write the markdown table here, and the JSON beside it"
    )
    cfg, args = parse_config(p, BenchConfig, argv)
    check_out_paths(p, out=args.out)
    return cfg, args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: runs the benchmark, prints the table, writes --out (.md) and its .json."""
    config, args = _parse_args(argv)

    def save(result: dict[str, Any]) -> str:
        table = format_markdown(result)
        write_report(args.out, table, result)
        return table

    result = run_benchmark(config, on_size=save if args.out else None)
    print(save(result))
    return result


if __name__ == "__main__":
    main()
