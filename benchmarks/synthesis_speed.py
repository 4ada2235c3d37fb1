"""Gatys style transfer through VGG19: gen_jax (one compiled optimisation) against PyTorch eager.

    python -m benchmarks.synthesis_speed [--sizes 256,512] [--iterations N or N1,N2]
        [--optimizer lbfgs|adam] [--weights FILE] [--pooling max|avg] [--repeats R]
        [--conv-algorithm A or A1,A2] [--check_size S] [--out FILE.md] [--no-torch]

The work, the same on both sides at every size S (a square S x S image):

* the objective of `gen_jax.synthesis.style_transfer`: ``alpha * content(relu4_2) +
  beta * sum_l 1/5 E_l(relu1_1 ... relu5_1) + tv_weight * TV``, Gram losses on
  per-position Grams, squared isotropic TV; the image starts at the content image;
* through one VGG19 (`get_feature_net("random_vgg19")`, normalised on the content and
  style images, or trained weights from `--weights`), its parameters loaded into a
  PyTorch `nn.Sequential` (HWIO -> OIHW) with the same input normalisation; the forward
  pass stops at relu5_1 on both sides;
* the same optimiser: L-BFGS with history 10 and a strong-Wolfe line search (optax's
  zoom line search inside `gen_jax.synthesis.optimize_image`, against
  `torch.optim.LBFGS(history_size=10, line_search_fn="strong_wolfe")`), or Adam(0.02).

The line searches of the two L-BFGS implementations differ in their first step and in
how they bracket, so an iteration may cost a different number of loss-and-gradient
evaluations on each side; both are counted (``OptimizeResult.evaluations`` plus the
initial one; a counter in PyTorch's closure) and both rates are reported. After the
timings, one loss-and-gradient evaluation at a small size is compared between the two
implementations (at the highest matmul/conv precision) and with the same objective in
float64 (PyTorch on the CPU), to show that they compute the same function and how closely
each side's float32 rounding follows it (afterwards, so that a run cut short by a time
limit keeps its timed sizes; `check_passed` gives the verdict); the loss at the start
image of every size is compared too.

Several ``--conv-algorithm`` values (say ``auto,tune``) give one gen_jax row per algorithm
at every size, each with its own equal-work check, all timed against the same PyTorch
runs: the comparison of algorithms is side by side in one process, and the PyTorch
reference is paid for once.

Timing: gen_jax's compilation is measured from JAX's own compile events during the first,
untimed, call (which also runs the iterations once); PyTorch's first iterations are
untimed as well. Then R repeats of the whole optimisation (from the same start image, so
every repeat does the same work) alternate between the implementations, so that a change
in background load hits both alike, and the median repeat is reported. Thread pools keep
their defaults (XLA:CPU uses every schedulable core; PyTorch `torch.get_num_threads()`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# Both frameworks share one GPU in this process: JAX's default preallocation of 75% of its
# memory would leave PyTorch little. Harmless on the CPU; must precede JAX's backend init.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.flops import xla_flops
from benchmarks.machine import describe_devices, format_environment
from benchmarks.report import check_out_paths, write_text
from gen_jax.models.features import get_feature_net, vgg_layer_names
from gen_jax.nn import xla_cpu
from gen_jax.nn.xla_cpu import ALGORITHMS as CONV_ALGORITHMS
from gen_jax.nn.xla_cpu import TILES as winograd_tiles
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


def jax_precision(precision: str) -> str | None:
    """`optimize_image`'s ``precision`` for one of `PRECISIONS`."""
    return "highest" if precision == "highest" else None


MIN_SIZE = 16  # relu5_1 comes after four 2x2 pools.
LBFGS_HISTORY = 10
# torch.optim.LBFGS's strong-Wolfe search allows 25 evaluations per iteration (fixed in
# torch); optax's zoom search gets the same budget.
MAX_LINESEARCH_STEPS = 25
ADAM_LEARNING_RATE = 0.02  # optimize_image's default for pixels in [0, 1].
# The equal-work check (`check_passed`): gen_jax's loss and gradient (relative L2) against
# the float64 ones, and a pixel's gradient against float64's as a fraction of its largest
# magnitude (`pixels_off`).
CHECK_RTOL = 1e-4
CHECK_GRAD_RTOL = 1e-3
CHECK_PIXEL_TOL = 1e-3

# JAX's compile-time events: tracing, lowering to MLIR, XLA compilation.
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to measure; `None` fields take per-backend defaults (see `resolve`)."""

    sizes: tuple[int, ...] = (256, 512)
    iterations: tuple[int, ...] | None = None  # one per size, or one for all
    optimizer: str = "lbfgs"
    precision: str = "highest"
    weights: str | None = None
    pooling: str = "max"
    # gen_jax's VGG convolutions (gen_jax.nn.xla_cpu.ALGORITHMS): one gen_jax row each.
    conv_algorithms: tuple[str, ...] = ("auto",)
    # xla_cpu.set_tuning_budget for the run (None: no cap on "tune"'s measuring time).
    tune_budget_s: float | None = None
    repeats: int | None = None
    check_size: int = 64
    alpha: float = 1.0
    beta: float = 1e3
    tv_weight: float = 1.0
    seed: int = 0
    use_torch: bool = True
    torch_channels_last: bool = True
    torch_threads: int | None = None  # None: PyTorch's default pool, untouched

    def resolve(self) -> BenchConfig:
        """Fills the `None` fields: short runs on the CPU, longer ones on accelerators."""
        on_cpu = jax.default_backend() == "cpu"
        iterations = self.iterations
        if iterations is None:
            # About constant work per size: iterations ~ 1 / pixels (CPU: 12 at 256, 3 at 512).
            base, floor = (12, 2) if on_cpu else (200, 20)
            iterations = tuple(max(floor, round(base * (256 / s) ** 2)) for s in self.sizes)
        elif len(iterations) == 1:
            iterations = iterations * len(self.sizes)
        repeats = self.repeats if self.repeats is not None else (3 if on_cpu else 5)
        cfg = dataclasses.replace(self, iterations=tuple(iterations), repeats=repeats)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if not self.sizes:
            raise ValueError("sizes: expected one or more image sizes, found none")
        for s in (*self.sizes, self.check_size):
            if s < MIN_SIZE:
                raise ValueError(
                    f"sizes/check_size: expected >= {MIN_SIZE} px (relu5_1 follows four 2x2 "
                    f"pools), found {s}"
                )
        if self.iterations is not None:
            if len(self.iterations) not in (1, len(self.sizes)):
                raise ValueError(
                    f"iterations: expected one count or one per size ({len(self.sizes)}), "
                    f"found {len(self.iterations)}"
                )
            if min(self.iterations) < 1:
                raise ValueError(f"iterations: expected positive counts, found {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, found {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, found {self.precision!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling: expected 'max' or 'avg', found {self.pooling!r}")
        if not self.conv_algorithms:
            raise ValueError("conv_algorithms: expected one or more, found none")
        for algorithm in self.conv_algorithms:
            if algorithm not in CONV_ALGORITHMS:
                raise ValueError(
                    f"conv_algorithms: expected each one of {CONV_ALGORITHMS}, found {algorithm!r}"
                )
        if len(set(self.conv_algorithms)) != len(self.conv_algorithms):
            raise ValueError(
                f"conv_algorithms: expected each at most once, found {self.conv_algorithms}"
            )
        if self.tune_budget_s is not None and not self.tune_budget_s >= 0:
            raise ValueError(f"tune_budget_s: expected seconds >= 0, found {self.tune_budget_s}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(
                f"torch_threads: expected a positive integer, found {self.torch_threads}"
            )
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"repeats: expected a positive integer, found {self.repeats}")
        if self.weights is not None and not os.path.isfile(self.weights):
            raise ValueError(f"weights: expected a VGG19 weights file, found no {self.weights}")
        for name in ("alpha", "beta", "tv_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"{name}: expected a non-negative weight, found {getattr(self, name)}"
                )


# ---------------------------------------------------------------------------------------
# Inputs and the network.


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


def build_network(cfg: BenchConfig, images: np.ndarray) -> tuple[Any, dict, str]:
    """(module, params, description) of the VGG19 feature net of the benchmark, the module
    with the first of ``cfg.conv_algorithms`` (`with_algorithm` makes the others)."""
    if cfg.weights is None:
        module, params = get_feature_net(
            "random_vgg19", key=jax.random.key(cfg.seed), pooling=cfg.pooling, images=images
        )
        what = "random_vgg19 (random weights, layer-normalised on the content and style images)"
    else:
        module, params = get_feature_net("vgg19", weights=cfg.weights, pooling=cfg.pooling)
        what = f"vgg19 weights {os.path.basename(cfg.weights)}"
    module = module.clone(conv_algorithm=cfg.conv_algorithms[0])
    algorithms = " / ".join(f"`conv_algorithm={a!r}`" for a in cfg.conv_algorithms)
    if len(cfg.conv_algorithms) > 1:
        algorithms += " (one gen_jax row each)"
    return (
        module,
        params,
        f"{what}, {cfg.pooling} pooling, `{module.preprocessing}` input; gen_jax convolutions "
        + algorithms,
    )


def with_algorithm(loss: PerceptualLoss, algorithm: str) -> PerceptualLoss:
    """``loss`` with its VGG's convolutions computed by ``algorithm``."""
    return dataclasses.replace(loss, module=loss.module.clone(conv_algorithm=algorithm))


def jax_row_key(algorithm: str, cfg: BenchConfig) -> tuple[str, str]:
    """(key, name) of the gen_jax row of ``algorithm``: the algorithm is named only when
    the run compares several."""
    key, name = GEN_JAX, "gen_jax, optimize_image (one jit program)"
    if len(cfg.conv_algorithms) == 1:
        return key, name
    return f"{key}[{algorithm}]", f"{name}, conv {algorithm}"


# ---------------------------------------------------------------------------------------
# gen_jax.


@contextlib.contextmanager
def _compile_seconds() -> Iterator[dict[str, float]]:
    """Sums JAX's trace, lowering and XLA compile durations inside the block."""
    totals = {"seconds": 0.0, "events": 0}

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        if event in _COMPILE_EVENTS:
            totals["seconds"] += duration
            totals["events"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield totals
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


class _JaxRunner:
    """gen_jax: `optimize_image` on `PerceptualLoss`, what `style_transfer` runs, with the
    convolutions of ``algorithm``; ``count_flops``: also count one evaluation's FLOPs
    (the same for every algorithm, so one runner per size does)."""

    def __init__(
        self,
        cfg: BenchConfig,
        loss: PerceptualLoss,
        x0,
        params,
        targets,
        grams,
        steps,
        algorithm: str,
        count_flops: bool = True,
    ):
        self.key, self.name = jax_row_key(algorithm, cfg)
        self.algorithm = algorithm
        self.count_flops = count_flops
        self.cfg, self.loss, self.steps = cfg, with_algorithm(loss, algorithm), steps
        self.x0, self.args = jnp.asarray(x0), (params, targets, grams)
        self.info: dict[str, Any] = {}
        if cfg.optimizer == "lbfgs":
            self.kwargs = {
                "memory_size": LBFGS_HISTORY,
                "max_linesearch_steps": MAX_LINESEARCH_STEPS,
            }
        else:
            self.kwargs = {"learning_rate": ADAM_LEARNING_RATE}

    def _optimize(self):
        result = optimize_image(
            self.loss,
            self.x0,
            *self.args,
            optimizer=self.cfg.optimizer,
            steps=self.steps,
            clip=False,
            precision=jax_precision(self.cfg.precision),
            **self.kwargs,
        )
        return jax.block_until_ready(result)

    def setup(self, log: Log) -> None:
        if self.algorithm == "tune":
            # Measure this size's new convolution shapes first, by tracing the loss at the
            # precision optimize_image compiles at: the tuner's own compiles would otherwise
            # count (nested in the trace's) as the optimisation's compile time.
            t0 = time.perf_counter()
            with precision_scope(jax_precision(self.cfg.precision)):
                jax.eval_shape(jax.value_and_grad(self.loss), self.x0, *self.args)
            self.info["tune_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with _compile_seconds() as compiled:
            result = self._optimize()
        self.info["first_call_s"] = time.perf_counter() - t0
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
        self.info["evaluations"] = evals + 1 if self.cfg.optimizer == "lbfgs" else evals

    def run(self) -> float:
        t0 = time.perf_counter()
        with _compile_seconds() as compiled:
            result = self._optimize()
        elapsed = time.perf_counter() - t0
        self.info["timed_compile_events"] = (
            self.info.get("timed_compile_events", 0) + compiled["events"]
        )
        self._record(result)
        return elapsed


def jax_loss_and_grad(loss: PerceptualLoss, image, params, targets, grams):
    """One loss-and-gradient evaluation at the highest precision: the equal-work check."""
    with jax.default_matmul_precision("highest"):
        value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(image), params, targets, grams)
    return float(value), np.asarray(grad)


# ---------------------------------------------------------------------------------------
# PyTorch reference.


_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def build_torch_vgg(params: dict, pooling: str, last_layer: str, *, inplace_relu: bool = True):
    """VGG19's `features` Sequential up to `last_layer`, with gen_jax's parameters.

    Args:
      params: gen_jax VGG19 parameters, ``{"conv1_1": {"kernel": HWIO, "bias": [O]}}``.
      pooling: "max" or "avg" (2x2, stride 2).
      last_layer: the deepest layer kept (a gen_jax layer name, e.g. "relu5_1").
      inplace_relu: ReLUs overwrite their conv's output (torchvision's choice; fine when no
        conv output is read).

    Returns:
      (sequential, names): the `nn.Sequential` (torchvision's indices) and the gen_jax
      name of each of its entries.
    """
    import torch
    from torch import nn

    names = vgg_layer_names(19)
    names = names[: names.index(last_layer) + 1]
    layers: list[nn.Module] = []
    cin = 3
    for name in names:
        if name.startswith("conv"):
            kernel = np.asarray(params[name]["kernel"], np.float32)  # [3, 3, I, O]
            conv = nn.Conv2d(cin, kernel.shape[-1], 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(np.array(params[name]["bias"], np.float32)))
            layers.append(conv)
            cin = kernel.shape[-1]
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=inplace_relu))
        else:
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
    net = nn.Sequential(*layers)
    net.requires_grad_(False)
    return net, names


class TorchStyleLoss:
    """The objective of `PerceptualLoss`, written in PyTorch for NCHW images [1, 3, H, W]."""

    def __init__(
        self,
        params: dict,
        *,
        preprocessing: str,
        pooling: str,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        style_layer_weights: Sequence[float],
        alpha: float,
        beta: float,
        tv_weight: float,
        device: Any,
        channels_last: bool,
        dtype: str = "float32",
    ):
        import torch

        self.torch, self.device = torch, device
        self.dtype = getattr(torch, dtype)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.style_layer_weights = tuple(style_layer_weights)
        self.alpha, self.beta, self.tv_weight = alpha, beta, tv_weight
        self.preprocessing = preprocessing
        self.wanted = set(self.content_layers) | set(self.style_layers)
        order = vgg_layer_names(19)
        last = max(self.wanted, key=order.index)
        inplace = not any(n.startswith("conv") for n in self.wanted)
        net, self.names = build_torch_vgg(params, pooling, last, inplace_relu=inplace)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(device=device, dtype=self.dtype, memory_format=self.memory_format).eval()
        self.content_targets: dict[str, Any] = {}
        self.style_grams: dict[str, Any] = {}

    def image(self, hwc: np.ndarray):
        """An [H, W, 3] image as this loss's input: [1, 3, H, W] on its device, in its dtype."""
        nchw = np.ascontiguousarray(np.asarray(hwc).transpose(2, 0, 1)[None])
        return self.torch.from_numpy(nchw).to(device=self.device, dtype=self.dtype)

    def _preprocess(self, x):
        torch = self.torch

        def constant(values):
            return torch.tensor(values, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)

        if self.preprocessing == "torch":
            return (x - constant(_TORCH_MEAN)) / constant(_TORCH_STD)
        if self.preprocessing == "caffe":
            mean = constant(_CAFFE_MEAN_BGR)
            return x.flip(1) * 255.0 - mean
        return x

    def features(self, x) -> dict[str, Any]:
        """The wanted activations of x [1, 3, H, W] (RGB in [0, 1])."""
        h = self._preprocess(x).contiguous(memory_format=self.memory_format)
        feats = {}
        for name, layer in zip(self.names, self.net):
            h = layer(h)
            if name in self.wanted:
                feats[name] = h
        return feats

    @staticmethod
    def per_position_gram(f):
        """G / M of a feature map [1, C, H, W]: [C, C]."""
        c = f.shape[1]
        flat = f.reshape(c, -1)
        return flat @ flat.t() / flat.shape[1]

    def set_targets(self, content, style) -> None:
        """Content features and per-position style Grams, as `content_targets`/`style_grams`."""
        with self.torch.no_grad():
            cf = self.features(content)
            self.content_targets = {n: cf[n].detach() for n in self.content_layers}
            sf = self.features(style)
            self.style_grams = {n: self.per_position_gram(sf[n]) for n in self.style_layers}

    def __call__(self, x):
        feats = self.features(x)
        c = sum(
            0.5 * (feats[n] - self.content_targets[n]).square().sum() for n in self.content_layers
        )
        s = 0.0
        for n, w in zip(self.style_layers, self.style_layer_weights):
            gram = self.per_position_gram(feats[n])
            channels = gram.shape[0]
            s = s + w * (gram - self.style_grams[n]).square().sum() / (4.0 * channels * channels)
        total = self.alpha * c + self.beta * s
        if self.tv_weight:
            # Isotropic squared TV over the (H-1) x (W-1) positions with both neighbours.
            dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
            dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
            total = total + self.tv_weight * (dx.square() + dy.square()).sum()
        return total


@contextlib.contextmanager
def torch_float32(torch, enabled: bool = True) -> Iterator[None]:
    """TF32 off in PyTorch's CUDA matmuls and cuDNN convolutions while the block runs.

    Through the ``fp32_precision`` settings where PyTorch has them (2.9 on; it deprecates
    ``allow_tf32`` and refuses a mix of the two), else through ``allow_tf32``.
    """
    if not enabled:
        yield
        return
    backends = torch.backends
    if hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):
        knobs = [(backends.cudnn.conv, "fp32_precision", "ieee"),
                 (backends.cuda.matmul, "fp32_precision", "ieee")]  # fmt: skip
    else:
        knobs = [(backends.cudnn, "allow_tf32", False), (backends.cuda.matmul, "allow_tf32", False)]
    saved = [getattr(owner, name) for owner, name, _ in knobs]
    try:
        for owner, name, value in knobs:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(knobs, saved):
            setattr(owner, name, value)


def torch_loss_and_grad(loss: TorchStyleLoss, image_hwc: np.ndarray) -> tuple[float, np.ndarray]:
    """One loss-and-gradient evaluation in the loss's dtype (float32 without TF32, or
    float64), the gradient as float64 HWC."""
    torch = loss.torch
    x = loss.image(image_hwc).requires_grad_(True)
    with torch_float32(torch):
        value = loss(x)
        value.backward()
    return float(value.detach()), x.grad[0].permute(1, 2, 0).cpu().double().numpy()


class _TorchRunner:
    """PyTorch eager: `torch.optim.LBFGS` (strong Wolfe) or `torch.optim.Adam` on the pixels."""

    key = TORCH_EAGER
    name = "PyTorch eager"

    def __init__(self, cfg: BenchConfig, loss: TorchStyleLoss, x0_hwc: np.ndarray, steps: int):
        torch = loss.torch
        self.torch, self.cfg, self.loss, self.steps = torch, cfg, loss, steps
        self.x0 = loss.image(x0_hwc)
        self.info: dict[str, Any] = {}

    def _sync(self) -> None:
        if self.loss.device.type == "cuda":
            self.torch.cuda.synchronize(self.loss.device)

    def _optimize(self, steps: int) -> dict[str, Any]:
        with torch_float32(self.torch, self.cfg.precision == "highest"):
            return self._optimize_at_precision(steps)

    def _optimize_at_precision(self, steps: int) -> dict[str, Any]:
        torch = self.torch
        x = self.x0.clone().requires_grad_(True)
        trace = {"evaluations": 0, "losses": []}

        def closure():
            opt.zero_grad(set_to_none=True)
            value = self.loss(x)
            value.backward()
            trace["evaluations"] += 1
            trace["losses"].append(value.detach())
            return value

        if self.cfg.optimizer == "lbfgs":
            # All iterations in one step() call, as in the usual style-transfer scripts: each
            # iteration starts from the line search's last evaluation, none is repeated. The
            # tolerances are off so that exactly `steps` iterations run, as in gen_jax.
            opt = torch.optim.LBFGS(
                [x],
                lr=1.0,
                max_iter=steps,
                max_eval=1 + MAX_LINESEARCH_STEPS * steps,
                tolerance_grad=0.0,
                tolerance_change=0.0,
                history_size=LBFGS_HISTORY,
                line_search_fn="strong_wolfe",
            )
            opt.step(closure)
            iterations = opt.state[x]["n_iter"]
            with torch.no_grad():
                last = self.loss(x)  # the line search does not keep its last loss
        else:
            opt = torch.optim.Adam([x], lr=ADAM_LEARNING_RATE)
            for _ in range(steps):
                opt.step(closure)
            iterations = steps
            with torch.no_grad():
                last = self.loss(x)  # optimize_image also evaluates the final iterate
        self._sync()
        return {
            "iterations": int(iterations),
            "evaluations": trace["evaluations"],
            "loss_start": float(trace["losses"][0]),
            "loss_end": float(last),
        }

    def setup(self, log: Log) -> None:
        t0 = time.perf_counter()
        self._optimize(min(2, self.steps))
        self.info["first_call_s"] = time.perf_counter() - t0
        log(
            f"[{self.key}] first {min(2, self.steps)} iteration(s) {self.info['first_call_s']:.1f} s"
        )

    def run(self) -> float:
        self._sync()
        t0 = time.perf_counter()
        self.info.update(self._optimize(self.steps))
        return time.perf_counter() - t0


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_device(
    notes: list[str], num_threads: int | None = None
) -> tuple[Any, dict[str, Any]] | None:
    """PyTorch's device matching JAX's (None when there is none), and its facts."""
    import torch

    if num_threads is not None:
        default = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        notes.append(f"torch.set_num_threads({num_threads}) (default {default}).")
    info: dict[str, Any] = {"version": torch.__version__, "num_threads": torch.get_num_threads()}
    if jax.default_backend() == "gpu":
        if not torch.cuda.is_available():
            notes.append("PyTorch rows skipped: JAX runs on a GPU but PyTorch has no CUDA.")
            return None
        info["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
        # Fixed shapes: let cuDNN pick its fastest kernels, as XLA autotunes on compile.
        torch.backends.cudnn.benchmark = True
        notes.append("PyTorch on CUDA with torch.backends.cudnn.benchmark = True.")
        return torch.device("cuda"), info
    info["device"] = "cpu"
    return torch.device("cpu"), info


# ---------------------------------------------------------------------------------------
# The benchmark.


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def _make_losses(
    cfg: BenchConfig, module, params, torch_device, channels_last: bool, torch_dtype="float32"
):
    """The gen_jax `PerceptualLoss` and, with a device, its PyTorch twin (in ``torch_dtype``)."""
    weights = tuple(1.0 / len(GATYS_STYLE_LAYERS) for _ in GATYS_STYLE_LAYERS)
    jax_loss = PerceptualLoss(
        module,
        content_layers=GATYS_CONTENT_LAYERS,
        style_layers=GATYS_STYLE_LAYERS,
        style_layer_weights=weights,
        alpha=cfg.alpha,
        beta=cfg.beta,
        tv_weight=cfg.tv_weight,
    )
    if torch_device is None:
        return jax_loss, None
    torch_loss = TorchStyleLoss(
        jax.device_get(params),
        preprocessing=module.preprocessing,
        pooling=cfg.pooling,
        content_layers=GATYS_CONTENT_LAYERS,
        style_layers=GATYS_STYLE_LAYERS,
        style_layer_weights=weights,
        alpha=cfg.alpha,
        beta=cfg.beta,
        tv_weight=cfg.tv_weight,
        device=torch_device,
        channels_last=channels_last,
        dtype=torch_dtype,
    )
    return jax_loss, torch_loss


def _targets(module, params, jax_loss, torch_loss, content, style, precision: str):
    """Targets on both sides, each computed by its own implementation of the network, at
    `precision` (one of `PRECISIONS`)."""
    highest = precision == "highest"
    prec = jax_precision(precision)
    targets = content_targets(module, params, content, jax_loss.content_layers, precision=prec)
    grams = style_grams(module, params, style, jax_loss.style_layers, precision=prec)
    if torch_loss is not None:
        _set_torch_targets(torch_loss, content, style, highest)
    return targets, grams


def _set_torch_targets(loss: TorchStyleLoss, content, style, highest: bool = True) -> None:
    """``loss``'s targets from HWC images, TF32 off when ``highest``."""
    with torch_float32(loss.torch, highest):
        loss.set_targets(loss.image(content), loss.image(style))


def check_image(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(content, style, image) of the equal-work check: the image is the content image plus
    uniform noise of +-0.1, off the content image so that every term is non-zero."""
    content, style, _ = load_images(size, seed)
    noise = np.random.default_rng(seed).uniform(-0.1, 0.1, content.shape).astype(np.float32)
    return content, style, np.clip(content + noise, 0.0, 1.0)


def check_references(cfg: BenchConfig, module, params, torch_loss) -> dict[str, Any]:
    """What every gen_jax algorithm's equal-work check is compared with, computed once:
    PyTorch's loss and gradient at the check image on its device (float32, targets
    included), and the same objective in float64 on the CPU (PyTorch's twin in float64,
    its targets in float64 too), the reference both float32 sides are measured against."""
    content, style, image = check_image(cfg.check_size, cfg.seed)
    _set_torch_targets(torch_loss, content, style)
    t_value, t_grad = torch_loss_and_grad(torch_loss, image)
    _, exact = _make_losses(
        cfg, module, params, torch_loss.torch.device("cpu"), False, torch_dtype="float64"
    )
    _set_torch_targets(exact, content, style)
    x_value, x_grad = torch_loss_and_grad(exact, image)
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


def _fmt_pixels_off(check: dict[str, Any], side: str) -> str:
    count, box = check[f"pixels_off_{side}"], check[f"pixels_off_box_{side}"]
    if box is None:
        return f"{count}"
    return f"{count} (rows {box[0]}-{box[1]}, columns {box[2]}-{box[3]})"


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
    cfg,
    module,
    params,
    jax_loss,
    torch_loss,
    log: Log,
    algorithm: str | None = None,
    references: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Loss and gradient of both implementations, and of the float64 reference, at one
    perturbed image of `check_size`, gen_jax's convolutions by ``algorithm`` (None:
    ``jax_loss``'s own); ``references``: `check_references`'s (None: computed here)."""
    if algorithm is not None:
        jax_loss = with_algorithm(jax_loss, algorithm)
        module = jax_loss.module
    if references is None:
        references = check_references(cfg, module, params, torch_loss)
    content, style, image = check_image(cfg.check_size, cfg.seed)
    targets, grams = _targets(module, params, jax_loss, None, content, style, "highest")
    j_value, j_grad = jax_loss_and_grad(jax_loss, image, params, targets, grams)
    j_grad = np.asarray(j_grad, np.float64)
    t_value, t_grad = references["torch"]
    x_value, x_grad = references["float64"]
    check = {
        "conv_algorithm": getattr(jax_loss.module, "conv_algorithm", None),
        "size": cfg.check_size,
        "loss_gen_jax": j_value,
        "loss_torch": t_value,
        "loss_float64": x_value,
        "loss_rel_diff": _relative(j_value, t_value),
        "grad_rel_l2_diff": xla_cpu.relative_l2(j_grad, t_grad),
        "loss_error_gen_jax": _relative(j_value, x_value),
        "loss_error_torch": _relative(t_value, x_value),
        "grad_error_gen_jax": xla_cpu.relative_l2(j_grad, x_grad),
        "grad_error_torch": xla_cpu.relative_l2(t_grad, x_grad),
        "pixels": cfg.check_size * cfg.check_size,
        "rtol": CHECK_RTOL,
        "grad_rtol": CHECK_GRAD_RTOL,
    }
    for side, grad in (("gen_jax", j_grad), ("torch", t_grad)):
        check[f"pixels_off_{side}"], check[f"pixels_off_box_{side}"] = pixels_off(grad, x_grad)
    check["passed"] = check_passed(check)
    log(
        f"[check, conv {check['conv_algorithm']}] {cfg.check_size} px: loss gen_jax "
        f"{j_value:.7g}, PyTorch {t_value:.7g}, float64 {x_value:.7g}; gradient rel. L2 "
        f"from float64: gen_jax {check['grad_error_gen_jax']:.1e} "
        f"({check['pixels_off_gen_jax']} pixels off), PyTorch {check['grad_error_torch']:.1e} "
        f"({check['pixels_off_torch']} pixels off); gen_jax from PyTorch "
        f"{check['grad_rel_l2_diff']:.1e}"
    )
    return check


def mark_incomplete(rows: list[dict[str, Any]], asked: dict[int, int]) -> list[str]:
    """Flags (``row["incomplete"] = True``) and describes rows that ran fewer iterations
    than ``asked[size]``: an L-BFGS whose line search found no decrease stops early, and
    its rates then cover less work than the other side's."""
    notes = []
    for row in rows:
        steps = asked[row["size"]]
        row["incomplete"] = row["iterations"] < steps
        if row["incomplete"]:
            notes.append(
                f"INCOMPLETE RUN: {row['name']} at {row['size']} px ran {row['iterations']} of "
                f"{steps} iterations (its L-BFGS stopped: the line search found no decrease), "
                "so the ratios at that size do not compare the same work."
            )
    return notes


def run_benchmark(
    config: BenchConfig,
    log: Log | None = None,
    on_size: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measures both implementations at every size; returns all numbers as a JSON-able dict.

    Args:
      config: what to measure; `None` fields are filled by `BenchConfig.resolve`.
      log: progress sink (default: print to stderr).
      on_size: called with the result so far after each size but the last (its notes say
        which sizes are missing), so that a run cut short keeps what it finished.

    Returns:
      {"config", "device", "images", "network", "check" (the first algorithm's), "checks"
      (one per algorithm), "rows": [{"size", "key", "name",
      "iterations", "evaluations", "iterations_per_s", "evaluations_per_s",
      "flops_per_eval", "speedup_iterations", "speedup_evaluations", ...}], "notes"}.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cfg = config.resolve()
    budget = xla_cpu.tuning_budget()
    xla_cpu.set_tuning_budget(cfg.tune_budget_s)
    try:
        return _run(cfg, log, on_size)
    finally:
        xla_cpu.set_tuning_budget(budget)


def _run(cfg: BenchConfig, log: Log, on_size) -> dict[str, Any]:
    notes: list[str] = []
    device = describe_devices()
    use_torch = cfg.use_torch and _torch_importable()
    if cfg.use_torch and not use_torch:
        notes.append("PyTorch rows skipped: `import torch` failed.")
    torch_device = None
    if use_torch:
        found = _torch_device(notes, cfg.torch_threads)
        if found is not None:
            torch_device, device["torch"] = found
            if cfg.torch_channels_last:
                notes.append("PyTorch activations in torch.channels_last (the image is NCHW).")

    # The network is normalised on the images at the smallest size; the same parameters
    # serve every size and both implementations.
    content, style, image_desc = load_images(min(cfg.sizes), cfg.seed)
    module, params, network = build_network(cfg, np.stack([content, style]))
    jax_loss, torch_loss = _make_losses(cfg, module, params, torch_device, cfg.torch_channels_last)
    log(
        f"style transfer on {device['jax']['platform']} ({device['jax']['device_kind']}), "
        f"{cfg.optimizer}, sizes {cfg.sizes}, iterations {cfg.iterations}; {network}"
    )

    # The equal-work checks run after the timings (below): under "tune" the check's image
    # size has shapes of its own to measure, and a capped tuning budget (and a run's time
    # limit) should go to the sizes that are timed.
    checks: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def result(partial: str | None = None) -> dict[str, Any]:
        return _result_of(cfg, device, image_desc, network, checks, rows, notes, partial)

    for done, (size, steps) in enumerate(zip(cfg.sizes, cfg.iterations), 1):
        content, style, _ = load_images(size, cfg.seed)
        targets, grams = _targets(
            module, params, jax_loss, torch_loss, content, style, cfg.precision
        )
        runners: list[Any] = [
            _JaxRunner(cfg, jax_loss, content, params, targets, grams, steps, a, count_flops=i == 0)
            for i, a in enumerate(cfg.conv_algorithms)
        ]
        if torch_loss is not None:
            runners.append(_TorchRunner(cfg, torch_loss, content, steps))
        log(f"== {size}x{size}, {steps} iteration(s)")
        for runner in runners:
            runner.setup(log)
        # Interleaved repeats: both implementations see the same background load on average.
        seconds: dict[str, list[float]] = {r.key: [] for r in runners}
        for rep in range(cfg.repeats):
            for runner in runners:
                elapsed = runner.run()
                seconds[runner.key].append(elapsed)
                info = runner.info
                log(
                    f"[{runner.key}] {size} px repeat {rep + 1}/{cfg.repeats}: {elapsed:.2f} s, "
                    f"{info['iterations']} it, {info['evaluations']} evals, "
                    f"{info['iterations'] / elapsed:.3f} it/s"
                )
        flops = runners[0].info["flops_per_eval"]
        size_rows = []
        for runner in runners:
            median = statistics.median(seconds[runner.key])
            info = {
                k: v
                for k, v in runner.info.items()
                if k not in ("flops_per_eval", "flops_platform")
            }
            size_rows.append(
                {
                    "size": size,
                    "key": runner.key,
                    "name": runner.name,
                    "seconds": median,
                    "repeat_seconds": seconds[runner.key],
                    "iterations_per_s": info["iterations"] / median,
                    "evaluations_per_s": info["evaluations"] / median,
                    "flops_per_eval": flops,
                    "flops_platform": runners[0].info["flops_platform"],
                    "achieved_flops_per_s": flops * info["evaluations"] / median,
                    **info,
                }
            )
        reference = next((r for r in size_rows if r["key"] == TORCH_EAGER), None)
        for row in size_rows:
            for what in ("iterations", "evaluations"):
                row[f"speedup_{what}"] = (
                    row[f"{what}_per_s"] / reference[f"{what}_per_s"] if reference else None
                )
            if reference:
                row["loss_start_rel_diff"] = _relative(
                    row["loss_start"], size_rows[0]["loss_start"]
                )
        rows += size_rows

        if on_size is not None and done < len(cfg.sizes):
            missing = ", ".join(str(s) for s in cfg.sizes[done:])
            on_size(
                result(
                    f"PARTIAL RESULT: sizes {missing} px not measured yet"
                    + ("; the equal-work checks run after the last size." if torch_loss else ".")
                )
            )

    if torch_loss is not None:
        references = check_references(cfg, module, params, torch_loss)
        for algorithm in cfg.conv_algorithms:
            check = equal_work_check(
                cfg, module, params, jax_loss, torch_loss, log, algorithm, references
            )
            checks.append(check)
            if not check["passed"]:
                notes.append(
                    f"EQUAL-WORK CHECK FAILED (conv {algorithm}): gen_jax's loss or gradient "
                    "is further from the float64 reference than both the tolerance and "
                    "PyTorch's own; the timings may compare different computations."
                )
    return result()


def _result_of(cfg, device, image_desc, network, checks, rows, notes, partial=None):
    """run_benchmark's JSON-able result: the measurements so far and every note."""
    notes = list(notes)
    if partial:
        notes.insert(0, partial)
    if cfg.precision == "highest":
        notes.append(
            "precision: float32 matmuls and convolutions on both sides in the timings "
            "and in the targets (`optimize_image(precision='highest')`; PyTorch with TF32 "
            "off in cuDNN and matmuls)."
        )
    else:
        notes.append(
            "precision: each framework's default in the timings (on GPUs TF32 convolutions in "
            "cuDNN and XLA, and TF32 matmuls in XLA; on the CPU float32 either way)."
        )
    notes += mark_incomplete(rows, dict(zip(cfg.sizes, cfg.iterations)))
    if any(r.get("timed_compile_events") for r in rows):
        notes.append("gen_jax recompiled during timed runs (see timed_compile_events).")
    return {
        "config": dataclasses.asdict(cfg),
        "device": device,
        "images": image_desc,
        "network": network,
        "check": checks[0] if checks else None,
        "checks": checks,
        "rows": rows,
        "conv_choices": conv_choices() if "tune" in cfg.conv_algorithms else [],
        "notes": notes,
    }


def conv_choices() -> list[dict[str, Any]]:
    """`xla_cpu.tuning_records` of this process as JSON-able rows: each convolution shape
    measured for ``conv_algorithm="tune"``, the choice, and every candidate's seconds."""
    return [
        {
            "input": list(r["lhs_shape"]),
            "kernel": list(r["rhs_shape"]),
            "precision": list(r["precision"]),
            "choice": r["choice"].name,
            "seconds": r["seconds"],
            "failed": r.get("failed", {}),
            "deviation": r.get("deviation", {}),
            "skipped": r.get("skipped"),
            "measure_s": r["measure_s"],
        }
        for r in xla_cpu.tuning_records()
    ]


def format_conv_choices(choices: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per tuned convolution shape, its candidates in ms."""
    if not choices:
        return []
    # Columns in the order the tuner tries the candidates.
    order = [c.name for c in xla_cpu.candidates(max(winograd_tiles))]
    found = {n for c in choices for n in (*c["seconds"], *c.get("failed", {}))}
    names = [n for n in order if n in found] + sorted(found - set(order))
    total = sum(c["measure_s"] for c in choices)
    lines = [
        "",
        (
            "Convolutions chosen by `conv_algorithm='tune'` (`gen_jax.nn.xla_cpu`): ms per "
            "forward pass and input gradient of conv + bias + ReLU, measured outside the "
            f"timed runs (the targets' and the check's shapes included; {total:.1f} s of "
            "measuring; *failed*: the candidate could not compile or run, see the JSON; the last "
            "column: the Winograd candidates' largest relative L2 distance from the direct "
            "convolution's output and input gradient, each candidate's in the JSON):"
        ),
        "",
        "| input NHWC | C -> K | chosen | " + " | ".join(names) + " | Winograd vs direct |",
        "|---|---|---|" + "---:|" * (len(names) + 1),
    ]
    for c in choices:
        failed = c.get("failed", {})
        ms = [
            f"{c['seconds'][n] * 1e3:.2f}"
            if n in c["seconds"]
            else "*failed*"
            if n in failed
            else ""
            for n in names
        ]
        shape = "x".join(str(n) for n in c["input"])
        chosen = c["choice"] + (" (auto's rule: tuning budget spent)" if c.get("skipped") else "")
        deviations = c.get("deviation") or {}
        worst = f"{max(deviations.values()):.1e}" if deviations else ""
        lines.append(
            f"| {shape} | {c['kernel'][2]} -> {c['kernel'][3]} | {chosen} | "
            + " | ".join([*ms, worst])
            + " |"
        )
    return lines


# ---------------------------------------------------------------------------------------
# Output.


def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def format_checks(checks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The equal-work checks' table (one block of rows per gen_jax algorithm) and the loss
    at each size's start image on both sides."""
    several = len(checks) > 1
    status = "passed" if all(c["passed"] for c in checks) else "FAILED"
    first = checks[0]
    lines = [
        (
            f"Equal-work check ({status}): one loss-and-gradient evaluation at "
            f"{first['size']}x{first['size']} (the content image plus uniform noise of "
            "+-0.1), highest matmul/conv precision on both sides, targets included"
            + (", for each gen_jax convolution algorithm. " if several else ". ")
            + "The reference is the same objective in float64 (PyTorch's twin on the CPU). "
            f"It passes when gen_jax's loss is within {first['rtol']:g} and its gradient "
            f"within {first['grad_rtol']:g} (relative L2) of the float64 ones, or no further "
            "from them than PyTorch's. *Pixels off*: pixels whose gradient is further from "
            f"float64's than {CHECK_PIXEL_TOL:g} of its largest entry, and the box around them; "
            "rounding that moves a max-pool or ReLU choice between near-tied inputs shows "
            "as one small box."
        ),
        "",
        (
            "| quantity | gen_jax | PyTorch | float64 | gen_jax vs PyTorch | gen_jax vs float64 "
            "| PyTorch vs float64 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for check in checks:
        label = f" (conv {check['conv_algorithm']})" if several else ""
        failed = "" if check["passed"] or not several else " FAILED"
        lines += [
            (
                f"| loss{label}{failed} | {check['loss_gen_jax']:.9g} | "
                f"{check['loss_torch']:.9g} | {check['loss_float64']:.9g} | "
                f"{check['loss_rel_diff']:.1e} | {check['loss_error_gen_jax']:.1e} | "
                f"{check['loss_error_torch']:.1e} |"
            ),
            (
                f"| gradient, relative L2{label} | | | | {check['grad_rel_l2_diff']:.1e} | "
                f"{check['grad_error_gen_jax']:.1e} | {check['grad_error_torch']:.1e} |"
            ),
            (
                f"| pixels off (of {check['pixels']}){label} | "
                f"{_fmt_pixels_off(check, 'gen_jax')} | {_fmt_pixels_off(check, 'torch')} "
                "| | | | |"
            ),
        ]
    for size in dict.fromkeys(row["size"] for row in rows):
        size_rows = [row for row in rows if row["size"] == size]
        torch_row = next((r for r in size_rows if r["key"] == TORCH_EAGER), None)
        if torch_row is None:
            continue
        t = torch_row["loss_start"]
        for row in size_rows:
            if row is torch_row:
                continue
            label = f" ({row['key']})" if several else ""
            j = row["loss_start"]
            lines.append(
                f"| loss at the start image, {size} px{label} | {j:.9g} | {t:.9g} | | "
                f"{_relative(j, t):.1e} | | |"
            )
    return lines


def format_markdown(result: dict[str, Any]) -> str:
    """The comparison table with its device, work and FLOP context."""
    cfg, dev = result["config"], result["device"]
    opt = {"lbfgs": "L-BFGS", "adam": "Adam"}[cfg["optimizer"]]
    header = ("size", "implementation", "iterations", "evaluations", "s (median)",
              "repeats min-max", "iterations/s", "evaluations/s", "vs PyTorch (it/s)",
              "vs PyTorch (evals/s)", "achieved GFLOP/s", "loss start -> end")  # fmt: skip
    lines = [
        f"## Gatys style transfer through VGG19, {opt}",
        "",
        "| " + " | ".join(header) + " |",
        "|---:|---|" + "---:|" * (len(header) - 2),
    ]
    for row in result["rows"]:
        reps = row["repeat_seconds"]
        cells = (
            f"{row['size']}",
            row["name"],
            f"{row['iterations']}",
            f"{row['evaluations']}",
            f"{row['seconds']:.2f}",
            f"{min(reps):.2f}-{max(reps):.2f}",
            f"{row['iterations_per_s']:.3f}",
            f"{row['evaluations_per_s']:.3f}",
            _fmt_ratio(row["speedup_iterations"]),
            _fmt_ratio(row["speedup_evaluations"]),
            f"{row['achieved_flops_per_s'] / 1e9:.1f}",
            f"{row['loss_start']:.6g} -> {row['loss_end']:.6g}",
        )
        lines.append("| " + " | ".join(cells) + " |")

    checks = result.get("checks") or ([result["check"]] if result["check"] else [])
    if checks:
        lines += ["", *format_checks(checks, result["rows"])]

    lines += format_conv_choices(result.get("conv_choices", []))
    jd, cpu = dev["jax"], dev["cpu"]
    facts = [
        (
            f"JAX {jd['version']}: platform `{jd['platform']}`, device_kind "
            f"`{jd['device_kind']}` ({jd['device_count']} device(s)); XLA:CPU uses the "
            f"{cpu['schedulable_cores']} schedulable cores"
        ),
    ]
    if "torch" in dev:
        td = dev["torch"]
        facts.append(
            f"PyTorch {td['version']} on {td['device']}, {td['num_threads']} CPU threads "
            + ("(set by --torch-threads)" if cfg["torch_threads"] else "(its default)")
        )
    facts += [
        (
            f"CPU: {cpu['model']}, {cpu['schedulable_cores']} schedulable cores "
            f"(os.cpu_count() = {cpu['os_cpu_count']})"
        ),
        format_environment(dev.get("environment", {})),
        f"network: {result['network']}; images: {result['images']}",
        (
            f"objective: alpha={cfg['alpha']:g} x content(relu4_2) + beta={cfg['beta']:g} x "
            "mean of the Gram losses of relu1_1..relu5_1 (per-position Grams) + "
            f"tv_weight={cfg['tv_weight']:g} x squared TV; start at the content image"
        ),
    ]
    if cfg["optimizer"] == "lbfgs":
        facts.append(
            f"L-BFGS: history {LBFGS_HISTORY}, strong-Wolfe line search of at most "
            f"{MAX_LINESEARCH_STEPS} evaluations per iteration (optax zoom line search in "
            "`optimize_image`; `torch.optim.LBFGS(line_search_fn='strong_wolfe')`, all "
            "iterations in one `step` call, tolerances 0); evaluations = loss-and-gradient "
            "evaluations including the one at the start image; the two line searches differ "
            "in their first trial step and bracketing, hence different evaluation counts"
        )
    else:
        facts.append(
            f"Adam(lr={ADAM_LEARNING_RATE}): one loss-and-gradient evaluation per iteration, "
            "plus one forward pass at the final image on both sides"
        )
    flops = {r["size"]: r["flops_per_eval"] for r in result["rows"]}
    facts.append(
        "FLOPs of one loss-and-gradient evaluation (XLA cost analysis of `value_and_grad` "
        f"with direct convolutions compiled for the {result['rows'][0]['flops_platform']} "
        "backend (XLA:GPU's analysis leaves out cuDNN's convolutions), 2 per multiply-add, "
        "taps on the zero padding not counted; used for every row, so achieved GFLOP/s is "
        "nominal where Winograd does fewer multiplications): "
        + ", ".join(f"{s} px {f / 1e9:.1f} GFLOP" for s, f in flops.items())
    )
    facts.append(
        f"timing: median of {cfg['repeats']} repeats of the whole optimisation (same start, "
        "same work each repeat), repeats interleaved across implementations; ratios are "
        "gen_jax over PyTorch eager at the same size"
    )
    untimed = []
    for r in result["rows"]:
        if "compile_s" in r:
            tuning = f"tuning {r['tune_s']:.1f} s, " if "tune_s" in r else ""
            untimed.append(
                f"{r['size']} px {r['key']} {tuning}compile {r['compile_s']:.1f} s (first call "
                f"{r['first_call_s']:.1f} s)"
            )
        elif "first_call_s" in r:
            untimed.append(f"{r['size']} px PyTorch warm-up {r['first_call_s']:.1f} s")
    facts.append("untimed: " + "; ".join(untimed))
    facts += result["notes"]
    lines += [""] + [f"- {fact}" for fact in facts]
    return "\n".join(lines) + "\n"


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, found {text!r}"
        ) from e


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _parse_args(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.synthesis_speed",
        description="Gatys style transfer through VGG19: gen_jax vs PyTorch eager.",
    )
    p.add_argument("--sizes", type=_int_list, default=(256, 512), help="square image sizes")
    p.add_argument(
        "--iterations",
        type=_int_list,
        default=None,
        help="timed iterations per run, one count or one per size (default: ~12 x (256/S)^2 "
        "on CPU, at least 2; ~200 x (256/S)^2 otherwise)",
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="highest",
        help="matmuls and convolutions in the timed runs: highest (float32 on both sides) or "
        "default (each framework's own: TF32 on GPUs; the same float32 on the CPU)",
    )
    p.add_argument(
        "--weights", default=None, help="VGG19 weights (.h5 Keras notop or torchvision .pth)"
    )
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument(
        "--conv-algorithm",
        "--conv-algorithms",
        dest="conv_algorithms",
        type=_str_list,
        default=("auto",),
        help=f"gen_jax's VGG convolutions, one of {', '.join(CONV_ALGORITHMS)}, or several "
        "comma-separated for one gen_jax row each against the same PyTorch runs (default "
        "auto: Winograd on the CPU's wide layers; tune: each layer's algorithm measured on "
        "this machine, listed in the output)",
    )
    p.add_argument(
        "--tune-budget-s",
        dest="tune_budget_s",
        type=float,
        default=None,
        help="cap on conv_algorithm tune's measuring time; shapes met after it take auto's "
        "rule unmeasured (default: no cap)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default: 3 on CPU, 5 otherwise)"
    )
    p.add_argument("--check_size", type=int, default=64, help="image size of the equal-work check")
    p.add_argument("--alpha", type=float, default=1.0, help="content weight")
    p.add_argument("--beta", type=float, default=1e3, help="style weight")
    p.add_argument("--tv_weight", type=float, default=1.0, help="total-variation weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", dest="use_torch", action="store_false", help="skip PyTorch")
    p.add_argument(
        "--torch-contiguous",
        dest="torch_channels_last",
        action="store_false",
        help="PyTorch activations in NCHW contiguous format instead of channels_last",
    )
    p.add_argument(
        "--torch-threads",
        dest="torch_threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) (default: leave PyTorch's default pool)",
    )
    p.add_argument(
        "--out", default=None, help="write the markdown table here, and the JSON beside it"
    )
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    cfg = BenchConfig(**{k: v for k, v in vars(args).items() if k in fields})
    try:
        cfg.validate()
    except ValueError as e:
        p.error(str(e))
    check_out_paths(p, out=args.out)
    return cfg, args


def json_path(markdown_path: str) -> str:
    """The JSON file written beside the markdown one: FILE.md -> FILE.json."""
    root, ext = os.path.splitext(markdown_path)
    return (root if ext == ".md" else markdown_path) + ".json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: runs the benchmark, prints the table, writes --out (.md) and its .json."""
    config, args = _parse_args(argv)

    def save(result: dict[str, Any]) -> str:
        table = format_markdown(result)
        if args.out:
            write_text(args.out, table)
            write_text(json_path(args.out), json.dumps(result, indent=2, allow_nan=True) + "\n")
        return table

    result = run_benchmark(config, on_size=save if args.out else None)
    print(save(result))
    return result


if __name__ == "__main__":
    main()
