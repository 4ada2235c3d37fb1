"""The equal-work check of `benchmarks.synthesis_speed`: gen_jax and PyTorch compute the
same objective, each about as accurately as the other.

One loss-and-gradient evaluation at a small perturbed image (`check_image`), at the
highest matmul/conv precision on both sides, targets included, compared between the two
implementations and with the same objective in float64 (PyTorch's twin on the CPU), the
reference both float32 sides are measured against. `check_passed` gives the verdict.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import torch_reference
from benchmarks.report import relative
from benchmarks.runner import Log
from benchmarks.synthesis_work import jax_targets, load_images, with_algorithm
from gen_jax.nn import xla_cpu
from gen_jax.synthesis.style import PerceptualLoss

__all__ = [
    "CHECK_GRAD_RTOL",
    "CHECK_PIXEL_TOL",
    "CHECK_RTOL",
    "check_image",
    "check_passed",
    "check_references",
    "equal_work_check",
    "jax_loss_and_grad",
    "pixels_off",
]

# The verdict (`check_passed`): gen_jax's loss and gradient (relative L2) against the
# float64 ones, and a pixel's gradient against float64's as a fraction of its largest
# magnitude (`pixels_off`).
CHECK_RTOL = 1e-4
CHECK_GRAD_RTOL = 1e-3
CHECK_PIXEL_TOL = 1e-3


def check_image(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(content, style, image) of the equal-work check: the image is the content image plus
    uniform noise of +-0.1, off the content image so that every term is non-zero."""
    content, style, _ = load_images(size, seed)
    noise = np.random.default_rng(seed).uniform(-0.1, 0.1, content.shape).astype(np.float32)
    return content, style, np.clip(content + noise, 0.0, 1.0)


def jax_loss_and_grad(loss: PerceptualLoss, image, params, targets, grams):
    """One loss-and-gradient evaluation at the highest precision: the equal-work check."""
    with jax.default_matmul_precision("highest"):
        value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(image), params, targets, grams)
    return float(value), np.asarray(grad)


def check_references(
    jax_loss: PerceptualLoss,
    params,
    torch_loss: torch_reference.TorchStyleLoss,
    size: int,
    seed: int,
) -> dict[str, Any]:
    """What every gen_jax algorithm's check is compared with, computed once: PyTorch's loss
    and gradient at the check image on its device (float32, targets included), and the
    same objective in float64 on the CPU (the twin of ``jax_loss`` in float64, its targets
    in float64 too)."""
    content, style, image = check_image(size, seed)
    torch_loss.set_target_images(content, style)
    t_value, t_grad = torch_reference.torch_loss_and_grad(torch_loss, image)
    cpu = torch_loss.torch.device("cpu")
    exact = torch_reference.style_loss_like(
        jax_loss, params, device=cpu, channels_last=False, dtype="float64"
    )
    exact.set_target_images(content, style)
    x_value, x_grad = torch_reference.torch_loss_and_grad(exact, image)
    return {"torch": (t_value, t_grad), "float64": (x_value, x_grad)}


def pixels_off(grad: np.ndarray, exact: np.ndarray) -> tuple[int, list[int] | None]:
    """(count, [first row, last row, first column, last column] or None): the pixels of an
    HWC gradient with any channel further than `CHECK_PIXEL_TOL` times the exact
    gradient's largest magnitude from it, and the box around them. A max-pool choice moved
    by rounding shows as one small box of such pixels (about the pool window's receptive
    field); a different computation, as pixels everywhere."""
    tol = CHECK_PIXEL_TOL * float(np.abs(exact).max())
    rows, cols = np.nonzero(np.abs(grad - exact).max(axis=-1) > tol)
    if rows.size == 0:
        return 0, None
    return int(rows.size), [int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())]


def check_passed(check: dict[str, Any]) -> bool:
    """The equal-work verdict: gen_jax's loss and gradient are within `CHECK_RTOL` and
    `CHECK_GRAD_RTOL` of the float64 ones, or no further from them than PyTorch's own.

    The second clause is there because the objective's gradient is not continuous: a
    ReLU or max-pool choice between nearly tied inputs moves with rounding, and moves a
    block of the gradient with it. Two float32 implementations can then differ by more
    than either differs from the exact value (an H200 run's PyTorch and gen_jax gradients
    differed by 3.2e-3); the question the check answers is whether gen_jax computes the
    same function at least as accurately as the reference implementation does.
    """
    return bool(
        check["loss_error_gen_jax"] <= max(CHECK_RTOL, check["loss_error_torch"])
        and check["grad_error_gen_jax"] <= max(CHECK_GRAD_RTOL, check["grad_error_torch"])
    )


def equal_work_check(
    jax_loss: PerceptualLoss,
    params,
    references: dict[str, Any],
    size: int,
    seed: int,
    log: Log,
    algorithm: str | None = None,
) -> dict[str, Any]:
    """gen_jax's loss and gradient at the check image of ``size``, its convolutions by
    ``algorithm`` (None: ``jax_loss``'s own), against ``references`` (`check_references`).

    Returns:
      The JSON-able check: every value and distance, ``pixels_off_*`` and ``passed``.
    """
    if algorithm is not None:
        jax_loss = with_algorithm(jax_loss, algorithm)
    content, style, image = check_image(size, seed)
    targets, grams = jax_targets(jax_loss, params, content, style, "highest")
    j_value, j_grad = jax_loss_and_grad(jax_loss, image, params, targets, grams)
    j_grad = np.asarray(j_grad, np.float64)
    t_value, t_grad = references["torch"]
    x_value, x_grad = references["float64"]
    check = {
        "conv_algorithm": getattr(jax_loss.module, "conv_algorithm", None),
        "size": size,
        "loss_gen_jax": j_value,
        "loss_torch": t_value,
        "loss_float64": x_value,
        "loss_rel_diff": relative(j_value, t_value),
        "grad_rel_l2_diff": xla_cpu.relative_l2(j_grad, t_grad),
        "loss_error_gen_jax": relative(j_value, x_value),
        "loss_error_torch": relative(t_value, x_value),
        "grad_error_gen_jax": xla_cpu.relative_l2(j_grad, x_grad),
        "grad_error_torch": xla_cpu.relative_l2(t_grad, x_grad),
        "pixels": size * size,
        "rtol": CHECK_RTOL,
        "grad_rtol": CHECK_GRAD_RTOL,
    }
    for side, grad in (("gen_jax", j_grad), ("torch", t_grad)):
        check[f"pixels_off_{side}"], check[f"pixels_off_box_{side}"] = pixels_off(grad, x_grad)
    check["passed"] = check_passed(check)
    log(
        f"[check, conv {check['conv_algorithm']}] {size} px: loss gen_jax "
        f"{j_value:.7g}, PyTorch {t_value:.7g}, float64 {x_value:.7g}; gradient rel. L2 "
        f"from float64: gen_jax {check['grad_error_gen_jax']:.1e} "
        f"({check['pixels_off_gen_jax']} pixels off), PyTorch {check['grad_error_torch']:.1e} "
        f"({check['pixels_off_torch']} pixels off); gen_jax from PyTorch "
        f"{check['grad_rel_l2_diff']:.1e}"
    )
    return check
