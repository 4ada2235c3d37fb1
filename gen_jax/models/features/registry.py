"""The fixed feature networks of image synthesis, behind one factory: `get_feature_net`.

Every network is a Flax module with the same contract:

    module, params = get_feature_net(name, weights=None, key=..., pooling="max")
    feats = module.apply({"params": params}, images, outputs=("relu1_1", "conv4_2"))
    # images: [B, H, W, 3] RGB in [0, 1]; feats: {name: [B, H_l, W_l, C_l]}
    # `outputs` is static; the forward pass stops at the deepest requested layer.

A network may also have a ``prepare(params, example_input, outputs) -> variables`` method
for work that depends only on its parameters (VGG's Winograd kernel transforms); code
that applies it inside a loop calls the generic `gen_jax.models.features.prepare` once
before the loop, whatever the network, and never names the network's collections.

Networks (`FEATURE_NETS`):

=============== ====================================================== ================
name            what                                                    needs
=============== ====================================================== ================
"vgg19"         VGG19 with trained weights (Simonyan & Zisserman,       a weights file
                arXiv:1409.1556)
"vgg16"         VGG16 likewise                                          a weights file
"random_vgg19"  VGG19 with random, layer-rescaled weights (He, Wang &   nothing
                Hopcroft, arXiv:1606.04801)
"multiscale"    one random conv layer, 8 filter sizes x 128 maps        nothing
                (Ustyuzhaninov et al., ICLR 2017, arXiv:1606.00021)
=============== ====================================================== ================

Weights files, by extension: ``.h5`` Keras "notop" (`load_vgg_keras_h5`, Caffe input
normalisation), ``.pth``/``.pt`` torchvision (`load_vgg_torchvision`, ImageNet mean/std),
``.npz``/``.safetensors`` a torchvision state dict saved in that format.

Which default for which task, when no trained weights are at hand (none can be downloaded
here; with them, "vgg19" and Gatys' layers are the reference):

* texture synthesis: "multiscale", matching the Gram matrix of "relu" (Ustyuzhaninov et
  al. report samples comparable to the trained VGG19 of Gatys et al. 2015);
* style transfer, feature inversion: "random_vgg19", passing the style/content images as
  `images=` so each layer is normalised on them (He et al. report style transfer and
  inversions competitive with the trained network); Gatys' layers (`default_layers`);
* DeepDream has no random-weight counterpart in the literature (it amplifies what a
  trained network has learned to detect); a random net runs but dreams noise.

`default_layers(name, task)` gives the layers of the papers for each network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax

from gen_jax.models.features.random_features import (
    MULTISCALE_SIZES,
    MultiscaleRandomFeatures,
    multiscale_params,
)
from gen_jax.models.features.vgg import (
    VGG,
    load_vgg_keras_h5,
    load_vgg_torchvision,
    random_vgg_params,
    vgg_param_shapes,
)

__all__ = ["FEATURE_NETS", "TASKS", "default_layers", "get_feature_net"]

FEATURE_NETS: tuple[str, ...] = ("vgg16", "vgg19", "random_vgg19", "multiscale")
TASKS: tuple[str, ...] = ("style", "content", "texture", "inversion", "dream")

_KERAS_SUFFIXES = (".h5", ".hdf5")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".npz", ".safetensors")

# Gatys, Ecker & Bethge. Style (CVPR 2016, arXiv:1508.06576): relu1_1 ... relu5_1; content:
# conv4_2, which in their Caffe net is the in-place ReLU's output, i.e. relu4_2 here.
# Texture (NeurIPS 2015, arXiv:1505.07376): conv1_1 (again post-ReLU), pool1 ... pool4.
_VGG_LAYERS = {
    "style": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "content": ("relu4_2",),
    "texture": ("relu1_1", "pool1", "pool2", "pool3", "pool4"),
    # Mahendran & Vedaldi (arXiv:1412.0035) invert every layer; relu4_2 is the content
    # layer of style transfer, a middle ground between pixel fidelity and abstraction.
    "inversion": ("relu4_2",),
    # No paper fixes a VGG layer for DeepDream; a deep layer whose units respond to
    # object parts. Change freely.
    "dream": ("relu4_2",),
}


def default_layers(name: str, task: str) -> tuple[str, ...]:
    """The layers the papers use for `task` on network `name`.

    VGG (trained or random): style relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 and content
    relu4_2 (Gatys et al. 2016, arXiv:1508.06576; their "conv4_2" is post-ReLU in Caffe);
    texture relu1_1, pool1-pool4 (Gatys et al. 2015, arXiv:1505.07376); inversion and
    dream relu4_2. Multiscale: "relu" for every task (the single layer of Ustyuzhaninov et
    al.; used for content it keeps little more than local colour and edges).

    Args:
      name: one of `FEATURE_NETS`.
      task: one of `TASKS`: "style", "content", "texture", "inversion", "dream".

    Returns:
      A tuple of layer names for `module.apply(..., outputs=...)`.

    Raises:
      ValueError: unknown `name` or `task`.
    """
    if name not in FEATURE_NETS:
        raise ValueError(f"unknown feature net {name!r}; expected one of {FEATURE_NETS}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if name == "multiscale":
        return ("relu",)
    return _VGG_LAYERS[task]


def _vgg_weights(weights: Any, depth: int) -> tuple[dict, str]:
    """(params, the preprocessing they expect) from a path or a mapping."""
    if isinstance(weights, Mapping):
        if "conv1_1" in weights:  # Already in our layout (e.g. from a loader).
            shapes = vgg_param_shapes(depth)
            missing = [c for c in shapes if c not in weights]
            if missing:
                raise ValueError(
                    f"weights (a params dict) lacks {missing} for VGG{depth}; expected keys "
                    f"{tuple(shapes)}"
                )
            return dict(weights), "torch"
        return load_vgg_torchvision(weights, depth), "torch"
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be a path (.h5, .pth, .npz, .safetensors) or a mapping; got "
            f"{type(weights).__name__}"
        )
    suffix = Path(weights).suffix.lower()
    if suffix in _KERAS_SUFFIXES:
        return load_vgg_keras_h5(weights, depth), "caffe"
    if suffix in _TORCH_SUFFIXES:
        return load_vgg_torchvision(weights, depth), "torch"
    raise ValueError(
        f"weights {str(weights)!r}: unknown extension {suffix!r}; expected .h5/.hdf5 (Keras "
        f"notop) or .pth/.pt/.bin/.npz/.safetensors (torchvision state dict)"
    )


def get_feature_net(
    name: str,
    weights: Any = None,
    *,
    key: jax.Array | None = None,
    pooling: str = "max",
    allow_random: bool = False,
    **kw: Any,
) -> tuple[nn.Module, dict]:
    """Builds a fixed feature network and its parameters.

    Args:
      name: "vgg16", "vgg19", "random_vgg19" or "multiscale".
      weights: for "vgg16"/"vgg19": a weights file (.h5 Keras notop; .pth/.pt/.bin, .npz,
        .safetensors torchvision state dict) or a mapping (a torchvision state dict, or
        params in our layout). Must be None for the random networks.
      key: PRNG key of the random networks (default `PRNGKey(0)`, so the default network
        is the same in every run).
      pooling: "max" or "avg" for the VGGs (Gatys et al. use "avg"); ignored by
        "multiscale", which has no pooling.
      allow_random: only with "vgg16"/"vgg19" and no `weights`: return the random,
        rescaled VGG of that depth instead of raising (with a warning).
      **kw: "vgg*": `preprocessing` (overrides the one implied by the weights format),
        `dtype`. "random_vgg19": `images` ([B,H,W,3] in [0,1], normalise each layer on
        them; see `random_vgg_params`), `preprocessing` (default "torch"), `dtype`.
        "multiscale": `scales`, `features_per_scale`, `fft_min_size`, `preprocessing`,
        `dtype`.

    Returns:
      (module, params): `module.apply({"params": params}, images, outputs=names)`.

    Raises:
      ValueError: unknown name or option, "vgg16"/"vgg19" without weights (unless
        `allow_random`), or weights given to a random network.
      FileNotFoundError, VGGWeightsError: from the loaders.
    """
    if name not in FEATURE_NETS:
        raise ValueError(f"unknown feature net {name!r}; expected one of {FEATURE_NETS}")
    key = jax.random.PRNGKey(0) if key is None else key
    if name in ("vgg16", "vgg19"):
        depth = int(name[3:])
        if weights is None:
            if not allow_random:
                raise ValueError(
                    f"{name!r} needs trained weights: pass weights=<path to "
                    f"vgg{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5 or the "
                    f"torchvision .pth>. Without them, use name='random_vgg19' (random "
                    f"rescaled weights, He et al. 2016) or 'multiscale' (textures), or pass "
                    f"allow_random=True"
                )
            warnings.warn(
                f"get_feature_net({name!r}): no weights given; using random rescaled "
                f"weights (allow_random=True)",
                stacklevel=2,
            )
            return _random_vgg(depth, key, pooling, kw)
        params, preprocessing = _vgg_weights(weights, depth)
        kw.setdefault("preprocessing", preprocessing)
        return VGG(depth=depth, pooling=pooling, **kw), params
    if weights is not None:
        raise ValueError(
            f"{name!r} is a random network and takes no weights; got weights={weights!r}. "
            f"For trained weights use name='vgg19' or 'vgg16'"
        )
    if name == "random_vgg19":
        return _random_vgg(19, key, pooling, kw)
    scales = kw.pop("scales", MULTISCALE_SIZES)
    features = kw.pop("features_per_scale", 128)
    module = MultiscaleRandomFeatures(scales=tuple(scales), features_per_scale=features, **kw)
    return module, multiscale_params(key, scales, features)


def _random_vgg(depth: int, key: jax.Array, pooling: str, kw: dict) -> tuple[nn.Module, dict]:
    """The rescaled random VGG of `depth`, with the options of `get_feature_net`."""
    images = kw.pop("images", None)
    preprocessing = kw.pop("preprocessing", "torch")
    params = random_vgg_params(key, depth, images, pooling=pooling, preprocessing=preprocessing)
    return VGG(depth=depth, pooling=pooling, preprocessing=preprocessing, **kw), params
