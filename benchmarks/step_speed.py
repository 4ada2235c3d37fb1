"""DCGAN train-step throughput: gen_jax (per-step jit, scan-fused chunks) against PyTorch eager.

    python -m benchmarks.step_speed [--image_size 64] [--batch_size 64] [--steps N]
        [--chunk K] [--warmup W] [--repeats R] [--out FILE.json] [--markdown FILE.md]
        [--no-torch] [--torch-compile]

Rows, all on the device JAX uses (and the matching PyTorch device):

  1. gen_jax, `jax.jit(train_step, donate_argnums=0)`, one step per dispatch, the batch
     already on the device;
  2. gen_jax, `make_train_chunk`: K steps fused with `lax.scan` in one dispatch, each
     step's batch drawn on the device from a device-resident uint8 dataset;
  3. PyTorch eager (when `import torch` works and has the device): the pytorch/examples
     DCGAN network and the same update (`benchmarks.torch_reference`); optionally also
     under `torch.compile`.

The work per step is the same in every row: one D update (a real and a detached fake
batch, BCE with logits) then one G update (non-saturating), Adam(2e-4, b1=0.5, b2=0.999)
for both, batch norm in train mode. gen_jax's state is created with `use_ema=False` since
the reference keeps no parameter average. The model FLOPs per step are XLA's count for the
compiled single step (2 per multiply-add), used for every row's achieved FLOP/s.

Timing (`benchmarks.runner`): compilation (JAX) and the first steps (PyTorch) are untimed
and reported apart; then each implementation runs R repeats of about N steps, the repeats
interleaved across implementations so that a change in background load hits every row
alike, and the reported time is the median repeat.

This module is the benchmark's configuration, command line, runners and orchestration; the
markdown is `benchmarks.step_report`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import torch_reference
from benchmarks.flops import xla_flops
from benchmarks.machine import describe_devices
from benchmarks.report import add_ratios, check_out_paths, parse_config, to_json, write_text
from benchmarks.runner import Log, compile_timed, interleave, seconds, stderr_log
from benchmarks.step_report import format_markdown
from benchmarks.torch_reference import DCGAN_ARCHS
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

TORCH_EAGER = "torch_eager"
LEARNING_RATE, BETA1, BETA2 = 2e-4, 0.5, 0.999


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
        if self.image_size not in DCGAN_ARCHS:
            raise ValueError(
                f"image_size: expected one of {sorted(DCGAN_ARCHS)}, found {self.image_size}"
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
# Runners (`benchmarks.runner.Runner`): setup() compiles and warms up, run() times one
# repeat of `steps_timed` steps.


class _JaxRunner:
    """gen_jax: a compiled program that runs ``steps_per_call`` train steps per dispatch on
    its state (donated) and one argument already on the device.

    Args:
      key, name: the row's.
      jitted: the jitted program, ``(state, arg) -> (state, metrics)``.
      state, arg: its inputs; the state is replaced by each call's.
      steps_per_call: train steps per dispatch (K for a chunk).
      warmup: untimed steps after compiling (at least one dispatch).
      steps: timed steps per repeat, rounded to whole dispatches.
      flops_fn: count one step's FLOPs from this function of ``(state, arg)`` (the first row).
    """

    def __init__(
        self, key, name, jitted, state, arg, *, steps_per_call, warmup, steps, flops_fn=None
    ):
        self.key, self.name, self.jitted = key, name, jitted
        self.state, self.arg, self.steps_per_call = state, arg, steps_per_call
        self.warmup, self.flops_fn = warmup, flops_fn
        self.steps_timed = self._calls(steps) * steps_per_call
        self.info: dict[str, Any] = {}

    def _calls(self, num_steps: int) -> int:
        return max(1, round(num_steps / self.steps_per_call))

    def setup(self, log: Log) -> None:
        self.compiled, self.info["compile_s"] = compile_timed(self.jitted, self.state, self.arg)
        if self.flops_fn is not None:
            self.info["flops_per_step"], self.info["flops_platform"] = xla_flops(
                self.flops_fn, self.state, self.arg, compiled=self.compiled
            )
        chunk = f" (K={self.steps_per_call})" if self.steps_per_call > 1 else ""
        log(f"[{self.key}] compiled in {self.info['compile_s']:.1f} s{chunk}")
        jax.block_until_ready(self._steps(self.warmup))

    def _steps(self, num_steps: int):
        state = self.state
        for _ in range(self._calls(num_steps)):
            state, metrics = self.compiled(state, self.arg)
        self.state = state
        return state, metrics

    def run(self) -> float:
        return seconds(self._steps, self.steps_timed)[0]


def _jax_runners(cfg: BenchConfig, create_state, batch, data) -> list[_JaxRunner]:
    """The two gen_jax rows, each on its own identical state (each donates its own):
    one jitted step per dispatch on a fixed batch, and K-step `lax.scan` chunks whose
    batches are drawn on the device from ``data``."""
    train_step = _make_jax_train_step(cfg)
    batch_fn = _make_batch_fn(cfg.dataset_size, cfg.batch_size)
    common = {"warmup": cfg.warmup, "steps": cfg.steps}
    return [
        _JaxRunner(
            "gen_jax_step",
            "gen_jax, jit step per dispatch",
            jax.jit(train_step, donate_argnums=0),
            create_state(cfg.seed),
            batch,
            steps_per_call=1,
            flops_fn=train_step,
            **common,
        ),
        _JaxRunner(
            "gen_jax_chunk",
            f"gen_jax, lax.scan chunk of K={cfg.chunk} steps per dispatch",
            make_train_chunk(train_step, batch_fn, cfg.chunk),
            create_state(cfg.seed),
            data,
            steps_per_call=cfg.chunk,
            **common,
        ),
    ]


class _TorchRunner:
    """PyTorch eager (or torch.compile'd modules): `torch_reference.DCGANTrainStep`, the
    same update as gen_jax's GAN step."""

    def __init__(self, cfg: BenchConfig, real_nhwc: np.ndarray, device, *, compile_modules: bool):
        self.cfg = cfg
        self.key = "torch_compile" if compile_modules else TORCH_EAGER
        self.name = "PyTorch, torch.compile" if compile_modules else "PyTorch eager"
        self.steps_timed = cfg.steps
        self.info: dict[str, Any] = {}
        self.step = torch_reference.DCGANTrainStep(
            real_nhwc,
            image_size=cfg.image_size,
            ngf=cfg.ngf,
            ndf=cfg.ndf,
            nz=cfg.nz,
            device=device,
            seed=cfg.seed,
            learning_rate=LEARNING_RATE,
            betas=(BETA1, BETA2),
            channels_last=cfg.torch_channels_last,
            compile_modules=compile_modules,
        )

    def _steps(self, num_steps: int) -> None:
        for _ in range(num_steps):
            self.step()

    def _timed(self, num_steps: int) -> float:
        self.step.sync()
        return seconds(self._steps, num_steps, ready=lambda _: self.step.sync())[0]

    def setup(self, log: Log) -> None:
        self.info["first_step_s"] = self._timed(1)
        log(f"[{self.key}] first step {self.info['first_step_s']:.2f} s")
        if self.cfg.warmup > 1:
            self._timed(self.cfg.warmup - 1)

    def run(self) -> float:
        return self._timed(self.steps_timed)


def _make_jax_train_step(cfg: BenchConfig):
    """The DCGAN update: non-saturating G loss, BCE (minimax) D loss, z ~ N(0, I)."""
    return make_gan_step(
        gan_phases(non_saturating_generator_loss, minimax_discriminator_loss, normal_latent(cfg.nz))
    )


def _make_batch_fn(num_examples: int, batch_size: int):
    """batch_fn for make_train_chunk: an epoch-permuted minibatch of a uint8 NHWC dataset."""

    def batch_fn(data: jax.Array, data_key: jax.Array, step: jax.Array):
        idx = epoch_batch_indices(data_key, step, num_examples, batch_size)
        return {"real": to_signed_unit(data[idx])[None]}  # [n_critic=1, B, H, W, C]

    return batch_fn


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
    log = log or stderr_log
    cfg = config.resolve()
    notes = [
        "gen_jax states are created with use_ema=False (no EMA of G), as the reference keeps none."
    ]
    use_torch = cfg.use_torch and torch_reference.torch_importable()
    if cfg.use_torch and not use_torch:
        notes.append("PyTorch rows skipped: `import torch` failed.")
    device = describe_devices()
    torch_device = None
    if use_torch:
        found = torch_reference.torch_device(notes, match_xla_cores=True)
        if found is not None:
            torch_device, device["torch"] = found
            if cfg.torch_channels_last:
                notes.append("PyTorch tensors and modules in torch.channels_last.")
            notes.append(
                "PyTorch freezes D's parameters during the G update (no D weight gradients), "
                "as gen_jax differentiates the G loss w.r.t. G's parameters only."
            )

    channels = DCGAN_ARCHS[cfg.image_size][0]
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

    runners: list[Any] = _jax_runners(cfg, _make_state_fn(cfg, channels), batch, data)
    if torch_device is not None:
        real = np.array(batch["real"][0])  # a writable host copy for torch.from_numpy
        runners.append(_TorchRunner(cfg, real, torch_device, compile_modules=False))
        if cfg.torch_compile:
            runners.append(_TorchRunner(cfg, real, torch_device, compile_modules=True))

    def logged(runner, rep: int, elapsed: float) -> None:
        n = runner.steps_timed
        log(
            f"[{runner.key}] repeat {rep + 1}/{cfg.repeats}: {1e3 * elapsed / n:.1f} ms/step, "
            f"{cfg.batch_size * n / elapsed:.1f} images/s ({n} steps)"
        )

    # Interleaved repeats: every implementation sees the same background load on average.
    timed = interleave(runners, cfg.repeats, log, on_repeat=logged)
    flops = runners[0].info["flops_per_step"]
    rows = []
    for runner in runners:
        per_step = [s / runner.steps_timed for s in timed[runner.key]]
        step_s = statistics.median(per_step)
        rows.append(
            {
                "key": runner.key,
                "name": runner.name,
                "ms_per_step": 1e3 * step_s,
                "images_per_s": cfg.batch_size / step_s,
                "achieved_flops_per_s": flops / step_s,
                "steps_timed": runner.steps_timed,
                "repeat_ms_per_step": [1e3 * s for s in per_step],
                **{
                    k: v
                    for k, v in runner.info.items()
                    if k not in ("flops_per_step", "flops_platform")
                },
            }
        )
    add_ratios(rows, TORCH_EAGER, {"speedup_vs_torch_eager": "images_per_s"})
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
# Command line.


def _parse_args(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.step_speed",
        description="DCGAN train-step throughput: gen_jax (jit step, scan chunk) vs PyTorch.",
    )
    p.add_argument("--image_size", type=int, default=64, choices=sorted(DCGAN_ARCHS))
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
    cfg, args = parse_config(p, BenchConfig, argv)
    check_out_paths(p, out=args.out, markdown=args.markdown)
    return cfg, args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: runs the benchmark, prints the table, writes --out / --markdown."""
    config, args = _parse_args(argv)
    result = run_benchmark(config)
    table = format_markdown(result)
    print(table)
    write_text(args.markdown, table)
    write_text(args.out, to_json(result))
    return result


if __name__ == "__main__":
    main()
