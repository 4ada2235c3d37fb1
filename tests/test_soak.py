"""Soak: a run killed with SIGKILL again and again, resumed each time, ends bit-identical to
one that was never interrupted, for a GAN (gan_mixture) and a likelihood model (the
classifier's one-player step). The first kill lands while a checkpoint is being written.

Each case runs the experiment's command line in a child process: once straight through,
then killed at least `KILLS` times (the first as soon as orbax's temporary checkpoint folder
appears, the others at random moments, drawn with a fixed seed) and rerun on the same
folder until it finishes. Compared: every array of the final checkpoint (bit for bit), every
metrics.jsonl line and the headline numbers of results.json (timings left out).

Marked slow (about a minute per case on a 2-core CPU: each restart imports JAX and loads
its compiled programs); `.ci/run` runs it as a step of its own.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = Path(__file__).resolve().parent.parent
KILLS = 5

CASES = {
    # 40 steps in chunks of 2, a checkpoint after each; wider nets so that a checkpoint
    # (about 6 MB) takes long enough to write that the first kill can land inside it.
    "gan": [
        "experiments.gan_mixture",
        "--smoke",
        "--g_hidden",
        "384,384",
        "--d_hidden",
        "384,384",
        "--steps",
        "40",
        "--chunk_steps",
        "2",
        "--checkpoint_every",
        "2",
        "--sample_every",
        "0",
    ],
    "likelihood": [
        "experiments.train_classifier",
        "--smoke",
        "--dataset",
        "mnist",
        "--hidden",
        "1024",
        "--steps",
        "40",
        "--chunk_steps",
        "2",
        "--checkpoint_every",
        "2",
        "--eval_every",
        "0",
    ],
}
_TIMING = {"time", "steps_per_s"}
_RESULT_TIMING = {
    "seconds_this_session",
    "steps_this_session",
    "steps_per_s",
    "images_per_s",
    "train_seconds",
    "device",
}


def _start(args, workdir):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", *args[:1], "--workdir", str(workdir), *args[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _writing(workdir: Path) -> bool:
    ckpt = workdir / "checkpoints"
    return ckpt.is_dir() and any(".orbax-checkpoint-tmp" in p.name for p in ckpt.iterdir())


def _lines(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _run_killed(args, workdir: Path) -> list[str]:
    """Runs `args` on `workdir` until it finishes, SIGKILLing it KILLS times; returns what
    each kill interrupted.

    The first kill comes as soon as a checkpoint is being written; each later one once the
    run has logged 1 to 3 more chunks than it had at its start, plus a random 0 to 0.2 s
    (so it lands in a chunk, in a save or between them). 20 chunks leave room for 5 kills.
    """
    rng = random.Random(0)
    kills = []
    while True:
        proc = _start(args, workdir)
        if len(kills) < KILLS:
            target = _lines(workdir) + rng.randint(1, 3)
            delay = rng.uniform(0.0, 0.2)
            deadline = time.monotonic() + 300.0
            while proc.poll() is None and time.monotonic() < deadline:
                if not kills and _writing(workdir):
                    break  # The first kill: inside a checkpoint write.
                if kills and _lines(workdir) >= target:
                    time.sleep(delay)
                    break
                time.sleep(0.0005 if not kills else 0.005)
            if proc.poll() is None:
                during_write = _writing(workdir)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append("checkpoint write" if during_write else "training")
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        return kills


def _final_arrays(workdir: Path) -> dict:
    manager = ocp.CheckpointManager(os.fspath(workdir / "checkpoints"))
    step = manager.latest_step()
    arrays = manager.restore(step, args=ocp.args.StandardRestore())
    manager.close()
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree.leaves_with_path(arrays)}


def _rows(workdir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in _TIMING} for r in rows]


def _results(workdir: Path) -> dict:
    results = json.loads((workdir / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in _RESULT_TIMING}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_run_ends_bit_identical(tmp_path, case):
    args = CASES[case]
    straight = _start(args, tmp_path / "straight")
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err.decode()[-3000:]

    kills = _run_killed(args, tmp_path / "killed")
    assert len(kills) >= KILLS and kills[0] == "checkpoint write", kills

    want, got = _final_arrays(tmp_path / "straight"), _final_arrays(tmp_path / "killed")
    assert sorted(want) == sorted(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "straight")
    assert _results(tmp_path / "killed") == _results(tmp_path / "straight")
