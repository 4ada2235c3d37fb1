"""Numbers recorded before the move onto the training engine, and the check against them.

`data/pre_engine_smoke.json` holds the --smoke runs of DCGAN, gan_mixture and
train_classifier at commit 3ea6d04 (the last one before the engine), made by
`data/record_smoke_results.py`: every metrics.jsonl line and every headline number of
results.json except timings. The same options must give the same numbers today. On the
machine that recorded them they are bit-identical; the tolerance leaves room for another
CPU's vectorisation.
"""

import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "pre_engine_smoke.json"
RECORDED = json.loads(DATA.read_text())["cases"]
# What a run reports about its own speed or machine, never recorded.
_TIMING = {
    "time",
    "steps_per_s",
    "seconds_this_session",
    "images_per_s",
    "device",
    "train_seconds",
}


def _compare(want, got, path: str, problems: list[str]) -> None:
    if isinstance(want, dict):
        for key, value in want.items():
            if key in _TIMING:
                continue
            if key not in got:
                problems.append(f"{path}/{key}: missing")
            else:
                _compare(value, got[key], f"{path}/{key}", problems)
    elif isinstance(want, list):
        if len(want) != len(got):
            problems.append(f"{path}: {len(got)} items, recorded {len(want)}")
        for i, (w, g) in enumerate(zip(want, got)):
            _compare(w, g, f"{path}[{i}]", problems)
    elif isinstance(want, float) or isinstance(got, float):
        if not np.isclose(got, want, rtol=1e-4, atol=1e-6):
            problems.append(f"{path}: {got!r}, recorded {want!r}")
    elif want != got:
        problems.append(f"{path}: {got!r}, recorded {want!r}")


def assert_matches_recorded(case: str, workdir: Path, results: dict) -> None:
    """The run in `workdir` (its metrics.jsonl and `results`) equals the recorded `case`."""
    recorded = RECORDED[case]
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    problems: list[str] = []
    _compare(recorded["metrics"], rows, "metrics.jsonl", problems)
    _compare(recorded["results"], results, "results", problems)
    assert not problems, f"{case} ({' '.join(recorded['argv'])}) moved:\n" + "\n".join(problems)
