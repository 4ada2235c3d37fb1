"""End to end: experiments.feature_inversion and experiments.deep_dream run their --smoke
configs, write their PNGs and results.json, resume, and refuse bad options."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import deep_dream, feature_inversion
from gen_jax.models.classifier import TinyClassifier, save_classifier_weights


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_feature_inversion_smoke_and_resume(tmp_path, capsys):
    workdir = tmp_path / "inv"
    results = feature_inversion.main(["--workdir", str(workdir), "--smoke"])
    layers = list(feature_inversion.get_smoke_config().layers)
    for name in ["config.json", "results.json", "metrics.jsonl", "strip.png", "original.png"]:
        assert (workdir / name).is_file(), name
    for layer in layers:
        assert _png_size(workdir / f"inversion_{layer}.png") == (32, 32)
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["layers"] == layers and len(saved["psnr"]) == len(layers)
    assert all(np.isfinite(saved["psnr"])) and all(-1 <= s <= 1 for s in saved["ssim"])
    assert saved["psnr"] == pytest.approx(results["psnr"])
    # Every layer's feature loss fell from the noise start.
    assert all(e < s for s, e in zip(saved["feature_loss_start"], saved["feature_loss_end"]))
    width, height = _png_size(workdir / "strip.png")
    assert width > (len(layers) + 1) * 32 and height >= 32

    capsys.readouterr()
    again = feature_inversion.main(["--workdir", str(workdir), "--smoke"])
    assert capsys.readouterr().out.count("skipped") == len(layers)
    assert again["psnr"] == pytest.approx(results["psnr"])


def test_feature_inversion_refuses_bad_net(tmp_path):
    with pytest.raises(ValueError, match="--net"):
        feature_inversion.main(["--workdir", str(tmp_path / "x"), "--smoke", "--net", "vgg11"])
    with pytest.raises(ValueError, match="needs --weights"):
        feature_inversion.main(["--workdir", str(tmp_path / "x"), "--smoke", "--net", "vgg19"])
    assert not (tmp_path / "x").exists()


def test_deep_dream_smoke(tmp_path):
    workdir = tmp_path / "dream"
    results = deep_dream.main(["--workdir", str(workdir), "--smoke"])
    for name in ["config.json", "results.json", "dream.png", "octaves.png", "dream_only.png"]:
        assert (workdir / name).is_file(), name
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["octave_shapes"] == [[22, 22], [32, 32]]  # 32 / 1.4 = 22.9, floored
    assert saved["steps_taken"] == [2, 2] and saved["objective"] == "squared"
    for start, end in zip(saved["objective_start"], saved["objective_end"]):
        assert end > start
    assert saved["mean_abs_change"] > 0 and results["layers"] == ["relu2_1"]
    assert _png_size(workdir / "dream_only.png") == (32, 32)


def test_deep_dream_on_a_classifier(tmp_path):
    from gen_jax.data import load_fashion_mnist

    try:
        load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed")
    clf = TinyClassifier()
    variables = clf.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    weights = tmp_path / "tiny.npz"
    save_classifier_weights(weights, clf, variables)
    workdir = tmp_path / "dream_clf"
    argv = ["--workdir", str(workdir), "--smoke", "--net", "classifier", "--weights"]
    argv += [str(weights), "--size", "42", "--layers", "logit2", "--index", "3"]
    results = deep_dream.main(argv)
    assert results["objective"] == "mean"  # a single logit is dreamed as itself
    assert results["octave_shapes"] == [[30, 30], [42, 42]]
    assert results["objective_end"][-1] > results["objective_start"][0]
    before, after = results["probabilities_before"], results["probabilities_after"]
    assert sum(before.values()) == pytest.approx(1.0, abs=1e-5)
    assert list(after.values())[2] > list(before.values())[2]
    assert _png_size(workdir / "dream_only.png") == (42, 42)
