"""The work the style-transfer benchmarks time: images, VGG19, the objective and its
targets, and one runner per implementation of the optimisation.

Shared by `benchmarks.synthesis_speed` (both sides, timed against each other),
`benchmarks.synthesis_check` (one evaluation of each) and `benchmarks.synthesis_profile`
(the gen_jax side under the profiler).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import torch_reference
from benchmarks.flops import xla_flops
from benchmarks.runner import Log, compile_seconds, seconds
from gen_jax.models.features import get_feature_net
from gen_jax.synthesis.optimize import optimize_image, precision_scope
from gen_jax.synthesis.style import (
    GATYS_CONTENT_LAYERS,
    GATYS_STYLE_LAYERS,
    PerceptualLoss,
    content_targets,
    style_grams,
)

TORCH_EAGER = "torch_eager"
GEN_JAX = "gen_jax"
OPTIMIZERS = ("lbfgs", "adam")
# "highest": float32 matmuls and convolutions on both sides (optimize_image's default;
# PyTorch with TF32 off). "default": each framework's own default, TF32 on GPUs.
PRECISIONS = ("highest", "default")
MIN_SIZE = 16  # relu5_1 comes after four 2x2 pools.
LBFGS_HISTORY = 10
# torch.optim.LBFGS's strong-Wolfe search allows 25 evaluations per iteration (fixed in
# torch); optax's zoom search gets the same budget.
MAX_LINESEARCH_STEPS = 25
ADAM_LEARNING_RATE = 0.02  # optimize_image's default for pixels in [0, 1].


def jax_precision(precision: str) -> str | None:
    """`optimize_image`'s ``precision`` for one of `PRECISIONS`."""
    return "highest" if precision == "highest" else None


# ---------------------------------------------------------------------------------------
# Inputs, the network and the objective.


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crops an RGB image to a square and resizes it (antialiased) to size x size."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = jnp.asarray(image[top : top + side, left : left + side], jnp.float32)
    resized = jax.image.resize(crop, (size, size, 3), "linear", antialias=True)
    return np.asarray(jnp.clip(resized, 0.0, 1.0), np.float32)


def load_images(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(content, style, description): float32 RGB [size, size, 3] in [0, 1].

    scikit-image's astronaut (content) and coffee (style) photographs, which load offline;
    seeded smooth noise when scikit-image is missing. The speed does not depend on them.
    """
    try:
        from skimage import data
    except ImportError:
        rng = np.random.default_rng(seed)
        coarse = rng.uniform(0.0, 1.0, (2, 8, 8, 3)).astype(np.float32)
        content, style = (_square(c, size) for c in coarse)
        return content, style, "seeded noise (scikit-image not installed)"
    content = _square(data.astronaut().astype(np.float32) / 255.0, size)
    style = _square(data.coffee().astype(np.float32) / 255.0, size)
    return content, style, "scikit-image astronaut (content), coffee (style)"


def build_network(
    images: np.ndarray,
    *,
    weights: str | None = None,
    pooling: str = "max",
    seed: int = 0,
    conv_algorithms: tuple[str, ...] = ("auto",),
) -> tuple[Any, dict, str]:
    """(module, params, description) of the benchmarks' VGG19 feature net.

    Random weights (`get_feature_net("random_vgg19")`) normalised on ``images`` (the
    content and style images), or the trained ones of the file ``weights``; the module's
    convolutions by the first of ``conv_algorithms`` (`with_algorithm` makes the others,
    which the description names).
    """
    if weights is None:
        module, params = get_feature_net(
            "random_vgg19", key=jax.random.key(seed), pooling=pooling, images=images
        )
        what = "random_vgg19 (random weights, layer-normalised on the content and style images)"
    else:
        module, params = get_feature_net("vgg19", weights=weights, pooling=pooling)
        what = f"vgg19 weights {os.path.basename(weights)}"
    module = module.clone(conv_algorithm=conv_algorithms[0])
    algorithms = " / ".join(f"`conv_algorithm={a!r}`" for a in conv_algorithms)
    if len(conv_algorithms) > 1:
        algorithms += " (one gen_jax row each)"
    return (
        module,
        params,
        f"{what}, {pooling} pooling, `{module.preprocessing}` input; gen_jax convolutions "
        + algorithms,
    )


def with_algorithm(loss: PerceptualLoss, algorithm: str) -> PerceptualLoss:
    """``loss`` with its VGG's convolutions computed by ``algorithm``."""
    return dataclasses.replace(loss, module=loss.module.clone(conv_algorithm=algorithm))


def gatys_loss(module, *, alpha: float, beta: float, tv_weight: float) -> PerceptualLoss:
    """The objective of `gen_jax.synthesis.style_transfer`: content at relu4_2, the mean
    of the Gram losses of relu1_1..relu5_1, squared TV."""
    return PerceptualLoss(
        module,
        content_layers=GATYS_CONTENT_LAYERS,
        style_layers=GATYS_STYLE_LAYERS,
        style_layer_weights=tuple(1.0 / len(GATYS_STYLE_LAYERS) for _ in GATYS_STYLE_LAYERS),
        alpha=alpha,
        beta=beta,
        tv_weight=tv_weight,
    )


def jax_targets(loss: PerceptualLoss, params, content, style, precision: str):
    """(content targets, style Grams) of ``loss`` by gen_jax's network, at ``precision``
    (one of `PRECISIONS`)."""
    prec = jax_precision(precision)
    targets = content_targets(loss.module, params, content, loss.content_layers, precision=prec)
    grams = style_grams(loss.module, params, style, loss.style_layers, precision=prec)
    return targets, grams


def jax_row_key(algorithm: str, several: bool) -> tuple[str, str]:
    """(key, name) of the gen_jax row of ``algorithm``: the algorithm is named only when
    the run compares ``several``."""
    key, name = GEN_JAX, "gen_jax, optimize_image (one jit program)"
    if not several:
        return key, name
    return f"{key}[{algorithm}]", f"{name}, conv {algorithm}"


# ---------------------------------------------------------------------------------------
# The two implementations of the optimisation, as `benchmarks.runner.Runner`s.


class JaxStyleRunner:
    """gen_jax: `optimize_image` on a `PerceptualLoss`, what `style_transfer` runs, with
    the convolutions of ``algorithm``.

    Args:
      loss: the objective (its module's algorithm is replaced by ``algorithm``).
      x0: the start image [H, W, 3].
      args: ``(params, content targets, style Grams)``.
      steps: iterations per run.
      optimizer: one of `OPTIMIZERS`; precision: one of `PRECISIONS`.
      key, name: the row's (`jax_row_key`).
      count_flops: also count one evaluation's FLOPs in ``setup`` (the same for every
        algorithm, so one runner per size does).
    """

    def __init__(
        self,
        loss: PerceptualLoss,
        x0,
        args: tuple,
        *,
        steps: int,
        optimizer: str = "lbfgs",
        precision: str = "highest",
        algorithm: str = "auto",
        key: str = GEN_JAX,
        name: str = "gen_jax, optimize_image (one jit program)",
        count_flops: bool = True,
    ):
        self.key, self.name = key, name
        self.algorithm, self.count_flops = algorithm, count_flops
        self.loss, self.steps = with_algorithm(loss, algorithm), steps
        self.optimizer, self.precision = optimizer, precision
        self.x0, self.args = jnp.asarray(x0), args
        self.info: dict[str, Any] = {}
        if optimizer == "lbfgs":
            self.kwargs = {
                "memory_size": LBFGS_HISTORY,
                "max_linesearch_steps": MAX_LINESEARCH_STEPS,
            }
        else:
            self.kwargs = {"learning_rate": ADAM_LEARNING_RATE}

    def optimize(self):
        """One whole optimisation from ``x0``, waited for."""
        result = optimize_image(
            self.loss,
            self.x0,
            *self.args,
            optimizer=self.optimizer,
            steps=self.steps,
            clip=False,
            precision=jax_precision(self.precision),
            **self.kwargs,
        )
        return jax.block_until_ready(result)

    def setup(self, log: Log) -> None:
        if self.algorithm == "tune":
            # Measure this size's new convolution shapes first, by tracing the loss at the
            # precision optimize_image compiles at: the tuner's own compiles would otherwise
            # count (nested in the trace's) as the optimisation's compile time.
            t0 = time.perf_counter()
            with precision_scope(jax_precision(self.precision)):
                jax.eval_shape(jax.value_and_grad(self.loss), self.x0, *self.args)
            self.info["tune_s"] = time.perf_counter() - t0
        with compile_seconds() as compiled:
            self.info["first_call_s"], result = seconds(self.optimize)
        self.info["compile_s"] = compiled["seconds"]
        if self.count_flops:
            # The FLOPs of one loss-and-gradient evaluation: a separate program, same
            # function, with direct convolutions (Winograd's are fewer; the table credits
            # every row with the direct method's count, so GFLOP/s compares the same
            # nominal work).
            self.info["flops_per_eval"], self.info["flops_platform"] = xla_flops(
                jax.value_and_grad(with_algorithm(self.loss, "direct")), self.x0, *self.args
            )
        self._record(result)
        log(
            f"[{self.key}] compiled in {self.info['compile_s']:.1f} s, first call "
            f"{self.info['first_call_s']:.1f} s"
        )

    def _record(self, result) -> None:
        losses = np.asarray(result.losses)
        self.info["loss_start"] = float(losses[0])
        self.info["loss_end"] = float(losses[-1])
        self.info["iterations"] = int(np.asarray(result.evaluations).size)
        evals = int(np.asarray(result.evaluations).sum())
        # L-BFGS evaluates once at the start, then its line searches; Adam once an iteration.
        self.info["evaluations"] = evals + 1 if self.optimizer == "lbfgs" else evals

    def run(self) -> float:
        with compile_seconds() as compiled:
            elapsed, result = seconds(self.optimize)
        self.info["timed_compile_events"] = (
            self.info.get("timed_compile_events", 0) + compiled["events"]
        )
        self._record(result)
        return elapsed


class TorchStyleRunner:
    """PyTorch eager: `torch_reference.optimize_style` (LBFGS with strong Wolfe, or Adam)."""

    key = TORCH_EAGER
    name = "PyTorch eager"

    def __init__(
        self,
        loss: torch_reference.TorchStyleLoss,
        x0_hwc: np.ndarray,
        *,
        steps: int,
        optimizer: str = "lbfgs",
        precision: str = "highest",
    ):
        self.loss, self.steps = loss, steps
        self.optimizer, self.precision = optimizer, precision
        self.x0 = loss.image(x0_hwc)
        self.info: dict[str, Any] = {}

    def _optimize(self, steps: int) -> dict[str, Any]:
        return torch_reference.optimize_style(
            self.loss,
            self.x0,
            optimizer=self.optimizer,
            steps=steps,
            highest=self.precision == "highest",
            history_size=LBFGS_HISTORY,
            max_linesearch_steps=MAX_LINESEARCH_STEPS,
            learning_rate=ADAM_LEARNING_RATE,
        )

    def setup(self, log: Log) -> None:
        warm = min(2, self.steps)
        self.info["first_call_s"], _ = seconds(self._optimize, warm, ready=_done)
        log(f"[{self.key}] first {warm} iteration(s) {self.info['first_call_s']:.1f} s")

    def run(self) -> float:
        torch_reference.synchronize(self.loss.device)
        elapsed, trace = seconds(self._optimize, self.steps, ready=_done)
        self.info.update(trace)
        return elapsed


def _done(_) -> None:
    """`optimize_style` has waited for its device already."""
