"""The PyTorch references the benchmarks time gen_jax against: the one module here that
imports torch.

torch is imported inside the functions, so this module, and every benchmark, imports and
runs its gen_jax rows without it; `torch_importable` says whether the reference rows can
run.

* set-up: `torch_importable`, `torch_device` (PyTorch's device matching JAX's, its thread
  pool, cuDNN's autotuning), `torch_float32` (TF32 off), `synchronize`;
* the DCGAN of `benchmarks.step_speed`: `DCGAN_ARCHS`, `build_torch_dcgan` and
  `DCGANTrainStep`, pytorch/examples' network and update;
* the style transfer of `benchmarks.synthesis_speed`: `build_torch_vgg`, `TorchStyleLoss`
  (`style_loss_like` makes the twin of a gen_jax `PerceptualLoss`), `torch_loss_and_grad`
  and `optimize_style` (`torch.optim.LBFGS` or `Adam` on the pixels).

PyTorch works in NCHW; images cross over as [H, W, 3] / NHWC numpy arrays.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

# The reference shares the GPU with JAX in the benchmark's process: JAX's default
# preallocation of 75% of its memory would leave PyTorch little. Harmless on the CPU; read
# when JAX starts its backend, which no benchmark does before importing this module.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import numpy as np

from benchmarks.machine import schedulable_cores
from gen_jax.models.features import vgg_layer_names

__all__ = [
    "DCGAN_ARCHS",
    "DCGANTrainStep",
    "TorchStyleLoss",
    "build_torch_dcgan",
    "build_torch_vgg",
    "optimize_style",
    "style_loss_like",
    "synchronize",
    "torch_device",
    "torch_float32",
    "torch_importable",
    "torch_loss_and_grad",
]


def _torch():
    import torch

    return torch


# ---------------------------------------------------------------------------------------
# Set-up.


def torch_importable() -> bool:
    """Whether ``import torch`` works here (the reference rows are skipped when not)."""
    try:
        _torch()
    except ImportError:
        return False
    return True


def torch_device(
    notes: list[str], *, num_threads: int | None = None, match_xla_cores: bool = False
) -> tuple[Any, dict[str, Any]] | None:
    """PyTorch's device matching the one JAX runs on, and the facts about it.

    On a GPU: CUDA, with cuDNN's autotuning on (fixed shapes; XLA autotunes when it
    compiles); None, with a note, when this PyTorch has no CUDA. Elsewhere: the CPU.

    Args:
      notes: the benchmark's notes; each setting made here is added to them.
      num_threads: ``torch.set_num_threads(num_threads)`` first (None: the default pool).
      match_xla_cores: on the CPU, without ``num_threads``, give PyTorch's pool the cores
        XLA:CPU uses (`schedulable_cores`).

    Returns:
      (device, {"version", "device", "num_threads"}) or None.
    """
    torch = _torch()
    info: dict[str, Any] = {"version": torch.__version__}
    if num_threads is not None:
        default = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        notes.append(f"torch.set_num_threads({num_threads}) (default {default}).")
    if jax.default_backend() == "gpu":
        if not torch.cuda.is_available():
            notes.append("PyTorch rows skipped: JAX runs on a GPU but PyTorch has no CUDA.")
            return None
        info["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
        torch.backends.cudnn.benchmark = True
        notes.append("PyTorch on CUDA with torch.backends.cudnn.benchmark = True.")
        device = torch.device("cuda")
    else:
        info["device"] = "cpu"
        device = torch.device("cpu")
        cores, before = schedulable_cores(), torch.get_num_threads()
        if match_xla_cores and num_threads is None and before != cores:
            torch.set_num_threads(cores)
            notes.append(
                f"torch.set_num_threads({cores}) (was {before}) to match the {cores} cores "
                "XLA:CPU uses."
            )
    info["num_threads"] = torch.get_num_threads()
    return device, info


def synchronize(device) -> None:
    """Waits for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        _torch().cuda.synchronize(device)


@contextlib.contextmanager
def torch_float32(enabled: bool = True) -> Iterator[None]:
    """TF32 off in PyTorch's CUDA matmuls and cuDNN convolutions while the block runs.

    Through the ``fp32_precision`` settings where PyTorch has them (2.9 on; it deprecates
    ``allow_tf32`` and refuses a mix of the two), else through ``allow_tf32``.
    """
    if not enabled:
        yield
        return
    backends = _torch().backends
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


# ---------------------------------------------------------------------------------------
# DCGAN (benchmarks.step_speed).

# image_size -> (channels, start resolution, number of 2x stages); the two networks of the
# task (pytorch/examples at 64x64x3, the Fashion-MNIST variant at 28x28x1).
DCGAN_ARCHS = {64: (3, 4, 4), 28: (1, 7, 2)}


def build_torch_dcgan(image_size: int, ngf: int, ndf: int, nz: int):
    """The pytorch/examples DCGAN pair (or its 28x28x1 variant), N(0, 0.02) init.

    Returns:
      (generator, discriminator): G maps z [B, nz, 1, 1] to [B, C, H, W] in [-1, 1]; D maps
      images to logits [B, 1, 1, 1] (no sigmoid: the loss is BCEWithLogitsLoss).
    """
    torch = _torch()
    from torch import nn

    channels, start, n = DCGAN_ARCHS[image_size]
    g_layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz, ngf * 2 ** (n - 1), start, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 2 ** (n - 1)),
        nn.ReLU(True),
    ]
    for i in range(n - 1):
        c_in, c_out = ngf * 2 ** (n - 1 - i), ngf * 2 ** (n - 2 - i)
        g_layers += [
            nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(True),
        ]
    g_layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh()]

    d_layers: list[nn.Module] = [
        nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
    ]
    for i in range(1, n):
        c_in, c_out = ndf * 2 ** (i - 1), ndf * 2**i
        d_layers += [
            nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2, inplace=True),
        ]
    d_layers += [nn.Conv2d(ndf * 2 ** (n - 1), 1, start, 1, 0, bias=False)]

    def weights_init(m: nn.Module) -> None:
        # pytorch/examples' weights_init: conv N(0, 0.02), batch-norm scale N(1, 0.02).
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    with torch.no_grad():
        generator, discriminator = nn.Sequential(*g_layers), nn.Sequential(*d_layers)
        generator.apply(weights_init)
        discriminator.apply(weights_init)
    return generator, discriminator


class DCGANTrainStep:
    """pytorch/examples' DCGAN update on a fixed batch: each call is one D update (the real
    batch and a detached fake one from fresh latents, BCE with logits) then one G update
    (non-saturating, fresh latents), Adam for both, batch norm in train mode.

    Args:
      real_nhwc: the real batch [B, H, W, C] in [-1, 1] (a writable host array), kept on
        ``device`` for every step.
      image_size, ngf, ndf, nz: the networks (`build_torch_dcgan`).
      device: where the networks and the batch live.
      seed: ``torch.manual_seed`` before the initialisation.
      learning_rate, betas: Adam's.
      channels_last: tensors and modules in ``torch.channels_last``.
      compile_modules: G and D under ``torch.compile``.
    """

    def __init__(
        self,
        real_nhwc: np.ndarray,
        *,
        image_size: int,
        ngf: int,
        ndf: int,
        nz: int,
        device,
        seed: int,
        learning_rate: float,
        betas: tuple[float, float],
        channels_last: bool,
        compile_modules: bool = False,
    ):
        torch = _torch()
        self.torch, self.device, self.nz = torch, device, nz
        self.batch_size = real_nhwc.shape[0]
        torch.manual_seed(seed)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        g, d = build_torch_dcgan(image_size, ngf, ndf, nz)
        self.g = g.to(device, memory_format=memory_format).train()
        self.d = d.to(device, memory_format=memory_format).train()
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=learning_rate, betas=betas)
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=learning_rate, betas=betas)
        self.g_fwd = torch.compile(self.g) if compile_modules else self.g
        self.d_fwd = torch.compile(self.d) if compile_modules else self.d
        self.bce = torch.nn.BCEWithLogitsLoss()
        real = torch.from_numpy(real_nhwc).permute(0, 3, 1, 2)  # NHWC -> NCHW
        self.real = real.to(device).contiguous(memory_format=memory_format)
        self.ones = torch.ones(self.batch_size, 1, 1, 1, device=device)
        self.zeros = torch.zeros(self.batch_size, 1, 1, 1, device=device)

    def __call__(self) -> None:
        torch, b, nz = self.torch, self.batch_size, self.nz
        # D update on a real batch and a fake one from fresh latents; no_grad = detached.
        z = torch.randn(b, nz, 1, 1, device=self.device)
        with torch.no_grad():
            fake = self.g_fwd(z)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss = self.bce(self.d_fwd(self.real), self.ones) + self.bce(self.d_fwd(fake), self.zeros)
        d_loss.backward()
        self.d_opt.step()
        # G update (non-saturating: target 1 on fakes) on fresh latents. D's parameters are
        # frozen so no D weight gradients are computed, as gen_jax differentiates w.r.t. G only.
        z = torch.randn(b, nz, 1, 1, device=self.device)
        self.d.requires_grad_(False)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss = self.bce(self.d_fwd(self.g_fwd(z)), self.ones)
        g_loss.backward()
        self.g_opt.step()
        self.d.requires_grad_(True)

    def sync(self) -> None:
        synchronize(self.device)


# ---------------------------------------------------------------------------------------
# Style transfer through VGG19 (benchmarks.synthesis_speed).


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
    torch = _torch()
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
        torch = _torch()
        self.torch, self.device = torch, device
        self.dtype = getattr(torch, dtype)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.style_layer_weights = tuple(style_layer_weights)
        self.alpha, self.beta, self.tv_weight = alpha, beta, tv_weight
        self.preprocessing, self.pooling = preprocessing, pooling
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

    def set_target_images(self, content: np.ndarray, style: np.ndarray, highest: bool = True):
        """`set_targets` from [H, W, 3] images, TF32 off when ``highest``."""
        with torch_float32(highest):
            self.set_targets(self.image(content), self.image(style))

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


def style_loss_like(
    loss, params: dict, *, device: Any, channels_last: bool, dtype: str = "float32"
) -> TorchStyleLoss:
    """The PyTorch twin of a gen_jax `PerceptualLoss` (squared TV) over a VGG19 module:
    the same layers, weights, pooling and input normalisation, ``params`` converted."""
    return TorchStyleLoss(
        jax.device_get(params),
        preprocessing=loss.module.preprocessing,
        pooling=loss.module.pooling,
        content_layers=loss.content_layers,
        style_layers=loss.style_layers,
        style_layer_weights=loss.style_layer_weights,
        alpha=loss.alpha,
        beta=loss.beta,
        tv_weight=loss.tv_weight,
        device=device,
        channels_last=channels_last,
        dtype=dtype,
    )


def torch_loss_and_grad(loss: TorchStyleLoss, image_hwc: np.ndarray) -> tuple[float, np.ndarray]:
    """One loss-and-gradient evaluation in the loss's dtype (float32 without TF32, or
    float64), the gradient as float64 HWC."""
    x = loss.image(image_hwc).requires_grad_(True)
    with torch_float32():
        value = loss(x)
        value.backward()
    return float(value.detach()), x.grad[0].permute(1, 2, 0).cpu().double().numpy()


def optimize_style(
    loss: TorchStyleLoss,
    x0,
    *,
    optimizer: str,
    steps: int,
    highest: bool,
    history_size: int,
    max_linesearch_steps: int,
    learning_rate: float,
) -> dict[str, Any]:
    """``steps`` iterations of the optimiser on the pixels of ``x0`` [1, 3, H, W].

    "lbfgs": ``torch.optim.LBFGS(history_size, line_search_fn="strong_wolfe")``, all
    iterations in one ``step`` call as in the usual style-transfer scripts, tolerances 0 so
    that exactly ``steps`` run (unless the line search finds no decrease); "adam":
    ``torch.optim.Adam(learning_rate)``, one evaluation per iteration. Then one forward pass
    at the final image (gen_jax's `optimize_image` reports that loss too). TF32 is off
    when ``highest``. Waits for the device before returning.

    Returns:
      {"iterations", "evaluations" (loss-and-gradient calls), "loss_start", "loss_end"}.
    """
    torch = loss.torch
    with torch_float32(highest):
        x = x0.clone().requires_grad_(True)
        trace = {"evaluations": 0, "losses": []}

        def closure():
            opt.zero_grad(set_to_none=True)
            value = loss(x)
            value.backward()
            trace["evaluations"] += 1
            trace["losses"].append(value.detach())
            return value

        if optimizer == "lbfgs":
            # Each iteration starts from the line search's last evaluation; none is repeated.
            opt = torch.optim.LBFGS(
                [x],
                lr=1.0,
                max_iter=steps,
                max_eval=1 + max_linesearch_steps * steps,
                tolerance_grad=0.0,
                tolerance_change=0.0,
                history_size=history_size,
                line_search_fn="strong_wolfe",
            )
            opt.step(closure)
            iterations = opt.state[x]["n_iter"]
        else:
            opt = torch.optim.Adam([x], lr=learning_rate)
            for _ in range(steps):
                opt.step(closure)
            iterations = steps
        with torch.no_grad():
            last = loss(x)  # the line search does not keep its last loss
        synchronize(loss.device)
    return {
        "iterations": int(iterations),
        "evaluations": trace["evaluations"],
        "loss_start": float(trace["losses"][0]),
        "loss_end": float(last),
    }
