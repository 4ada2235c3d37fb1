"""The markdown of `benchmarks.synthesis_speed`'s result: the timing table, the equal-work
checks, the tuned convolutions and the facts under them.

Everything here reads the JSON-able result only (and, for the tuned convolutions' column
order, the tuner's list of candidates), so a saved ``FILE.json`` renders again with
``format_markdown(json.load(open("FILE.json")))``.
"""

from __future__ import annotations

from typing import Any

from benchmarks.machine import format_cpu, format_environment, format_jax, format_torch
from benchmarks.report import fact_lines, fmt_ratio, fmt_spread, relative, table
from benchmarks.synthesis_check import CHECK_PIXEL_TOL
from benchmarks.synthesis_work import (
    ADAM_LEARNING_RATE,
    LBFGS_HISTORY,
    MAX_LINESEARCH_STEPS,
    TORCH_EAGER,
)
from gen_jax.nn import xla_cpu

__all__ = ["format_checks", "format_conv_choices", "format_markdown"]


def format_markdown(result: dict[str, Any]) -> str:
    """The comparison table with its device, work and FLOP context."""
    cfg, dev = result["config"], result["device"]
    opt = {"lbfgs": "L-BFGS", "adam": "Adam"}[cfg["optimizer"]]
    header = ("size", "implementation", "iterations", "evaluations", "s (median)",
              "repeats min-max", "iterations/s", "evaluations/s", "vs PyTorch (it/s)",
              "vs PyTorch (evals/s)", "achieved GFLOP/s", "loss start -> end")  # fmt: skip
    cells = [
        (
            f"{row['size']}",
            row["name"],
            f"{row['iterations']}",
            f"{row['evaluations']}",
            f"{row['seconds']:.2f}",
            fmt_spread(row["repeat_seconds"], 2),
            f"{row['iterations_per_s']:.3f}",
            f"{row['evaluations_per_s']:.3f}",
            fmt_ratio(row["speedup_iterations"]),
            fmt_ratio(row["speedup_evaluations"]),
            f"{row['achieved_flops_per_s'] / 1e9:.1f}",
            f"{row['loss_start']:.6g} -> {row['loss_end']:.6g}",
        )
        for row in result["rows"]
    ]
    lines = [
        f"## Gatys style transfer through VGG19, {opt}",
        "",
        *table(header, cells, "rl" + "r" * (len(header) - 2)),
    ]

    checks = result.get("checks") or ([result["check"]] if result["check"] else [])
    if checks:
        lines += ["", *format_checks(checks, result["rows"])]

    lines += format_conv_choices(result.get("conv_choices", []))
    jd, cpu = dev["jax"], dev["cpu"]
    facts = [format_jax(jd) + f"; XLA:CPU uses the {cpu['schedulable_cores']} schedulable cores"]
    if "torch" in dev:
        facts.append(
            format_torch(dev["torch"])
            + (" (set by --torch-threads)" if cfg["torch_threads"] else " (its default)")
        )
    facts += [
        format_cpu(cpu),
        format_environment(dev.get("environment", {})),
        f"network: {result['network']}; images: {result['images']}",
        (
            f"objective: alpha={cfg['alpha']:g} x content(relu4_2) + beta={cfg['beta']:g} x "
            "mean of the Gram losses of relu1_1..relu5_1 (per-position Grams) + "
            f"tv_weight={cfg['tv_weight']:g} x squared TV; start at the content image"
        ),
    ]
    if cfg["optimizer"] == "lbfgs":
        facts.append(
            f"L-BFGS: history {LBFGS_HISTORY}, strong-Wolfe line search of at most "
            f"{MAX_LINESEARCH_STEPS} evaluations per iteration (optax zoom line search in "
            "`optimize_image`; `torch.optim.LBFGS(line_search_fn='strong_wolfe')`, all "
            "iterations in one `step` call, tolerances 0); evaluations = loss-and-gradient "
            "evaluations including the one at the start image; the two line searches differ "
            "in their first trial step and bracketing, hence different evaluation counts"
        )
    else:
        facts.append(
            f"Adam(lr={ADAM_LEARNING_RATE}): one loss-and-gradient evaluation per iteration, "
            "plus one forward pass at the final image on both sides"
        )
    flops = {r["size"]: r["flops_per_eval"] for r in result["rows"]}
    facts.append(
        "FLOPs of one loss-and-gradient evaluation (XLA cost analysis of `value_and_grad` "
        f"with direct convolutions compiled for the {result['rows'][0]['flops_platform']} "
        "backend (XLA:GPU's analysis leaves out cuDNN's convolutions), 2 per multiply-add, "
        "taps on the zero padding not counted; used for every row, so achieved GFLOP/s is "
        "nominal where Winograd does fewer multiplications): "
        + ", ".join(f"{s} px {f / 1e9:.1f} GFLOP" for s, f in flops.items())
    )
    facts.append(
        f"timing: median of {cfg['repeats']} repeats of the whole optimisation (same start, "
        "same work each repeat), repeats interleaved across implementations; ratios are "
        "gen_jax over PyTorch eager at the same size"
    )
    untimed = []
    for r in result["rows"]:
        if "compile_s" in r:
            tuning = f"tuning {r['tune_s']:.1f} s, " if "tune_s" in r else ""
            untimed.append(
                f"{r['size']} px {r['key']} {tuning}compile {r['compile_s']:.1f} s (first call "
                f"{r['first_call_s']:.1f} s)"
            )
        elif "first_call_s" in r:
            untimed.append(f"{r['size']} px PyTorch warm-up {r['first_call_s']:.1f} s")
    facts.append("untimed: " + "; ".join(untimed))
    facts += result["notes"]
    lines += fact_lines(facts)
    return "\n".join(lines) + "\n"


def _fmt_pixels_off(check: dict[str, Any], side: str) -> str:
    count, box = check[f"pixels_off_{side}"], check[f"pixels_off_box_{side}"]
    if box is None:
        return f"{count}"
    return f"{count} (rows {box[0]}-{box[1]}, columns {box[2]}-{box[3]})"


def format_checks(checks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The equal-work checks' table (one block of rows per gen_jax algorithm) and the loss
    at each size's start image on both sides."""
    several = len(checks) > 1
    status = "passed" if all(c["passed"] for c in checks) else "FAILED"
    first = checks[0]
    intro = (
        f"Equal-work check ({status}): one loss-and-gradient evaluation at "
        f"{first['size']}x{first['size']} (the content image plus uniform noise of "
        "+-0.1), highest matmul/conv precision on both sides, targets included"
        + (", for each gen_jax convolution algorithm. " if several else ". ")
        + "The reference is the same objective in float64 (PyTorch's twin on the CPU). "
        f"It passes when gen_jax's loss is within {first['rtol']:g} and its gradient "
        f"within {first['grad_rtol']:g} (relative L2) of the float64 ones, or no further "
        "from them than PyTorch's. *Pixels off*: pixels whose gradient is further from "
        f"float64's than {CHECK_PIXEL_TOL:g} of its largest entry, and the box around them; "
        "rounding that moves a max-pool or ReLU choice between near-tied inputs shows "
        "as one small box."
    )
    header = ("quantity", "gen_jax", "PyTorch", "float64", "gen_jax vs PyTorch",
              "gen_jax vs float64", "PyTorch vs float64")  # fmt: skip
    cells = []
    for check in checks:
        label = f" (conv {check['conv_algorithm']})" if several else ""
        failed = "" if check["passed"] or not several else " FAILED"
        cells += [
            (
                f"loss{label}{failed}",
                f"{check['loss_gen_jax']:.9g}",
                f"{check['loss_torch']:.9g}",
                f"{check['loss_float64']:.9g}",
                f"{check['loss_rel_diff']:.1e}",
                f"{check['loss_error_gen_jax']:.1e}",
                f"{check['loss_error_torch']:.1e}",
            ),
            (
                f"gradient, relative L2{label}",
                "",
                "",
                "",
                f"{check['grad_rel_l2_diff']:.1e}",
                f"{check['grad_error_gen_jax']:.1e}",
                f"{check['grad_error_torch']:.1e}",
            ),
            (
                f"pixels off (of {check['pixels']}){label}",
                _fmt_pixels_off(check, "gen_jax"),
                _fmt_pixels_off(check, "torch"),
                *[""] * 4,
            ),
        ]
    for size in dict.fromkeys(row["size"] for row in rows):
        size_rows = [row for row in rows if row["size"] == size]
        torch_row = next((r for r in size_rows if r["key"] == TORCH_EAGER), None)
        if torch_row is None:
            continue
        t = torch_row["loss_start"]
        for row in size_rows:
            if row is torch_row:
                continue
            label = f" ({row['key']})" if several else ""
            j = row["loss_start"]
            cells.append(
                (
                    f"loss at the start image, {size} px{label}",
                    f"{j:.9g}",
                    f"{t:.9g}",
                    "",
                    f"{relative(j, t):.1e}",
                    "",
                    "",
                )
            )
    return [intro, "", *table(header, cells, "l" + "r" * 6)]


def format_conv_choices(choices: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per tuned convolution shape, its candidates in ms."""
    if not choices:
        return []
    # Columns in the order the tuner tries the candidates.
    order = [c.name for c in xla_cpu.candidates(max(xla_cpu.TILES))]
    found = {n for c in choices for n in (*c["seconds"], *c.get("failed", {}))}
    names = [n for n in order if n in found] + sorted(found - set(order))
    total = sum(c["measure_s"] for c in choices)
    intro = (
        "Convolutions chosen by `conv_algorithm='tune'` (`gen_jax.nn.xla_cpu`): ms per "
        "forward pass and input gradient of conv + bias + ReLU, measured outside the "
        f"timed runs (the targets' and the check's shapes included; {total:.1f} s of "
        "measuring; *failed*: the candidate could not compile or run, see the JSON; the last "
        "column: the Winograd candidates' largest relative L2 distance from the direct "
        "convolution's output and input gradient, each candidate's in the JSON):"
    )
    cells = []
    for c in choices:
        failed = c.get("failed", {})
        ms = [
            f"{c['seconds'][n] * 1e3:.2f}"
            if n in c["seconds"]
            else "*failed*"
            if n in failed
            else ""
            for n in names
        ]
        chosen = c["choice"] + (" (auto's rule: tuning budget spent)" if c.get("skipped") else "")
        deviations = c.get("deviation") or {}
        worst = f"{max(deviations.values()):.1e}" if deviations else ""
        shape = "x".join(str(n) for n in c["input"])
        cells.append((shape, f"{c['kernel'][2]} -> {c['kernel'][3]}", chosen, *ms, worst))
    header = ("input NHWC", "C -> K", "chosen", *names, "Winograd vs direct")
    return ["", intro, "", *table(header, cells, "lll" + "r" * (len(names) + 1))]
