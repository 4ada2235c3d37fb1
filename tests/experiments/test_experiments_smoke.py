"""End to end: every experiment runs its --smoke config, writes its outputs, resumes from its
checkpoint, and refuses (touching nothing) to resume with a different model.

Each experiment is one test, so that under pytest-xdist its three runs stay on one worker.
"""

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

from recorded import assert_matches_recorded

from experiments import dcgan, gan_mixture
from gen_jax.checkpoint import Checkpointer
from gen_jax.config import _finite_or_none, config_to_dict, parse_args
from gen_jax.data import load_fashion_mnist


def _snapshot(workdir: Path) -> dict[str, str]:
    """Every file under `workdir` (checkpoints included) with the hash of its bytes."""
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }


def _metric_rows(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _assert_png(path: Path):
    assert path.is_file(), f"missing {path.name}"
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 8, path


def _run_resume_refuse(
    module, workdir: Path, *, more_steps, pictures, changed, recorded=None, options=()
):
    smoke = module.get_smoke_config()
    argv = ["--workdir", str(workdir), "--smoke", *options]

    # 1. The smoke run, with the numbers recorded before the training engine.
    results = module.main(argv)
    if recorded:
        assert_matches_recorded(recorded, workdir, results)
    assert results["steps"] == results["steps_this_session"] == smoke.steps
    for name in ("config.json", "metrics.jsonl", "results.json"):
        assert (workdir / name).is_file(), f"missing {name}"
    for name in ("curves.png", *pictures):
        _assert_png(workdir / name)
    assert sorted((workdir / "samples").glob("*.png")), "no sample grids under samples/"
    expected, _ = parse_args(module.get_config, module.get_smoke_config, argv)
    assert json.loads((workdir / "config.json").read_text()) == config_to_dict(expected)
    # Strict JSON: an infinite reverse KL (no high-quality sample yet) is written as null.
    saved = json.loads((workdir / "results.json").read_text())
    assert saved == json.loads(json.dumps(_finite_or_none(results)))
    rows = _metric_rows(workdir)
    assert [r["step"] for r in rows] == list(
        range(smoke.chunk_steps, smoke.steps + 1, smoke.chunk_steps)
    )
    for row in rows:
        assert {"d/loss", "g/loss", "d/grad_norm", "g/grad_norm"} <= set(row)
        assert all(math.isfinite(v) for v in row.values()), row
    assert Checkpointer(workdir / "checkpoints").latest_step() == smoke.steps

    # 2. A longer rerun resumes from the checkpoint.
    results = module.main(argv + ["--steps", str(more_steps)])
    assert results["steps"] == more_steps
    assert results["steps_this_session"] == more_steps - smoke.steps
    steps = [r["step"] for r in _metric_rows(workdir)]
    assert steps == sorted(set(steps)) and steps[-1] == more_steps
    assert json.loads((workdir / "config.json").read_text())["steps"] == more_steps
    assert Checkpointer(workdir / "checkpoints").latest_step() == more_steps

    # 3. A different model is refused before anything in the folder changes.
    before = _snapshot(workdir)
    option, value = changed
    with pytest.raises(ValueError, match=option):
        module.main(argv + ["--steps", str(more_steps), f"--{option}", value])
    assert _snapshot(workdir) == before
    return results


def test_gan_mixture_smoke_resume_and_refusal(tmp_path):
    results = _run_resume_refuse(
        gan_mixture,
        tmp_path / "ring",
        more_steps=25,
        pictures=("scatter.png",),
        changed=("g_hidden", "8"),
        # Constant: a cosine schedule spans --steps, so that run may not be extended.
        options=("--lr_schedule", "constant"),
    )
    assert results["num_modes"] == 8 and 0 <= results["modes"] <= 8
    assert 0.0 <= results["high_quality"] <= 1.0
    samples = np.load(tmp_path / "ring" / "samples.npy")
    assert samples.shape == (gan_mixture.get_smoke_config().eval_samples, 2)
    # The raw generator is scored on the same latents beside the EMA one.
    assert 0 <= results["raw_modes"] <= 8 and 0.0 <= results["raw_high_quality"] <= 1.0


def test_gan_mixture_default_gives_the_recorded_numbers_and_is_not_extended(tmp_path):
    argv = ["--workdir", str(tmp_path), "--smoke"]
    assert_matches_recorded("gan_mixture_ring", tmp_path, gan_mixture.main(argv))
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"schedule spans exactly those steps.*--lr_schedule"):
        gan_mixture.main(argv + ["--steps", "40"])
    assert _snapshot(tmp_path) == before


def test_gan_mixture_batch_norm_generator_maxout_discriminator_and_r1(tmp_path):
    argv = ["--workdir", str(tmp_path / "grid"), "--smoke", "--mixture", "grid"]
    options = ["--g_batch_norm", "true", "--d_maxout_pieces", "3", "--r1_gamma", "1.0"]
    results = gan_mixture.main(argv + options)
    assert results["num_modes"] == 25 and results["steps"] == gan_mixture.get_smoke_config().steps
    assert results["final_metrics"]["d/r1"] >= 0.0  # The penalty ran and is logged.
    # Batch-norm statistics are part of the state, and evaluation uses them (finite samples).
    assert np.isfinite(np.load(tmp_path / "grid" / "samples.npy")).all()


def test_gan_mixture_seeds_run_in_sub_folders_and_are_tabled(tmp_path):
    workdir = tmp_path / "sweep"
    argv = ["--workdir", str(workdir), "--smoke", "--seeds", "0,1"]
    summary = gan_mixture.main(argv)
    runs = [json.loads((workdir / f"ring_seed{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1]
    assert summary["runs"] == 2 and summary["seeds"] == [0, 1] and summary["num_modes"] == 8
    assert summary["modes_mean"] == np.mean([r["modes"] for r in runs])
    np.testing.assert_allclose(
        summary["high_quality_std"], 100 * np.std([r["high_quality"] for r in runs])
    )
    table = (workdir / "table.md").read_text()
    assert "| ring |" in table and "python -m experiments.gan_mixture" in table
    assert json.loads((workdir / "table.json").read_text())["summary"] == json.loads(
        json.dumps(summary)
    )
    # A rerun with one more seed reuses the finished runs and adds the new one.
    summary = gan_mixture.main(argv[:-1] + ["0,1,2"])
    assert summary["runs"] == 3
    again = json.loads((workdir / "ring_seed0" / "results.json").read_text())
    assert again["steps"] == runs[0]["steps"] and again["steps_this_session"] == 0
    assert again["modes"] == runs[0]["modes"] and again["reverse_kl"] == runs[0]["reverse_kl"]


def test_gan_mixture_in_bfloat16(tmp_path):
    results = gan_mixture.main(["--workdir", str(tmp_path), "--smoke", "--dtype", "bfloat16"])
    assert results["steps"] == gan_mixture.get_smoke_config().steps
    assert all(math.isfinite(v) for v in results["final_metrics"].values())
    assert np.isfinite(np.load(tmp_path / "samples.npy")).all()
    with pytest.raises(ValueError, match="--dtype"):
        gan_mixture.main(["--workdir", str(tmp_path / "b"), "--smoke", "--dtype", "float16"])


def test_gan_mixture_unknown_mixture_is_refused(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="spiral"):
        gan_mixture.main(["--workdir", str(workdir), "--smoke", "--mixture", "spiral"])
    assert not workdir.exists()


def _fashion_mnist_or_skip():
    try:
        load_fashion_mnist("test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed (dataset-fashion-mnist): {e}")


def test_dcgan_smoke_resume_and_refusal(tmp_path):
    _fashion_mnist_or_skip()
    results = _run_resume_refuse(
        dcgan,
        tmp_path / "dcgan",
        more_steps=5,  # 4 -> 5: one more step, a one-step chunk (cheap to compile)
        pictures=("samples.png", "real.png"),
        changed=("ngf", "8"),
        recorded="dcgan",
    )
    assert results["epochs"] > 0
    assert -1.0 <= results["sample_mean"] <= 1.0
    # End-of-run metrics of the EMA samples in the shipped classifier's feature space.
    n = dcgan.get_smoke_config().eval_samples
    assert results["num_samples"] == results["num_real"] == n
    assert math.isfinite(results["fmnist_cnn/frechet"]) and results["fmnist_cnn/frechet"] > 0
    for name in ("precision", "recall", "density", "coverage"):
        assert 0.0 <= results[f"fmnist_cnn/{name}"] <= (5.0 if name == "density" else 1.0)
    assert 1.0 <= results["classifier_score_mean"] <= 10.0


@pytest.mark.parametrize("option, value", [("image_size", "32"), ("eval_samples", "3")])
def test_dcgan_bad_option_is_refused(tmp_path, option, value):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=option):
        dcgan.main(["--workdir", str(workdir), "--smoke", f"--{option}", value])
    assert not workdir.exists()
