"""A small CNN digit/garment classifier, and the pretrained ones the metrics use.

The evaluation metrics of the GAN experiments (Fréchet and kernel distances, precision and
recall, classifier score, stacked-MNIST mode counting) need a classifier of 28x28 images
and a feature space; with no Inception weights reachable, this network is that classifier,
trained on Fashion-MNIST and on the MNIST subset by `experiments/train_classifier.py`.

Shape table (NHWC), default widths (32, 64), hidden 128:

    x [B,28,28,1] in [-1,1]
      -> conv5x5 stride 2 (32) BN ReLU -> [B,14,14,32]
      -> conv5x5 stride 2 (64) BN ReLU -> [B,7,7,64] -> flatten [B,3136]
      -> dense(128) ReLU               -> features [B,128]
      -> dropout                       -> dense(10) -> logits [B,10]

Strided 5x5 convolutions rather than 3x3 ones followed by max pooling: on XLA:CPU the
pooled network's train step (batch 128) took 4-7x longer (0.6-1.0 s against 0.14 s on a
busy 2-core machine; max pooling's select-and-scatter gradient and full-resolution
convolution gradients dominate), and this one meets the accuracy targets.

Inputs are on the scale of the generators' tanh output, `(pixels - 127.5) / 127.5`
(`gen_jax.data.to_signed_unit`), so generated samples are classified without rescaling.
The features are taken after the ReLU and before dropout (deterministic at test time),
as Inception's pool3 features are post-activation.

Pretrained weights live in `gen_jax/assets/classifiers/<name>.npz`: every variable under
its '/'-joined path (`params/conv1/kernel`, `batch_stats/bn1/mean`, ...), float32, saved
with `numpy.savez_compressed` (no pickle). Beside each sits `<name>.json` with the module's
fields, the SHA-256 of the .npz, the accuracy, the split it was measured on and the command
that trained it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gen_jax.nn.xla_cpu import conv_general_dilated

__all__ = [
    "PRETRAINED_CLASSIFIERS",
    "Classifier",
    "ClassifierWeightsError",
    "TinyClassifier",
    "classifier_fn",
    "load_classifier_weights",
    "load_pretrained_classifier",
    "save_classifier_weights",
]

Dtype = Any
ClassifyFn = Callable[[jax.Array], dict[str, jax.Array]]

IMAGE_SHAPE = (28, 28, 1)
PRETRAINED_CLASSIFIERS: tuple[str, ...] = ("fashion_mnist", "mnist")


class ClassifierWeightsError(ValueError):
    """A classifier weight file is missing, corrupt, or does not fit the module."""


class Classifier(nn.Module):
    """CNN classifier of [B, 28, 28, 1] images in [-1, 1]; returns logits (and features).

    Attributes:
      widths: output channels of the conv stages; each is a stride-2 convolution that
        halves the resolution.
      kernel_size: the convolutions' kernel size.
      hidden: width F of the penultimate (feature) layer.
      num_classes: number of logits.
      dropout_rate: dropout on the features during training.
    """

    widths: Sequence[int] = (32, 64)
    kernel_size: int = 5
    hidden: int = 128
    num_classes: int = 10
    dropout_rate: float = 0.3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, *, train: bool = False, return_features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Classifies a batch.

        Args:
          x: images [B, H, W, 1] in [-1, 1] (H = W = 28 for the pretrained weights).
          train: batch statistics and dropout (needs a 'dropout' rng) when True; running
            statistics and no dropout when False.
          return_features: also return the penultimate activations.

        Returns:
          logits float32 [B, num_classes], or (logits, features float32 [B, hidden]).
        """
        if x.ndim != 4 or x.shape[-1] != 1:
            raise ValueError(
                f"Classifier: expected images of shape [B, H, W, 1], found {list(x.shape)}"
            )
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths, start=1):
            # No conv bias: the batch norm right after it has its own shift.
            x = nn.Conv(
                width,
                (self.kernel_size, self.kernel_size),
                strides=(2, 2),
                padding="SAME",
                use_bias=False,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                # Gradients that stay fast inside loops on XLA:CPU (training chunks, BIM).
                conv_general_dilated=conv_general_dilated,
                name=f"conv{i}",
            )(x)
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-5,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"bn{i}",
            )(x)
            x = nn.relu(x)
        x = x.reshape(x.shape[0], -1)
        features = nn.relu(
            nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype, name="hidden")(x)
        )
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
        logits = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="logits"
        )(h)
        logits = logits.astype(jnp.float32)
        if return_features:
            return logits, features.astype(jnp.float32)
        return logits


# A few thousand parameters: for tests and smoke runs.
TinyClassifier = functools.partial(Classifier, widths=(4, 8), hidden=16)


def _module_fields(module: Classifier) -> dict[str, Any]:
    """The JSON-able fields that rebuild `module` (dtypes are always float32 on disk)."""
    return {
        "widths": [int(w) for w in module.widths],
        "kernel_size": int(module.kernel_size),
        "hidden": int(module.hidden),
        "num_classes": int(module.num_classes),
        "dropout_rate": float(module.dropout_rate),
    }


def _abstract_variables(module: Classifier) -> Mapping[str, Any]:
    """Shapes and dtypes of `module`'s variables on [1, 28, 28, 1] inputs (nothing computed)."""
    x = jax.ShapeDtypeStruct((1, *IMAGE_SHAPE), jnp.float32)
    return jax.eval_shape(functools.partial(module.init, train=False), jax.random.PRNGKey(0), x)


def save_classifier_weights(
    path: str | os.PathLike[str],
    module: Classifier,
    variables: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes `variables` to `path` (.npz) and the module and metadata to the .json beside it.

    Args:
      path: the weight file, ending in ".npz"; `path` with ".json" is written too.
      module: the `Classifier` the variables belong to (its fields go into the JSON).
      variables: {"params": ..., "batch_stats": ...} as from `module.init`.
      metadata: extra JSON-able entries (accuracy, split, command ...).

    Returns:
      The JSON document written.

    Raises:
      ValueError: `path` does not end in ".npz".
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"save_classifier_weights: expected a path ending in .npz, found {path}")
    flat = traverse_util.flatten_dict(jax.device_get(dict(variables)), sep="/")
    arrays = {k: np.asarray(v, np.float32) for k, v in sorted(flat.items())}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # A file object: savez would append ".npz" to a name.
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    doc = dict(metadata or {})
    doc["module"] = _module_fields(module)
    doc["weights"] = {"file": path.name, "sha256": _sha256(path)}
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


def load_classifier_weights(
    path: str | os.PathLike[str],
) -> tuple[Classifier, dict[str, Any], dict[str, Any]]:
    """Reads a weight file written by `save_classifier_weights`, checking everything.

    Args:
      path: the .npz file; its .json must sit beside it.

    Returns:
      (module, variables, metadata): the rebuilt `Classifier`, its variables as jax arrays
      ({"params": ..., "batch_stats": ...}), and the JSON document.

    Raises:
      ClassifierWeightsError: either file is missing or unreadable, the .npz does not
        match the SHA-256 recorded in the JSON, or its arrays do not fit the module.
    """
    path = Path(path)
    json_path = path.with_suffix(".json")
    for p in (path, json_path):
        if not p.is_file():
            raise ClassifierWeightsError(f"{p}: classifier weight file not found")
    try:
        doc = json.loads(json_path.read_text())
        fields = dict(doc["module"])
        fields["widths"] = tuple(fields["widths"])  # JSON has lists; a module wants hashables.
        module = Classifier(**fields)
        want_sha = doc["weights"]["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ClassifierWeightsError(
            f"{json_path}: expected JSON with 'module' fields and 'weights.sha256', found a "
            f"corrupt or incomplete file: {e!r}"
        ) from e
    sha = _sha256(path)
    if sha != want_sha:
        raise ClassifierWeightsError(
            f"{path}: SHA-256 expected {want_sha} (from {json_path.name}), found {sha}; "
            "the weight file is corrupt or does not belong to this JSON"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            flat = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ClassifierWeightsError(f"{path}: expected an .npz archive, found: {e}") from e

    expected = traverse_util.flatten_dict(_abstract_variables(module), sep="/")
    if set(flat) != set(expected):
        missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
        raise ClassifierWeightsError(
            f"{path}: arrays do not match {module}: missing {missing}, unexpected {extra}"
        )
    for name, spec in expected.items():
        if flat[name].shape != spec.shape:
            raise ClassifierWeightsError(
                f"{path}: {name} expected shape {spec.shape}, found {flat[name].shape}"
            )
    variables = traverse_util.unflatten_dict(
        {k: jnp.asarray(v, spec.dtype) for k, v in flat.items() for spec in [expected[k]]},
        sep="/",
    )
    return module, variables, doc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assets_dir() -> Path:
    """gen_jax/assets/classifiers, found through the package (works from a wheel too)."""
    return Path(str(resources.files("gen_jax") / "assets" / "classifiers"))


def load_pretrained_classifier(
    name: str, weights_dir: str | os.PathLike[str] | None = None
) -> tuple[Classifier, dict[str, Any]]:
    """Loads a pretrained classifier shipped with the package.

    "fashion_mnist" is trained on the 60,000 Fashion-MNIST training images and measured on
    the official 10,000 test images; "mnist" on 4,000 digits of the 5,000-digit MNIST
    subset and measured on the 1,000 held out (`gen_jax.data.mnist`). The accuracies and
    the training command are in the JSON beside each weight file.

    Args:
      name: one of `PRETRAINED_CLASSIFIERS`.
      weights_dir: where `<name>.npz` and `<name>.json` are; default the package's
        gen_jax/assets/classifiers.

    Returns:
      (module, variables) for `module.apply(variables, x)` in inference mode.

    Raises:
      ValueError: `name` is unknown.
      ClassifierWeightsError: the weight file is missing, corrupt or mismatched.
    """
    if name not in PRETRAINED_CLASSIFIERS:
        raise ValueError(
            f"classifier name: expected one of {list(PRETRAINED_CLASSIFIERS)}, found {name!r}"
        )
    directory = Path(weights_dir) if weights_dir is not None else _assets_dir()
    module, variables, _ = load_classifier_weights(directory / f"{name}.npz")
    return module, variables


def classifier_fn(name: str) -> ClassifyFn:
    """A jitted inference function of a pretrained classifier (loaded once, then cached).

        f(x) = {"logits": logits [B, 10], "features": penultimate activations [B, F]}

    Args:
      name: one of `PRETRAINED_CLASSIFIERS`.

    Returns:
      `f(images)` for images float [B, 28, 28, 1] in [-1, 1] (the tanh scale of the GAN
      generators; see `gen_jax.data.to_signed_unit`); F = 128 for the shipped weights.
      It raises ValueError on any other shape. Each new B compiles once.

    Raises:
      ValueError, ClassifierWeightsError: as `load_pretrained_classifier`.
    """
    return _cached_classifier_fn(name)


@functools.cache
def _cached_classifier_fn(name: str) -> ClassifyFn:
    """One load and one jit per name per process."""
    module, variables = load_pretrained_classifier(name)

    # The variables are an argument, not a closure: closed-over arrays would be baked into
    # every compiled program as constants.
    @jax.jit
    def apply(variables, x):
        logits, features = module.apply(variables, x, train=False, return_features=True)
        return {"logits": logits, "features": features}

    def classify(images: jax.Array) -> dict[str, jax.Array]:
        shape = tuple(np.shape(images))
        if len(shape) != 4 or shape[1:] != IMAGE_SHAPE:
            raise ValueError(
                f"classifier_fn({name!r}): expected images of shape [B, 28, 28, 1], "
                f"found {list(shape)}"
            )
        return apply(variables, images)

    return classify
