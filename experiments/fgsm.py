"""FGSM and the iterative attack against the pretrained Fashion-MNIST classifier.

    python -m experiments.fgsm --workdir runs/fgsm
    python -m experiments.fgsm --workdir runs/fgsm_mnist --dataset mnist

Goodfellow, Shlens & Szegedy 2014 (arXiv:1412.6572): x_adv = x + ε · sign ∇ₓ J(θ, x, y).
Every test image is attacked at each ε of the sweep, once with one FGSM step and once with
the basic iterative method (Kurakin et al. 2016, arXiv:1607.02533), and the classifier's
accuracy on the adversarial images is plotted against ε (accuracy_vs_eps.png). ε is on
the usual [0, 1] pixel scale; the classifier reads [-1, 1] images, so the attack uses 2ε.
The classifier is the one shipped in gen_jax/assets/classifiers (see
experiments/train_classifier.py); examples.png shows clean and attacked images at
`show_eps` with the predicted classes.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from gen_jax import config as config_lib
from gen_jax import viz
from gen_jax.data import FASHION_MNIST_CLASSES, load_fashion_mnist, to_signed_unit
from gen_jax.data.mnist import load_mnist_subset
from gen_jax.models.classifier import load_pretrained_classifier
from gen_jax.synthesis.adversarial import fgsm, iterative_fgsm


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "fashion_mnist"  # fashion_mnist (official test set) | mnist (held-out split)
    data_dir: str = ""
    eps: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    iterative_steps: int = 10
    # The first N test images (capped at the split's size). 2,000 keeps a CPU run to a few
    # minutes (11 gradient passes per image and ε) and the accuracy within about ±1 %.
    num_examples: int = 2_000
    batch_size: int = 500
    show_eps: float = 0.1
    seed: int = 0


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(eps=(0.0, 0.1), iterative_steps=2, num_examples=64, batch_size=32)


def _load(cfg: Config) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    if cfg.dataset == "fashion_mnist":
        images, labels = load_fashion_mnist("test", data_dir=cfg.data_dir or None)
        names = tuple(FASHION_MNIST_CLASSES)
    elif cfg.dataset == "mnist":
        images, labels = load_mnist_subset("heldout")
        names = tuple(str(d) for d in range(10))
    else:
        raise ValueError(f"--dataset: expected fashion_mnist or mnist, got {cfg.dataset!r}")
    n = min(cfg.num_examples, len(images))
    return images[:n], np.asarray(labels[:n], np.int32), names


def make_attack(module, variables, steps: int):
    """A jitted (x, y, eps) -> (clean/FGSM/iterative predictions, FGSM images)."""

    def logits_fn(x):
        return module.apply(variables, x, train=False)

    def attack(x, y, eps):
        def loss_fn(v):
            return optax.softmax_cross_entropy_with_integer_labels(logits_fn(v), y)

        # ε on the [0, 1] scale is 2ε on the classifier's [-1, 1] scale.
        one = fgsm(loss_fn, x, 2.0 * eps)
        many = iterative_fgsm(loss_fn, x, 2.0 * eps, steps=steps)
        preds = [jnp.argmax(logits_fn(v), -1) for v in (x, one, many)]
        return preds, one

    return jax.jit(attack)


def run(cfg: Config, workdir: str) -> dict:
    """Sweeps ε; returns results.json's contents."""
    if cfg.batch_size < 1 or cfg.iterative_steps < 1:
        raise ValueError("--batch_size and --iterative_steps must be >= 1")
    if any(e < 0 for e in cfg.eps):
        raise ValueError(f"--eps values must be >= 0, got {cfg.eps}")
    images, labels, names = _load(cfg)
    module, variables = load_pretrained_classifier(cfg.dataset)
    config_lib.prepare_workdir(workdir, cfg)
    attack = make_attack(module, variables, cfg.iterative_steps)
    x_all = np.asarray(to_signed_unit(images))
    n = len(x_all)
    b = min(cfg.batch_size, n)
    pad = (-n) % b  # Pad the last batch so that every batch has the compiled shape.
    x_all = np.concatenate([x_all, x_all[:pad]])
    y_all = np.concatenate([labels, labels[:pad]])

    clean_correct = None
    fgsm_acc, iter_acc = [], []
    shown = None
    for eps in tqdm(cfg.eps, desc="eps sweep", unit="eps"):
        correct = np.zeros((3, len(x_all)), bool)
        for start in range(0, len(x_all), b):
            sl = slice(start, start + b)
            preds, adv = attack(x_all[sl], y_all[sl], jnp.float32(eps))
            correct[:, sl] = np.asarray(preds) == y_all[sl]
            if start == 0 and np.isclose(eps, cfg.show_eps):
                shown = (np.asarray(adv[:8]), np.asarray(preds[1][:8]))
        correct = correct[:, :n]
        clean_correct = correct[0]
        fgsm_acc.append(float(correct[1].mean()))
        iter_acc.append(float(correct[2].mean()))

    _plot(cfg, fgsm_acc, iter_acc, float(clean_correct.mean()), workdir)
    if shown is not None:
        clean = x_all[:8]
        viz.save_image_grid(
            np.concatenate([clean, shown[0]]), os.path.join(workdir, "examples.png"), 8, scale=3
        )
    results = {
        "dataset": cfg.dataset,
        "num_examples": n,
        "clean_accuracy": float(clean_correct.mean()),
        "eps": list(cfg.eps),
        "fgsm_accuracy": fgsm_acc,
        "iterative_accuracy": iter_acc,
        "iterative_steps": cfg.iterative_steps,
        "device": f"{jax.default_backend()}:{jax.devices()[0].device_kind} x{jax.device_count()}",
    }
    if shown is not None:
        results["examples"] = {
            "eps": cfg.show_eps,
            "true": [names[int(i)] for i in labels[:8]],
            "fgsm_predicted": [names[int(i)] for i in shown[1]],
        }
    config_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def _plot(cfg, fgsm_acc, iter_acc, clean, workdir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(cfg.eps, fgsm_acc, "o-", label="FGSM (one step)")
    ax.plot(cfg.eps, iter_acc, "s-", label=f"iterative ({cfg.iterative_steps} steps)")
    ax.axhline(0.1, color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel("ε (pixel scale [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{cfg.dataset} classifier (clean {100 * clean:.1f}%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "accuracy_vs_eps.png"), dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    results = run(cfg, workdir)
    for e, a, i in zip(results["eps"], results["fgsm_accuracy"], results["iterative_accuracy"]):
        print(f"eps {e:.3f}: FGSM {100 * a:5.1f}%  iterative {100 * i:5.1f}%")
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
