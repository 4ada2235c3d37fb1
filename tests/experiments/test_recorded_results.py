"""The GAN and classifier experiments give the numbers recorded before the training engine.

The default --smoke cases are checked inside their smoke tests (test_experiments_smoke.py,
test_train_classifier_smoke.py); these are the variants: n_critic = 2 with label smoothing
for DCGAN, the minimax loss with n_critic = 2 and no packing or R1 on the grid, and the
MNIST classifier.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

from recorded import RECORDED, assert_matches_recorded

from experiments import dcgan, gan_mixture, train_classifier
from gen_jax.data import load_fashion_mnist

MODULES = {"dcgan": dcgan, "gan_mixture": gan_mixture, "classifier": train_classifier}


@pytest.mark.parametrize(
    "case",
    ["dcgan_ncritic2_smooth", "gan_mixture_grid_minimax_pack1_nor1", "classifier_mnist"],
)
def test_variant_gives_the_recorded_numbers(tmp_path, case):
    if case.startswith("dcgan"):
        try:
            load_fashion_mnist("test")
        except FileNotFoundError as e:
            pytest.skip(f"Fashion-MNIST is not installed (dataset-fashion-mnist): {e}")
    module = MODULES[case.split("_")[0] if not case.startswith("gan_mixture") else "gan_mixture"]
    argv = RECORDED[case]["argv"]
    results = module.main(["--workdir", str(tmp_path), *argv])
    assert_matches_recorded(case, tmp_path, results)
