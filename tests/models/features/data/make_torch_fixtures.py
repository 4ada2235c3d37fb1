"""Writes the PyTorch checkpoint fixtures of tests/models/features/test_torch_weights.py.

Needs torch; run once from the repository root and commit the three files:

    .venv/bin/python tests/models/features/data/make_torch_fixtures.py

  torch_checkpoint.pth  zip format, {"epoch": 7, "state_dict": <tensors>}
  torch_legacy.pth      legacy format (_use_new_zipfile_serialization=False), <tensors>
  torch_expected.npz    the tensors' values as numpy arrays (bfloat16 widened to float32)
"""

import collections
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent


def fixture_tensors() -> "collections.OrderedDict[str, torch.Tensor]":
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, generator=g)
    return collections.OrderedDict(
        w32=torch.randn(3, 4, generator=g),
        base=base,
        # Non-contiguous, offset into base's storage (shared with "base" in the file).
        view=base[1:, ::2].t(),
        h16=torch.randn(2, 3, generator=g).half(),
        i64=torch.tensor([-3, 0, 7, 2**40, -(2**50)], dtype=torch.int64),
        scalar=torch.tensor(2.5),
        bf16=torch.tensor([1.0, -0.5, 3.25], dtype=torch.bfloat16),
        flag=torch.tensor([True, False, False, True]),
        param=torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    )


def main() -> None:
    tensors = fixture_tensors()
    torch.save({"epoch": 7, "state_dict": tensors}, HERE / "torch_checkpoint.pth")
    torch.save(tensors, HERE / "torch_legacy.pth", _use_new_zipfile_serialization=False)
    expected = {
        k: v.detach().float().numpy() if k == "bf16" else v.detach().numpy()
        for k, v in tensors.items()
    }
    np.savez(HERE / "torch_expected.npz", **expected)


if __name__ == "__main__":
    main()
