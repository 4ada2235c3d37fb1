"""DCGAN on Fashion-MNIST (Radford, Metz & Chintala 2015, arXiv:1511.06434).

    python -m experiments.dcgan --workdir runs/dcgan              # 28x28, the main job
    python -m experiments.dcgan --workdir runs/dcgan64 --image_size 64

The paper's guidelines (see gen_jax.models.dcgan): strided convolutions, batch norm in G
and D, ReLU/tanh in G, LeakyReLU in D, Adam(2e-4, beta1 = 0.5), N(0, 0.02) weights. The
70,000-image dataset comes from Debian's dataset-fashion-mnist (or --data_dir, or a
verified download with --download true); the 60,000 training images live on the device as
uint8 and every batch is drawn inside the compiled step, one epoch permutation at a time.
`--image_size 64` resizes the images once and uses the pytorch/examples network
(ngf = ndf = 64, nz = 100). On the CPU the default run takes about ten minutes; on a GPU
it trains ten times longer.

At the end, results.json reports the metrics of `gen_jax.metrics.evaluate.score_images` for
`eval_samples` samples of the EMA generator against as many Fashion-MNIST test images (all
10,000 by default), in the features of the shipped Fashion-MNIST classifier: Fréchet
distance, KID, precision, recall, density and coverage (`fmnist_cnn/...`) and the
classifier score. 64x64 samples are resized to 28x28 for the classifier. See
docs/metrics_calibration.md for what real and corrupted images score.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import losses, viz
from gen_jax.data import epoch_batch_indices, load_fashion_mnist, to_signed_unit
from gen_jax.metrics.evaluate import MIN_IMAGES, score_images
from gen_jax.models.classifier import classifier_fn
from gen_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.train import (
    PlayerSpec,
    compute_dtype,
    create_gan_state,
    gan_phases,
    make_gan_step,
    normal_latent,
    run_training,
)

_ON_GPU = jax.default_backend() != "cpu"


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str = ""  # Empty: $GEN_JAX_FASHION_MNIST_DIR, Debian's path, the cache.
    download: bool = False
    image_size: int = 28  # 28, or 64 for the pytorch/examples network
    ngf: int = 64
    ndf: int = 64
    latent_dim: int = 100
    # Compute dtype (float32 | bfloat16); parameters and optimizer states stay float32.
    dtype: str = "float32"
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    batch_size: int = 64
    steps: int = 20_000 if _ON_GPU else 1_800
    lr: float = 2e-4
    beta1: float = 0.5
    n_critic: int = 1
    ema_decay: float = 0.999
    use_ema: bool = True
    chunk_steps: int = 50 if _ON_GPU else 6  # steps per compiled chunk (progress, checkpoints)
    sample_every: int = 2_000 if _ON_GPU else 300
    checkpoint_every: int = 2_000 if _ON_GPU else 300
    limit_examples: int = 0  # Use only the first N training images (0: all).
    tensorboard: bool = False  # also write TensorBoard events to WORKDIR/tensorboard
    # End-of-run metrics: this many EMA samples against as many test images (10,000 at
    # most, the whole test set); 0 skips them.
    eval_samples: int = 10_000
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(
        ngf=4,
        ndf=4,
        latent_dim=8,
        batch_size=8,
        steps=4,
        chunk_steps=2,
        sample_every=2,
        checkpoint_every=2,
        limit_examples=256,
        eval_samples=64,
    )


def load_images(cfg: Config) -> np.ndarray:
    """The training images as uint8 [N, S, S] at the configured size."""
    images, _ = load_fashion_mnist("train", data_dir=cfg.data_dir or None, download=cfg.download)
    if cfg.limit_examples:
        images = images[: cfg.limit_examples]
    if cfg.image_size != images.shape[1]:
        resized = jax.image.resize(
            images.astype(np.float32),
            (len(images), cfg.image_size, cfg.image_size),
            method="bilinear",
        )
        images = np.asarray(jnp.clip(jnp.round(resized), 0, 255).astype(jnp.uint8))
    return images


_EVAL_BATCH = 500


def generate_samples(generate, state, cfg: Config, num: int) -> np.ndarray:
    """`num` samples of the (EMA) generator from a fixed latent stream, as [num, 28, 28, 1].

    Latent batch i is drawn from fold_in(PRNGKey(20_000 + seed), i), so the samples do not
    depend on the training keys; 64x64 samples are resized (antialiased) for the classifier.
    """
    batch = min(_EVAL_BATCH, num)
    base = jax.random.PRNGKey(20_000 + cfg.seed)
    sample_latent = normal_latent(cfg.latent_dim)
    out = []
    for i, start in enumerate(range(0, num, batch)):
        z = sample_latent(jax.random.fold_in(base, i), batch)
        x = generate(state, z)
        if cfg.image_size != 28:
            x = jax.image.resize(x, (batch, 28, 28, x.shape[-1]), method="linear")
        out.append(np.asarray(x)[: num - start])
    return np.clip(np.concatenate(out), -1.0, 1.0)


def run(cfg: Config, workdir: str) -> dict:
    """Trains DCGAN in `workdir` (resuming if it holds a run); returns results.json's contents."""
    if cfg.image_size not in (28, 64):
        raise ValueError(f"image_size must be 28 or 64, got {cfg.image_size}")
    if cfg.eval_samples and cfg.eval_samples < MIN_IMAGES:
        raise ValueError(f"eval_samples: expected 0 or >= {MIN_IMAGES}, found {cfg.eval_samples}")
    if cfg.eval_samples:
        # Fail before training, not after it, when the classifier or test set is missing.
        classifier_fn("fashion_mnist")
        test_images, _ = load_fashion_mnist(
            "test", data_dir=cfg.data_dir or None, download=cfg.download
        )
    g_loss, d_loss = losses.get_gan_loss(cfg.loss)
    d_kwargs = {"label_smoothing": cfg.label_smoothing} if cfg.label_smoothing else {}
    images = load_images(cfg)
    num_examples, size = len(images), cfg.image_size
    if cfg.batch_size > num_examples:
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {num_examples} images")
    dtype = compute_dtype(cfg.dtype)
    generator = DCGANGenerator(image_size=size, channels=1, ngf=cfg.ngf, dtype=dtype)
    discriminator = DCGANDiscriminator(image_size=size, ndf=cfg.ndf, dtype=dtype)
    sample_latent = normal_latent(cfg.latent_dim)
    z_fixed = sample_latent(jax.random.PRNGKey(10_000 + cfg.seed), 64)

    def init_state():
        b, tx = cfg.batch_size, optax.adam(cfg.lr, b1=cfg.beta1)
        return create_gan_state(
            jax.random.PRNGKey(cfg.seed),
            {
                "g": PlayerSpec(
                    generator, tx, (jnp.zeros((b, cfg.latent_dim)),), use_ema=cfg.use_ema
                ),
                "d": PlayerSpec(discriminator, tx, (jnp.zeros((b, size, size, 1)),)),
            },
        )

    def batch_fn(data, key, step):
        # Draw number step * n_critic + i walks through epoch permutations without repeats.
        draws = [
            epoch_batch_indices(key, step * cfg.n_critic + i, num_examples, cfg.batch_size)
            for i in range(cfg.n_critic)
        ]
        real = to_signed_unit(data[jnp.concatenate(draws)])  # [n_critic * B, S, S, 1]
        return {"real": real.reshape(cfg.n_critic, cfg.batch_size, size, size, 1)}

    generate = jax.jit(lambda state: state.generate(z_fixed))
    generate_z = jax.jit(lambda state, z: state.generate(z))

    def on_sample(state, step, workdir):
        samples = np.asarray(generate(state))
        viz.save_image_grid(samples, os.path.join(workdir, "samples", f"step_{step:07d}.png"), 8, 3)
        viz.save_image_grid(samples, os.path.join(workdir, "samples.png"), 8, 3)

    def evaluate(state, workdir):
        real = np.asarray(to_signed_unit(images[:64]))
        viz.save_image_grid(real, os.path.join(workdir, "real.png"), 8, 3)
        samples = np.asarray(generate(state))
        results = {
            "epochs": int(state.step) * cfg.n_critic * cfg.batch_size / num_examples,
            "sample_mean": float(samples.mean()),
            "real_mean": float(real.mean()),
        }
        if cfg.eval_samples:
            num_real = min(cfg.eval_samples, len(test_images))
            results |= score_images(
                generate_samples(generate_z, state, cfg, cfg.eval_samples),
                reference=test_images,
                classifier="fashion_mnist",
                num_real=num_real,
                key=jax.random.PRNGKey(cfg.seed),
                # tanh outputs are on the [-1, 1] scale even if they are all >= 0.
                allow_nonnegative=True,
            )
        return results

    train_step = make_gan_step(
        gan_phases(g_loss, d_loss, sample_latent, discriminator_loss_kwargs=d_kwargs),
        n_critic=cfg.n_critic,
        ema_decay=cfg.ema_decay,
    )
    return run_training(
        cfg,
        workdir,
        init_state=init_state,
        train_step=train_step,
        batch_fn=batch_fn,
        data=images,
        on_sample=on_sample,
        evaluate=evaluate,
    )


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    print(
        f"DCGAN: {results['steps']} steps ({results['epochs']:.2f} epochs), "
        f"{results.get('images_per_s', 0):.0f} images/s; samples in {workdir}/samples.png"
    )
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
