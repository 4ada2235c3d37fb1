"""The original GAN with MLPs on the 2-D ring and grid mixtures, scored by mode counting.

    python -m experiments.gan_mixture --workdir runs/ring --mixture ring
    python -m experiments.gan_mixture --workdir runs/grid --mixture grid
    python -m experiments.gan_mixture --workdir runs/grid5 --mixture grid --seeds 0,1,2,3,4

Goodfellow et al. 2014 (arXiv:1406.2661) with the non-saturating generator loss and a
PacGAN discriminator judging pairs of samples (Lin et al. 2018; --pack 1 for the plain one), on the
mode-collapse benchmark of VEEGAN/PacGAN (arXiv:1705.07761, arXiv:1712.04086): 2,500
samples at the end are scored by `gen_jax.metrics.modes.mixture_mode_stats` and drawn
over the true modes in scatter.png. Real samples are drawn fresh from the mixture inside
the compiled step. `pack > 1` turns D into the PacGAN discriminator. D is regularised by the
R1 penalty on real data (Mescheder et al. 2018, arXiv:1801.04406; `--r1_gamma 0` for none).

`--seeds` runs one such run per seed, each in WORKDIR/<mixture>_seed<N> (rerunning resumes
or reuses them, and more seeds may be added later), and writes the table over seeds, as
PacGAN reports it, to WORKDIR/table.md and table.json.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import losses, viz
from gen_jax.data import get_mixture, sample_mixture
from gen_jax.metrics.modes import mixture_mode_stats, summarize_mode_stats
from gen_jax.models.mlp_gan import MLPDiscriminator, MLPGenerator
from gen_jax.train import (
    PlayerSpec,
    compute_dtype,
    create_gan_state,
    gan_phases,
    make_gan_step,
    normal_latent,
    r1_term,
    run_training,
)


# One config serves both mixtures. The grid (25 modes, sigma 0.05) needs R1 and 30k steps
# to reach >= 85 % high quality: without R1 a D strong enough to resolve the modes
# collapses G onto a few of them; R1 keeps every mode and lets G sharpen, which takes
# 20-30k steps (docs/gans.md, "The original GAN on 2-D mixtures").
@dataclasses.dataclass(frozen=True)
class Config:
    mixture: str = "ring"  # ring | grid
    latent_dim: int = 16
    # Compute dtype (float32 | bfloat16); parameters and optimizer states stay float32.
    dtype: str = "float32"
    g_hidden: tuple[int, ...] = (256, 256, 256)
    g_batch_norm: bool = False  # Dense -> BatchNorm -> ReLU hidden layers in G
    d_hidden: tuple[int, ...] = (128, 128, 128)
    d_maxout_pieces: int = 1  # 1: ReLU hidden layers in D; k > 1: maxout over k pieces
    d_input_scale: float = 1.0  # D sees x * d_input_scale
    pack: int = 2  # PacGAN packing (1: the plain GAN discriminator)
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    # R1 penalty on real data: D adds r1_gamma / 2 * E||grad_x D||^2 (0 turns it off).
    r1_gamma: float = 0.1
    batch_size: int = 256
    steps: int = 30_000
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    lr_schedule: str = "cosine"  # cosine (decay to 0 over `steps`) | constant
    beta1: float = 0.5
    n_critic: int = 1
    ema_decay: float = 0.999
    use_ema: bool = True
    chunk_steps: int = 500
    sample_every: int = 2_500
    checkpoint_every: int = 2_500
    eval_samples: int = 2_500
    tensorboard: bool = False  # also write TensorBoard events to WORKDIR/tensorboard
    seed: int = 0
    # Several seeds: one run each in WORKDIR/<mixture>_seed<N>, and the table over them.
    seeds: tuple[int, ...] = ()

    # Runs saved before r1_gamma existed trained without the penalty: a config.json without
    # the field means 0, not today's default (gen_jax.config.prepare_workdir).
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {"r1_gamma": 0.0}
    SCHEDULE_ADVICE: ClassVar[str] = ", or --lr_schedule constant"

    def schedule_spans_steps(self) -> bool:
        """The cosine decay runs to 0 over exactly `steps`: a run cannot be extended."""
        return self.lr_schedule == "cosine"


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(
        g_hidden=(32,),
        d_hidden=(32,),
        batch_size=64,
        steps=20,
        chunk_steps=10,
        sample_every=10,
        checkpoint_every=10,
        eval_samples=500,
    )


def _schedule(cfg: Config, lr: float) -> optax.Schedule:
    # Decaying the rate sharpens the samples onto the modes (sigma is 0.01 on the ring).
    if cfg.lr_schedule == "cosine":
        return optax.cosine_decay_schedule(lr, cfg.steps)
    if cfg.lr_schedule == "constant":
        return optax.constant_schedule(lr)
    raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {cfg.lr_schedule!r}")


# Compiled once per state structure (not per call, as jax.jit(state.generate) would be).
_generate = jax.jit(lambda state, z: state.generate(z))


_generate_raw = jax.jit(lambda state, z: state.generate(z, use_ema=False))


def generate(state, cfg: Config, num: int, *, use_ema: bool = True) -> np.ndarray:
    """`num` samples from the EMA (or the raw) generator with a fixed evaluation key."""
    z = normal_latent(cfg.latent_dim)(jax.random.PRNGKey(10_000 + cfg.seed), num)
    return np.asarray((_generate if use_ema else _generate_raw)(state, z))


def run(cfg: Config, workdir: str) -> dict:
    """Trains and scores one GAN on one mixture; returns results.json's contents."""
    mixture = get_mixture(cfg.mixture)
    means = np.asarray(mixture.means)
    if cfg.r1_gamma < 0:
        raise ValueError(f"--r1_gamma: expected >= 0 (0: no penalty), got {cfg.r1_gamma}")
    if cfg.batch_size % cfg.pack:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by pack={cfg.pack}")
    g_loss, d_loss = losses.get_gan_loss(cfg.loss)
    d_kwargs = {"label_smoothing": cfg.label_smoothing} if cfg.label_smoothing else {}
    dtype = compute_dtype(cfg.dtype)
    generator = MLPGenerator(
        out_dim=2, hidden=cfg.g_hidden, batch_norm=cfg.g_batch_norm, dtype=dtype
    )
    discriminator = MLPDiscriminator(
        hidden=cfg.d_hidden,
        pack=cfg.pack,
        maxout_pieces=cfg.d_maxout_pieces,
        input_scale=cfg.d_input_scale,
        dtype=dtype,
    )

    def init_state():
        b = cfg.batch_size
        g_tx = optax.adam(_schedule(cfg, cfg.g_lr), b1=cfg.beta1)
        d_tx = optax.adam(_schedule(cfg, cfg.d_lr), b1=cfg.beta1)
        return create_gan_state(
            jax.random.PRNGKey(cfg.seed),
            {
                "g": PlayerSpec(
                    generator, g_tx, (jnp.zeros((b, cfg.latent_dim)),), use_ema=cfg.use_ema
                ),
                "d": PlayerSpec(discriminator, d_tx, (jnp.zeros((b, 2)),)),
            },
        )

    def batch_fn(data, key, step):
        del data  # The mixture is sampled afresh: an infinite dataset.
        real = sample_mixture(jax.random.fold_in(key, step), mixture, cfg.n_critic * cfg.batch_size)
        return {"real": real.reshape(cfg.n_critic, cfg.batch_size, 2)}

    def on_sample(state, step, workdir):
        samples = generate(state, cfg, cfg.eval_samples)
        s = mixture_mode_stats(samples, means, mixture.sigma)
        path = os.path.join(workdir, "samples", f"scatter_{step:07d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        title = (
            f"step {step}: {s['modes']}/{s['num_modes']} modes, {100 * s['high_quality']:.1f}% HQ"
        )
        viz.save_scatter(samples, means, path, title)

    def evaluate(state, workdir):
        samples = generate(state, cfg, cfg.eval_samples)
        stats = mixture_mode_stats(samples, means, mixture.sigma)
        title = (
            f"{cfg.mixture}, seed {cfg.seed}: {stats['modes']}/{stats['num_modes']} modes, "
            f"{100 * stats['high_quality']:.1f}% high quality"
        )
        viz.save_scatter(samples, means, os.path.join(workdir, "scatter.png"), title)
        np.save(os.path.join(workdir, "samples.npy"), samples)
        # The headline numbers are the EMA generator's; the raw one's, on the same latents,
        # tell whether the average helps or smears an oscillating generator.
        raw = mixture_mode_stats(
            generate(state, cfg, cfg.eval_samples, use_ema=False), means, mixture.sigma
        )
        raw = {f"raw_{k}": raw[k] for k in ("modes", "high_quality", "reverse_kl")}
        return {"mixture": cfg.mixture, "seed": cfg.seed, **stats, **raw}

    phases = gan_phases(
        g_loss,
        d_loss,
        normal_latent(cfg.latent_dim),
        discriminator_loss_kwargs=d_kwargs,
        d_terms=(r1_term(cfg.r1_gamma),) if cfg.r1_gamma else (),
    )
    train_step = make_gan_step(phases, n_critic=cfg.n_critic, ema_decay=cfg.ema_decay)
    return run_training(
        cfg,
        workdir,
        init_state=init_state,
        train_step=train_step,
        batch_fn=batch_fn,
        data=None,
        on_sample=on_sample,
        evaluate=evaluate,
        unroll=1,  # MLPs run at full speed in a rolled loop, and compile in seconds.
    )


# PacGAN (arXiv:1712.04086), Tables 1 and 2: the plain GAN's modes and high-quality percent.
PACGAN_GAN_BASELINE = {"ring": (6.3, 98.2), "grid": (17.3, 94.8)}


def _line(cfg: Config, results: dict) -> str:
    return (
        f"{cfg.mixture} seed {cfg.seed}: {results['modes']}/{results['num_modes']} modes, "
        f"{100 * results['high_quality']:.1f}% high quality, "
        f"reverse KL {results['reverse_kl']:.3f}"
    )


def table_markdown(summary: dict, mixture: str, command: str) -> str:
    """The sweep's table: mean ± std over seeds beside PacGAN's plain GAN."""
    base = PACGAN_GAN_BASELINE.get(mixture)
    s = summary
    return (
        "| mixture | modes (mean ± std) | high-quality % | reverse KL | seeds | PacGAN's GAN |\n"
        "|---|---|---|---|---|---|\n"
        f"| {mixture} | {s['modes_mean']:.1f} ± {s['modes_std']:.1f} of {s['num_modes']} "
        f"| {s['high_quality_mean']:.1f} ± {s['high_quality_std']:.1f} "
        f"| {s['reverse_kl_mean']:.3f} | {s['runs']} "
        f"| {f'{base[0]} / {base[1]} %' if base else ''} |\n\nMade by: `{command}`\n"
    )


def run_seeds(cfg: Config, workdir: str, command: str = "") -> dict:
    """One run per seed of `cfg.seeds` in sub-folders, and the table over them."""
    get_mixture(cfg.mixture)  # An unknown mixture fails before anything is written.
    config_lib.prepare_workdir(workdir, cfg)
    runs = []
    for seed in cfg.seeds:
        run_cfg = dataclasses.replace(cfg, seed=seed, seeds=())
        results = run(run_cfg, os.path.join(workdir, f"{cfg.mixture}_seed{seed}"))
        print(_line(run_cfg, results), flush=True)
        runs.append(results)
    summary = summarize_mode_stats(runs) | {"mixture": cfg.mixture, "seeds": list(cfg.seeds)}
    table = table_markdown(summary, cfg.mixture, command)
    with open(os.path.join(workdir, "table.md"), "w") as f:
        f.write(table)
    config_lib.write_json_atomic(
        os.path.join(workdir, "table.json"), {"summary": summary, "runs": runs, "command": command}
    )
    print(table)
    return summary


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    if cfg.seeds:
        return run_seeds(cfg, workdir, "python -m experiments.gan_mixture " + shlex.join(argv))
    results = run(cfg, workdir)
    print(_line(cfg, results))
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
