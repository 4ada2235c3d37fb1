"""End to end: experiments.train_classifier runs its --smoke config, writes its outputs,
exports weights that the loader reads back, resumes, and refuses bad options untouched."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

from recorded import assert_matches_recorded

from experiments import train_classifier
from gen_jax.checkpoint import Checkpointer
from gen_jax.data import load_fashion_mnist
from gen_jax.models.classifier import load_classifier_weights


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mnist_smoke_run_export_and_resume(tmp_path):
    workdir, export_dir = tmp_path / "run", tmp_path / "assets"
    smoke = train_classifier.resolve(
        dataclasses.replace(train_classifier.get_smoke_config(), dataset="mnist")
    )
    results = train_classifier.run(smoke, str(workdir), export_dir=export_dir, command="cmd")

    for name in ("config.json", "metrics.jsonl", "eval.jsonl", "results.json"):
        assert (workdir / name).is_file(), f"missing {name}"
    assert json.loads((workdir / "results.json").read_text()) == json.loads(json.dumps(results))
    assert results["steps"] == smoke.steps == 4 and results["test_split"] == "heldout"
    assert results["num_test"] == smoke.limit_eval and 0.0 <= results["test_accuracy"] <= 1.0
    rows = _rows(workdir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4]
    for row in rows:
        assert {"train/loss", "train/accuracy", "train/grad_norm"} <= set(row)
        assert all(math.isfinite(v) for v in row.values())
    assert [r["step"] for r in _rows(workdir / "eval.jsonl")] == [2, 4]
    assert Checkpointer(workdir / "checkpoints").latest_step() == 4

    module, variables, meta = load_classifier_weights(export_dir / "mnist.npz")
    assert tuple(module.widths) == smoke.widths and module.hidden == smoke.hidden
    assert meta["accuracy"] == results["test_accuracy"] and meta["split"] == "heldout"
    assert meta["command"] == "cmd"
    logits = module.apply(variables, np.zeros((2, 28, 28, 1), np.float32))
    assert logits.shape == (2, 10)

    # A rerun of the finished run does no more steps; a longer one is refused: the cosine
    # learning rate spans exactly `steps`.
    again = train_classifier.run(smoke, str(workdir))
    assert again["steps"] == 4 and again["steps_this_session"] == 0
    with pytest.raises(ValueError, match="schedule spans exactly those steps"):
        train_classifier.run(dataclasses.replace(smoke, steps=6), str(workdir))
    assert [r["step"] for r in _rows(workdir / "metrics.jsonl")] == [2, 4]


def test_fashion_mnist_smoke_through_the_command_line(tmp_path):
    try:
        load_fashion_mnist("test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed (dataset-fashion-mnist): {e}")
    workdir = tmp_path / "fm"
    results = train_classifier.main(["--workdir", str(workdir), "--smoke"])
    assert_matches_recorded("classifier_fashion", workdir, results)
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["dataset"] == "fashion_mnist" and saved["test_split"] == "test"
    assert saved == json.loads(json.dumps(results))
    assert json.loads((workdir / "config.json").read_text())["max_shift"] == 0


def test_unknown_dataset_is_refused_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="cifar10"):
        train_classifier.main(["--workdir", str(workdir), "--smoke", "--dataset", "cifar10"])
    assert not workdir.exists()
