"""Records the --smoke numbers that tests/experiments/recorded.py compares against.

    .venv/bin/python tests/experiments/data/record_smoke_results.py OUT.json

Runs each case of CASES in a fresh temporary folder and writes every metrics.jsonl line
and results.json's numbers (timings left out) to OUT.json. `pre_engine_smoke.json` was made
by this script at commit 3ea6d04; rerun it only to record a change that is meant, and say
why in the commit.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from experiments import dcgan, gan_mixture, train_classifier

CASES = {
    "dcgan": (dcgan, []),
    "dcgan_ncritic2_smooth": (
        dcgan,
        ["--n_critic", "2", "--label_smoothing", "0.1", "--steps", "6"],
    ),
    "gan_mixture_ring": (gan_mixture, []),
    "gan_mixture_grid_minimax_pack1_nor1": (
        gan_mixture,
        ["--mixture", "grid", "--loss", "minimax", "--pack", "1", "--r1_gamma", "0"]
        + ["--n_critic", "2"],
    ),
    "classifier_fashion": (train_classifier, []),
    "classifier_mnist": (train_classifier, ["--dataset", "mnist"]),
}
_TIMING = {"time", "steps_per_s", "seconds_this_session", "images_per_s", "device"}
_TIMING |= {"train_seconds"}


def main(out: str) -> None:
    commit = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).decode()
    cases = {}
    for name, (module, extra) in CASES.items():
        workdir = tempfile.mkdtemp(prefix=name)
        results = module.main(["--workdir", workdir, "--smoke", *extra])
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [{k: v for k, v in json.loads(line).items() if k not in _TIMING} for line in f]
        results = {k: v for k, v in results.items() if k not in _TIMING}
        cases[name] = {"argv": ["--smoke", *extra], "metrics": rows, "results": results}
    with open(out, "w") as f:
        json.dump({"recorded_at": commit.strip(), "cases": cases}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
