"""The markdown of `benchmarks.step_speed`'s result: the table and the facts under it.

It reads the JSON-able result only, so a saved ``FILE.json`` renders again with
``format_markdown(json.load(open("FILE.json")))``.
"""

from __future__ import annotations

from typing import Any

from benchmarks.machine import format_cpu, format_jax, format_torch
from benchmarks.report import fact_lines, fmt_ratio, fmt_spread, table
from benchmarks.torch_reference import DCGAN_ARCHS

__all__ = ["format_markdown"]


def format_markdown(result: dict[str, Any]) -> str:
    """The comparison table with its device, size and FLOP context."""
    cfg, dev = result["config"], result["device"]
    size, channels = cfg["image_size"], DCGAN_ARCHS[cfg["image_size"]][0]
    flops = result["flops_per_step"]
    header = ("implementation", "ms/step", "repeats min-max", "images/s", "vs PyTorch eager",
              "achieved GFLOP/s")  # fmt: skip
    cells = [
        (
            row["name"],
            f"{row['ms_per_step']:.1f}",
            fmt_spread(row["repeat_ms_per_step"], 1),
            f"{row['images_per_s']:.1f}",
            fmt_ratio(row["speedup_vs_torch_eager"]),
            f"{row['achieved_flops_per_s'] / 1e9:.1f}",
        )
        for row in result["rows"]
    ]
    lines = [
        f"## DCGAN train step, {size}x{size}x{channels}, batch {cfg['batch_size']}",
        "",
        *table(header, cells, "l" + "r" * (len(header) - 1)),
    ]
    facts = [format_jax(dev["jax"])]
    if "torch" in dev:
        facts.append(format_torch(dev["torch"]))
    facts += [
        format_cpu(dev["cpu"]),
        f"networks: ngf={cfg['ngf']}, ndf={cfg['ndf']}, nz={cfg['nz']}; one D update (real + "
        + "detached fake) and one G update (non-saturating) per step, Adam(2e-4, 0.5, 0.999)",
        f"model FLOPs per step: {flops / 1e9:.2f} GFLOP (XLA cost analysis of the single "
        + f"step compiled for the {result.get('flops_platform', 'cpu')} backend (XLA:GPU's "
        + "analysis leaves out cuDNN's convolutions), 2 per multiply-add, counting only "
        + "kernel taps inside the image, not on the zero padding; the same count for every "
        + "row)",
        f"timing: median of {cfg['repeats']} repeats of ~{cfg['steps']} steps, repeats "
        + f"interleaved across rows, after {cfg['warmup']} untimed warmup step(s); "
        + "ratio = images/s over PyTorch eager's",
    ]
    untimed = [
        f"{r['key']} compile {r['compile_s']:.1f} s" for r in result["rows"] if "compile_s" in r
    ]
    untimed += [
        f"{r['key']} first step {r['first_step_s']:.2f} s"
        for r in result["rows"]
        if "first_step_s" in r
    ]
    facts.append(f"untimed: {', '.join(untimed)}")
    facts += result["notes"]
    lines += fact_lines(facts)
    return "\n".join(lines) + "\n"
