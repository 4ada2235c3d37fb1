"""DCGAN train-step throughput: gen_jax (per-step jit, scan-fused chunks) against PyTorch eager.

    python -m benchmarks.step_speed [--image_size 64] [--batch_size 64] [--steps N]
        [--chunk K] [--warmup W] [--repeats R] [--out FILE.json] [--markdown FILE.md]
        [--no-torch] [--torch-compile]

Rows, all on the device JAX uses (and the matching PyTorch device):

  1. gen_jax, `jax.jit(train_step, donate_argnums=0)`, one step per dispatch, the batch
     already on the device;
  2. gen_jax, `make_train_chunk`: K steps fused with `lax.scan` in one dispatch, each
     step's batch drawn on the device from a device-resident uint8 dataset;
  3. PyTorch eager (when `import torch` works): the pytorch/examples DCGAN network and the
     same update, written here; optionally also under `torch.compile`.

The work per step is the same in every row: one D update (a real and a detached fake
batch, BCE with logits) then one G update (non-saturating), Adam(2e-4, b1=0.5, b2=0.999)
for both, batch norm in train mode. gen_jax's state is created with `use_ema=False` since
the reference keeps no parameter average. The model FLOPs per step are XLA's count for the
compiled single step (2 per multiply-add), used for every row's achieved FLOP/s.

Timing: compilation (JAX) and the first steps (PyTorch) are untimed and reported apart;
then each implementation runs R repeats of about N steps, the repeats interleaved across
implementations so that a change in background load hits every row alike, and the
reported time is the median repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# Both frameworks share one GPU in this process: JAX's default preallocation of 75% of its
# memory would leave PyTorch little. Harmless on the CPU; must precede JAX's backend init.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.flops import xla_flops
from benchmarks.machine import describe_devices, schedulable_cores
from benchmarks.report import check_out_paths, write_text
from gen_jax.data import epoch_batch_indices, to_signed_unit
from gen_jax.losses import (
    minimax_discriminator_loss,
    non_saturating_generator_loss,
)
from gen_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.train import (
    PlayerSpec,
    create_gan_state,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    normal_latent,
)

# image_size -> (channels, start resolution, number of 2x stages); the two networks of the
# task (pytorch/examples at 64x64x3, the Fashion-MNIST variant at 28x28x1).
_ARCHS = {64: (3, 4, 4), 28: (1, 7, 2)}

TORCH_EAGER = "torch_eager"
LEARNING_RATE, BETA1, BETA2 = 2e-4, 0.5, 0.999

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to measure; `None` fields take per-backend defaults (see `resolve`)."""

    image_size: int = 64
    batch_size: int = 64
    steps: int | None = None  # timed steps per repeat
    chunk: int | None = None  # K, steps per scan-fused dispatch
    warmup: int | None = None  # untimed steps per implementation
    repeats: int | None = None
    ngf: int = 64
    ndf: int = 64
    nz: int = 100
    dataset_size: int = 1024
    seed: int = 0
    use_torch: bool = True
    torch_compile: bool = False
    torch_channels_last: bool = True

    def resolve(self) -> BenchConfig:
        """Fills the `None` fields: short runs on the CPU, longer ones on accelerators."""
        on_cpu = jax.default_backend() == "cpu"
        defaults = {
            "steps": 10 if on_cpu else 100,
            # make_train_chunk unrolls the scan on the CPU: compile time grows with K.
            "chunk": 4 if on_cpu else 20,
            "warmup": 2 if on_cpu else 10,
            "repeats": 3 if on_cpu else 5,
        }
        cfg = dataclasses.replace(
            self, **{k: v for k, v in defaults.items() if getattr(self, k) is None}
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if self.image_size not in _ARCHS:
            raise ValueError(
                f"image_size: expected one of {sorted(_ARCHS)}, found {self.image_size}"
            )
        for name in ("batch_size", "steps", "chunk", "repeats", "ngf", "ndf", "nz"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}: expected a positive integer, found {value}")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError(f"warmup: expected a non-negative integer, found {self.warmup}")
        if self.dataset_size < self.batch_size:
            raise ValueError(
                f"dataset_size: expected >= batch_size = {self.batch_size}, "
                f"found {self.dataset_size}"
            )


# ---------------------------------------------------------------------------------------
# Runners: setup() does the untimed work, run(n) runs n steps and returns (seconds, steps).


class _JaxStepRunner:
    """gen_jax, one jitted (and donated) train step per dispatch, fixed on-device batch."""

    name = "gen_jax, jit step per dispatch"
    key = "gen_jax_step"

    def __init__(self, cfg: BenchConfig, state, batch):
        self.cfg, self.state, self.batch = cfg, state, batch
        self.train_step = _make_jax_train_step(cfg)
        self.info: dict[str, Any] = {}

    def setup(self, log: Log) -> None:
        t0 = time.perf_counter()
        lowered = jax.jit(self.train_step, donate_argnums=0).lower(self.state, self.batch)
        self.compiled = lowered.compile()
        self.info["compile_s"] = time.perf_counter() - t0
        self.info["flops_per_step"], self.info["flops_platform"] = xla_flops(
            self.train_step, self.state, self.batch, compiled=self.compiled
        )
        log(f"[{self.key}] compiled in {self.info['compile_s']:.1f} s")
        self.run(max(1, self.cfg.warmup))

    def run(self, num_steps: int) -> tuple[float, int]:
        state = self.state
        t0 = time.perf_counter()
        for _ in range(num_steps):
            state, metrics = self.compiled(state, self.batch)
        jax.block_until_ready((state, metrics))
        elapsed = time.perf_counter() - t0
        self.state = state
        return elapsed, num_steps


class _JaxChunkRunner:
    """gen_jax, K steps per dispatch with batches drawn on the device."""

    key = "gen_jax_chunk"

    def __init__(self, cfg: BenchConfig, state, data):
        self.cfg, self.state, self.data = cfg, state, data
        self.name = f"gen_jax, lax.scan chunk of K={cfg.chunk} steps per dispatch"
        batch_fn = _make_batch_fn(cfg.dataset_size, cfg.batch_size)
        self.chunk_fn = make_train_chunk(_make_jax_train_step(cfg), batch_fn, cfg.chunk)
        self.info: dict[str, Any] = {}

    def setup(self, log: Log) -> None:
        t0 = time.perf_counter()
        self.compiled = self.chunk_fn.lower(self.state, self.data).compile()
        self.info["compile_s"] = time.perf_counter() - t0
        log(f"[{self.key}] compiled in {self.info['compile_s']:.1f} s (K={self.cfg.chunk})")
        self.run(max(1, self.cfg.warmup))

    def run(self, num_steps: int) -> tuple[float, int]:
        num_chunks = max(1, round(num_steps / self.cfg.chunk))
        state = self.state
        t0 = time.perf_counter()
        for _ in range(num_chunks):
            state, metrics = self.compiled(state, self.data)
        jax.block_until_ready((state, metrics))
        elapsed = time.perf_counter() - t0
        self.state = state
        return elapsed, num_chunks * self.cfg.chunk


def _make_jax_train_step(cfg: BenchConfig):
    """The DCGAN update: non-saturating G loss, BCE (minimax) D loss, z ~ N(0, I)."""
    return make_gan_step(
        gan_phases(
            non_saturating_generator_loss, minimax_discriminator_loss, normal_latent(cfg.nz)
        )
    )


def _make_batch_fn(num_examples: int, batch_size: int):
    """batch_fn for make_train_chunk: an epoch-permuted minibatch of a uint8 NHWC dataset."""

    def batch_fn(data: jax.Array, data_key: jax.Array, step: jax.Array):
        idx = epoch_batch_indices(data_key, step, num_examples, batch_size)
        return {"real": to_signed_unit(data[idx])[None]}  # [n_critic=1, B, H, W, C]

    return batch_fn


# ---------------------------------------------------------------------------------------
# PyTorch reference.


def build_torch_dcgan(image_size: int, ngf: int, ndf: int, nz: int):
    """The pytorch/examples DCGAN pair (or its 28x28x1 variant), N(0, 0.02) init.

    Returns:
      (generator, discriminator): G maps z [B, nz, 1, 1] to [B, C, H, W] in [-1, 1]; D maps
      images to logits [B, 1, 1, 1] (no sigmoid: the loss is BCEWithLogitsLoss).
    """
    import torch
    from torch import nn

    channels, start, n = _ARCHS[image_size]
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


class _TorchRunner:
    """PyTorch eager (or torch.compile'd modules), the same update as gen_jax's GAN step."""

    def __init__(self, cfg: BenchConfig, real_nhwc: np.ndarray, *, compile_modules: bool):
        import torch

        self.torch, self.cfg = torch, cfg
        self.key = "torch_compile" if compile_modules else TORCH_EAGER
        self.name = "PyTorch, torch.compile" if compile_modules else "PyTorch eager"
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.info: dict[str, Any] = {}
        torch.manual_seed(cfg.seed)
        memory_format = torch.channels_last if cfg.torch_channels_last else torch.contiguous_format
        g, d = build_torch_dcgan(cfg.image_size, cfg.ngf, cfg.ndf, cfg.nz)
        self.g = g.to(self.device, memory_format=memory_format).train()
        self.d = d.to(self.device, memory_format=memory_format).train()
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=LEARNING_RATE, betas=(BETA1, BETA2))
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=LEARNING_RATE, betas=(BETA1, BETA2))
        self.g_fwd = torch.compile(self.g) if compile_modules else self.g
        self.d_fwd = torch.compile(self.d) if compile_modules else self.d
        self.bce = torch.nn.BCEWithLogitsLoss()
        b = cfg.batch_size
        # The same fixed on-device batch as the per-step gen_jax row, NHWC -> NCHW.
        real = torch.from_numpy(real_nhwc).permute(0, 3, 1, 2)
        self.real = real.to(self.device).contiguous(memory_format=memory_format)
        self.ones = torch.ones(b, 1, 1, 1, device=self.device)
        self.zeros = torch.zeros(b, 1, 1, 1, device=self.device)

    def _step(self) -> None:
        torch, b, nz = self.torch, self.cfg.batch_size, self.cfg.nz
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

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def setup(self, log: Log) -> None:
        t0 = time.perf_counter()
        self._step()
        self._sync()
        self.info["first_step_s"] = time.perf_counter() - t0
        log(f"[{self.key}] first step {self.info['first_step_s']:.2f} s")
        if self.cfg.warmup > 1:
            self.run(self.cfg.warmup - 1)

    def run(self, num_steps: int) -> tuple[float, int]:
        self._sync()
        t0 = time.perf_counter()
        for _ in range(num_steps):
            self._step()
        self._sync()
        return time.perf_counter() - t0, num_steps


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _prepare_torch_threads(notes: list[str]) -> dict[str, Any]:
    """Gives PyTorch's CPU pool the cores XLA:CPU uses; returns the torch device facts."""
    import torch

    info: dict[str, Any] = {"version": torch.__version__}
    if torch.cuda.is_available():
        info["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
        # Fixed shapes: let cuDNN pick its fastest kernels, as XLA autotunes on compile.
        torch.backends.cudnn.benchmark = True
        notes.append("PyTorch on CUDA with torch.backends.cudnn.benchmark = True.")
    else:
        info["device"] = "cpu"
        cores = schedulable_cores()
        before = torch.get_num_threads()
        if before != cores:
            torch.set_num_threads(cores)
            notes.append(
                f"torch.set_num_threads({cores}) (was {before}) to match the {cores} cores "
                "XLA:CPU uses."
            )
    info["num_threads"] = torch.get_num_threads()
    return info


# ---------------------------------------------------------------------------------------
# The benchmark.


def run_benchmark(config: BenchConfig, log: Log | None = None) -> dict[str, Any]:
    """Measures every row of the comparison; returns all numbers as a JSON-able dict.

    Args:
      config: what to measure; `None` fields are filled by `BenchConfig.resolve`.
      log: progress sink (default: print to stderr).

    Returns:
      {"config", "device", "flops_per_step", "rows": [{"key", "name", "ms_per_step",
      "images_per_s", "achieved_flops_per_s", "speedup_vs_torch_eager", "steps_timed",
      "repeat_ms_per_step", ...}], "notes"}.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cfg = config.resolve()
    notes = [
        "gen_jax states are created with use_ema=False (no EMA of G), as the reference keeps none."
    ]
    use_torch = cfg.use_torch and _torch_importable()
    if cfg.use_torch and not use_torch:
        notes.append("PyTorch rows skipped: `import torch` failed.")
    device = describe_devices()
    if use_torch:
        device["torch"] = _prepare_torch_threads(notes)
        if cfg.torch_channels_last:
            notes.append("PyTorch tensors and modules in torch.channels_last.")
        notes.append(
            "PyTorch freezes D's parameters during the G update (no D weight gradients), "
            "as gen_jax differentiates the G loss w.r.t. G's parameters only."
        )

    channels = _ARCHS[cfg.image_size][0]
    rng = np.random.default_rng(cfg.seed)
    images = rng.integers(
        0, 256, (cfg.dataset_size, cfg.image_size, cfg.image_size, channels), np.uint8
    )
    data = jax.device_put(images)
    batch = {"real": to_signed_unit(data[: cfg.batch_size])[None]}
    log(
        f"DCGAN {cfg.image_size}x{cfg.image_size}x{channels}, batch {cfg.batch_size}, "
        f"ngf={cfg.ngf} ndf={cfg.ndf} nz={cfg.nz} on {device['jax']['platform']} "
        f"({device['jax']['device_kind']})"
    )

    # Two identical states: each JAX row donates (consumes) its own.
    create_state = _make_state_fn(cfg, channels)
    runners: list[Any] = [
        _JaxStepRunner(cfg, create_state(cfg.seed), batch),
        _JaxChunkRunner(cfg, create_state(cfg.seed), data),
    ]
    if use_torch:
        real = np.array(batch["real"][0])  # a writable host copy for torch.from_numpy
        runners.append(_TorchRunner(cfg, real, compile_modules=False))
        if cfg.torch_compile:
            runners.append(_TorchRunner(cfg, real, compile_modules=True))

    for runner in runners:
        runner.setup(log)

    # Interleaved repeats: every implementation sees the same background load on average.
    per_step: dict[str, list[float]] = {r.key: [] for r in runners}
    steps_timed: dict[str, int] = {}
    for rep in range(cfg.repeats):
        for runner in runners:
            elapsed, n = runner.run(cfg.steps)
            per_step[runner.key].append(elapsed / n)
            steps_timed[runner.key] = n
            log(
                f"[{runner.key}] repeat {rep + 1}/{cfg.repeats}: {1e3 * elapsed / n:.1f} ms/step, "
                f"{cfg.batch_size * n / elapsed:.1f} images/s ({n} steps)"
            )

    flops = runners[0].info["flops_per_step"]
    rows = []
    for runner in runners:
        seconds = statistics.median(per_step[runner.key])
        rows.append(
            {
                "key": runner.key,
                "name": runner.name,
                "ms_per_step": 1e3 * seconds,
                "images_per_s": cfg.batch_size / seconds,
                "achieved_flops_per_s": flops / seconds,
                "steps_timed": steps_timed[runner.key],
                "repeat_ms_per_step": [1e3 * s for s in per_step[runner.key]],
                **{
                    k: v
                    for k, v in runner.info.items()
                    if k not in ("flops_per_step", "flops_platform")
                },
            }
        )
    reference = next((r for r in rows if r["key"] == TORCH_EAGER), None)
    for row in rows:
        row["speedup_vs_torch_eager"] = (
            row["images_per_s"] / reference["images_per_s"] if reference else None
        )
    return {
        "config": dataclasses.asdict(cfg),
        "device": device,
        "flops_per_step": flops,
        "flops_platform": runners[0].info["flops_platform"],
        "rows": rows,
        "notes": notes,
    }


def _make_state_fn(cfg: BenchConfig, channels: int):
    """`seed -> GANState` (no EMA) for the configured DCGAN pair, init jitted.

    The initial parameters are drawn with the "rbg" PRNG: on the CPU the jitted init
    compiles in seconds with it and in tens of seconds with threefry (each initializer's
    threefry kernel is compiled separately). The state's run key, which the timed steps use
    for latents and data, is the default (threefry) key, so the steps are as users run them.
    """
    tx = optax.adam(LEARNING_RATE, b1=BETA1, b2=BETA2)
    generator = DCGANGenerator(image_size=cfg.image_size, channels=channels, ngf=cfg.ngf)
    discriminator = DCGANDiscriminator(image_size=cfg.image_size, ndf=cfg.ndf)
    create = jax.jit(
        lambda key, z, x: create_gan_state(
            key, {"g": PlayerSpec(generator, tx, (z,)), "d": PlayerSpec(discriminator, tx, (x,))}
        )
    )
    # Arguments, not constants inside the jit: XLA would constant-fold the init's forward pass.
    z_example = jnp.zeros((cfg.batch_size, cfg.nz), jnp.float32)
    x_example = jnp.zeros((cfg.batch_size, cfg.image_size, cfg.image_size, channels), jnp.float32)

    def create_state(seed: int):
        state = create(jax.random.key(seed, impl="rbg"), z_example, x_example)
        _, run_key = jax.random.split(jax.random.key(seed))
        return state.replace(key=run_key)

    return create_state


# ---------------------------------------------------------------------------------------
# Output.


def format_markdown(result: dict[str, Any]) -> str:
    """The comparison table with its device, size and FLOP context."""
    cfg, dev = result["config"], result["device"]
    size, channels = cfg["image_size"], _ARCHS[cfg["image_size"]][0]
    flops = result["flops_per_step"]
    header = ("implementation", "ms/step", "repeats min-max", "images/s", "vs PyTorch eager",
              "achieved GFLOP/s")  # fmt: skip
    lines = [
        f"## DCGAN train step, {size}x{size}x{channels}, batch {cfg['batch_size']}",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for row in result["rows"]:
        ratio = row["speedup_vs_torch_eager"]
        repeats = row["repeat_ms_per_step"]
        cells = (
            row["name"],
            f"{row['ms_per_step']:.1f}",
            f"{min(repeats):.1f}-{max(repeats):.1f}",
            f"{row['images_per_s']:.1f}",
            "n/a" if ratio is None else f"{ratio:.2f}x",
            f"{row['achieved_flops_per_s'] / 1e9:.1f}",
        )
        lines.append("| " + " | ".join(cells) + " |")

    jd, cpu = dev["jax"], dev["cpu"]
    facts = [
        f"JAX {jd['version']}: platform `{jd['platform']}`, device_kind `{jd['device_kind']}` "
        + f"({jd['device_count']} device(s))",
    ]
    if "torch" in dev:
        td = dev["torch"]
        facts.append(f"PyTorch {td['version']} on {td['device']}, {td['num_threads']} CPU threads")
    facts += [
        f"CPU: {cpu['model']}, {cpu['schedulable_cores']} schedulable cores "
        + f"(os.cpu_count() = {cpu['os_cpu_count']})",
        f"networks: ngf={cfg['ngf']}, ndf={cfg['ndf']}, nz={cfg['nz']}; one D update (real + "
        + "detached fake) and one G update (non-saturating) per step, Adam(2e-4, 0.5, 0.999)",
        f"model FLOPs per step: {flops / 1e9:.2f} GFLOP (XLA cost analysis of the single "
        + f"step compiled for the {result.get('flops_platform', 'cpu')} backend (XLA:GPU's "
        + "analysis leaves out cuDNN's convolutions), 2 per multiply-add, counting only "
        + "kernel taps inside the image, not on the zero padding; the same count for every "
        + "row)",
        f"timing: median of {cfg['repeats']} repeats of ~{cfg['steps']} steps, repeats "
        + f"interleaved across rows, after {cfg['warmup']} untimed warmup step(s); "
        + "ratio = images/s over PyTorch eager's",
    ]
    untimed = [
        f"{r['key']} compile {r['compile_s']:.1f} s" for r in result["rows"] if "compile_s" in r
    ]
    untimed += [
        f"{r['key']} first step {r['first_step_s']:.2f} s"
        for r in result["rows"]
        if "first_step_s" in r
    ]
    facts.append(f"untimed: {', '.join(untimed)}")
    facts += result["notes"]
    lines += [""] + [f"- {fact}" for fact in facts]
    return "\n".join(lines) + "\n"


def _parse_args(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.step_speed",
        description="DCGAN train-step throughput: gen_jax (jit step, scan chunk) vs PyTorch.",
    )
    p.add_argument("--image_size", type=int, default=64, choices=sorted(_ARCHS))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per repeat (default: 10 on CPU, 100 otherwise)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="K, steps per scan-fused dispatch (default: 4 on CPU, 20 otherwise)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps per implementation (default: 2 on CPU, 10 otherwise)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats, median reported (default: 3 on CPU, 5 otherwise)",
    )
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--nz", type=int, default=100)
    p.add_argument(
        "--dataset_size",
        type=int,
        default=1024,
        help="images in the device-resident uint8 dataset of the chunk row",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-torch", dest="use_torch", action="store_false", help="skip the PyTorch rows"
    )
    p.add_argument(
        "--torch-compile",
        dest="torch_compile",
        action="store_true",
        help="add a row with G and D under torch.compile",
    )
    p.add_argument(
        "--torch-contiguous",
        dest="torch_channels_last",
        action="store_false",
        help="PyTorch in NCHW contiguous format instead of channels_last",
    )
    p.add_argument("--out", default=None, help="write all numbers as JSON here")
    p.add_argument("--markdown", default=None, help="write the markdown table here")
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    cfg = BenchConfig(**{k: v for k, v in vars(args).items() if k in fields})
    try:
        cfg.validate()
    except ValueError as e:
        p.error(str(e))
    check_out_paths(p, out=args.out, markdown=args.markdown)
    return cfg, args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: runs the benchmark, prints the table, writes --out / --markdown."""
    config, args = _parse_args(argv)
    result = run_benchmark(config)
    table = format_markdown(result)
    print(table)
    write_text(args.markdown, table)
    if args.out:
        write_text(args.out, json.dumps(result, indent=2, allow_nan=True) + "\n")
    return result


if __name__ == "__main__":
    main()
