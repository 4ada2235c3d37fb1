"""Runs gan_mixture over several seeds on the ring and the grid and writes the results table.

    python -m experiments.gan_mixture_sweep --workdir runs/mixture_sweep --seeds 0,1,2,3,4

Each (mixture, seed) run lives in its own sub-folder (rerunning resumes or reuses it);
the table, averaged over seeds as PacGAN reports it, goes to WORKDIR/table.md and
WORKDIR/table.json. Other options are gan_mixture's and apply to every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

from experiments import gan_mixture
from gen_jax import config as config_lib

# PacGAN (arXiv:1712.04086), Table 1/2: the plain GAN's modes and high-quality percentage.
PACGAN_GAN_BASELINE = {"ring": (6.3, 98.2), "grid": (17.3, 94.8)}


def summarize(rows: list[dict]) -> dict:
    """Mean and std over seeds of modes, high-quality % and reverse KL, per mixture."""
    out = {}
    for mixture in sorted({r["mixture"] for r in rows}):
        rs = [r for r in rows if r["mixture"] == mixture]
        modes = np.array([r["modes"] for r in rs], float)
        hq = 100 * np.array([r["high_quality"] for r in rs])
        kl = np.array([r["reverse_kl"] for r in rs])
        out[mixture] = {
            "num_modes": rs[0]["num_modes"],
            "seeds": [r["seed"] for r in rs],
            "modes_mean": float(modes.mean()),
            "modes_std": float(modes.std()),
            "high_quality_mean": float(hq.mean()),
            "high_quality_std": float(hq.std()),
            "reverse_kl_mean": float(kl.mean()),
        }
    return out


def markdown(summary: dict, command: str) -> str:
    lines = [
        "| mixture | modes (mean ± std) | high-quality % | reverse KL | seeds | PacGAN's GAN |",
        "|---|---|---|---|---|---|",
    ]
    for m, s in summary.items():
        base = PACGAN_GAN_BASELINE.get(m)
        lines.append(
            f"| {m} | {s['modes_mean']:.1f} ± {s['modes_std']:.1f} of {s['num_modes']} "
            f"| {s['high_quality_mean']:.1f} ± {s['high_quality_std']:.1f} "
            f"| {s['reverse_kl_mean']:.3f} | {len(s['seeds'])} "
            f"| {f'{base[0]} / {base[1]} %' if base else ''} |"
        )
    return "\n".join(lines) + f"\n\nMade by: `{command}`\n"


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--seeds", default="0,1,2,3,4")
    pre.add_argument("--mixtures", default="ring,grid")
    known, rest = pre.parse_known_args(argv)
    cfg, workdir = config_lib.parse_args(
        gan_mixture.get_config, gan_mixture.get_smoke_config, rest, __doc__
    )
    seeds = [int(s) for s in known.seeds.split(",") if s.strip()]
    mixtures = [m.strip() for m in known.mixtures.split(",") if m.strip()]
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for mixture in mixtures:
        for seed in seeds:
            run_cfg = dataclasses.replace(cfg, mixture=mixture, seed=seed)
            rows.append(gan_mixture.run(run_cfg, os.path.join(workdir, f"{mixture}_seed{seed}")))
            r = rows[-1]
            print(
                f"{mixture} seed {seed}: {r['modes']}/{r['num_modes']} modes, "
                f"{100 * r['high_quality']:.1f}% high quality",
                flush=True,
            )
    summary = summarize(rows)
    command = "python -m experiments.gan_mixture_sweep " + " ".join(argv)
    table = markdown(summary, command)
    with open(os.path.join(workdir, "table.md"), "w") as f:
        f.write(table)
    config_lib.write_json_atomic(
        os.path.join(workdir, "table.json"), {"summary": summary, "runs": rows, "command": command}
    )
    print(table)
    return summary


if __name__ == "__main__":
    main()
