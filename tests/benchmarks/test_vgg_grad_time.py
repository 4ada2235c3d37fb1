"""The XLA-flag probe runs and returns a positive time."""

import pathlib
import sys

_REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:  # `benchmarks` is a top-level folder, not an installed package.
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import vgg_grad_time


def test_vgg_grad_time_tiny(capsys):
    seconds = vgg_grad_time.main(["--size", "16", "--repeats", "1"])
    assert seconds > 0
    assert "per forward+backward" in capsys.readouterr().out
