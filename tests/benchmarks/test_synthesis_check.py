"""benchmarks.synthesis_check: the equal-work verdict, the pixels it counts off, and the
float64 twin it measures both float32 sides against."""

import numpy as np
import pytest

from benchmarks import synthesis_check, synthesis_speed, torch_reference

try:
    import torch
except ImportError:
    torch = None


def _check(**errors):
    check = {"loss_error_gen_jax": 0.0, "loss_error_torch": 0.0}
    check |= {"grad_error_gen_jax": 0.0, "grad_error_torch": 0.0}
    return check | errors


@pytest.mark.parametrize(
    ("errors", "passed"),
    [
        ({}, True),
        # Within the tolerances of float64, whatever PyTorch's error.
        ({"loss_error_gen_jax": 9e-5, "grad_error_gen_jax": 9e-4}, True),
        # gen_jax off, PyTorch exact: fails on either quantity.
        ({"loss_error_gen_jax": 2e-4}, False),
        ({"grad_error_gen_jax": 2e-3}, False),
        # PyTorch's own rounding moved a max-pool choice: gen_jax as close or closer passes.
        ({"grad_error_gen_jax": 2e-3, "grad_error_torch": 3e-3}, True),
        ({"grad_error_gen_jax": 4e-3, "grad_error_torch": 3e-3}, False),
        ({"loss_error_gen_jax": 2e-4, "loss_error_torch": 3e-4}, True),
    ],
)
def test_check_passes_when_gen_jax_is_as_close_to_float64_as_the_tolerance_or_pytorch(
    errors, passed
):
    assert synthesis_check.check_passed(_check(**errors)) is passed


def test_pixels_off_counts_pixels_beyond_a_fraction_of_the_largest_entry():
    exact = np.zeros((8, 8, 3))
    exact[0, 0, 0] = 10.0  # tolerance 1e-2
    grad = exact.copy()
    grad[1, 1, 2] += 0.02  # one channel of one pixel off
    grad[2, 3] += 0.005  # under the tolerance in every channel
    grad[4, 4, :] -= 1.0  # every channel of another pixel
    assert synthesis_check.pixels_off(grad, exact) == (2, [1, 4, 1, 4])
    assert synthesis_check.pixels_off(exact, exact) == (0, None)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_float64_twin_computes_the_float32_objective_in_float64():
    cfg = synthesis_speed.BenchConfig(sizes=(32,), check_size=32).resolve()
    content, style, image = synthesis_check.check_image(32, 0)
    jax_loss, params, _ = synthesis_speed.network_and_loss(cfg, np.stack([content, style]))
    results = {}
    for dtype in ("float32", "float64"):
        loss = torch_reference.style_loss_like(
            jax_loss, params, device=torch.device("cpu"), channels_last=False, dtype=dtype
        )
        assert all(p.dtype == getattr(torch, dtype) for p in loss.net.parameters())
        loss.set_targets(loss.image(content), loss.image(style))
        assert loss.style_grams["relu1_1"].dtype == getattr(torch, dtype)
        results[dtype] = torch_reference.torch_loss_and_grad(loss, image)
    (v32, g32), (v64, g64) = results["float32"], results["float64"]
    assert g32.dtype == g64.dtype == np.float64 and g64.shape == image.shape
    np.testing.assert_allclose(v32, v64, rtol=1e-5)
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-4
    assert v32 != v64  # the float64 twin did not round through float32


def test_check_image_is_the_content_image_moved_by_at_most_a_tenth():
    content, style, image = synthesis_check.check_image(16, 0)
    assert content.shape == style.shape == image.shape == (16, 16, 3)
    assert 0 < np.abs(image - content).max() <= 0.1 + 1e-6
    assert image.min() >= 0.0 and image.max() <= 1.0
