"""The FGSM experiment's smoke config against the shipped Fashion-MNIST classifier."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments import fgsm
from gen_jax.data import load_fashion_mnist


def _have_fashion_mnist() -> bool:
    try:
        load_fashion_mnist("test")
    except (FileNotFoundError, OSError):
        return False
    return True


@pytest.mark.skipif(not _have_fashion_mnist(), reason="Debian's dataset-fashion-mnist is absent")
def test_fgsm_smoke_writes_curve_examples_and_results(tmp_path):
    results = fgsm.main(["--workdir", str(tmp_path), "--smoke"])
    smoke = fgsm.get_smoke_config()
    assert results["eps"] == list(smoke.eps)
    assert results["num_examples"] == smoke.num_examples
    # ε = 0 changes nothing: both attacks keep the clean accuracy.
    assert results["fgsm_accuracy"][0] == results["iterative_accuracy"][0]
    assert results["fgsm_accuracy"][0] == pytest.approx(results["clean_accuracy"])
    assert results["clean_accuracy"] > 0.8
    # Even on 64 images, ε = 0.1 must hurt, and iterating must not help the classifier.
    assert results["fgsm_accuracy"][1] < results["clean_accuracy"]
    assert results["iterative_accuracy"][1] <= results["fgsm_accuracy"][1]
    for name in ("accuracy_vs_eps.png", "examples.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
    assert json.loads((tmp_path / "results.json").read_text())["eps"] == list(smoke.eps)


def test_fgsm_unknown_dataset_is_refused_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="--dataset"):
        fgsm.main(["--workdir", str(workdir), "--smoke", "--dataset", "cifar10"])
    assert not workdir.exists()


def test_fgsm_negative_eps_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--eps"):
        fgsm.main(["--workdir", str(tmp_path / "run"), "--smoke", "--eps", "0,-0.1"])
    assert not (tmp_path / "run").exists()
