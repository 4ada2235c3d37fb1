"""The feature network of a synthesis run, chosen by name as the experiments' options name it.

Shared by the style-transfer and texture-synthesis runs (and any other image-space run):
`feature_net` turns (net, weights, pooling, seed, the images the run works on) into a
`get_feature_net` call, with the checks a user's options need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data.images import resize
from gen_jax.models.features import get_feature_net

__all__ = ["feature_net"]


def feature_net(
    net: str,
    weights: str = "",
    *,
    images: Sequence[np.ndarray],
    seed: int = 0,
    pooling: str = "avg",
    **kwargs: Any,
) -> tuple[Any, Any]:
    """(module, params) of the feature network `net` for a synthesis run.

    Args:
      net: a `gen_jax.models.features.FEATURE_NETS` name.
      weights: a weights file; required by "vgg16"/"vgg19", refused by the random nets.
      images: the run's images [H, W, 3] in [0, 1] (content and style, or the source); a
        random VGG normalises each layer on them, resized to the first one's size.
      seed: the random networks' seed.
      pooling: the VGGs' pooling.
      **kwargs: further `get_feature_net` options (e.g. the multiscale net's `scales`).

    Raises:
      ValueError: a trained VGG without `weights`, naming the option and the alternative.
    """
    if net in ("vgg16", "vgg19") and not weights:
        raise ValueError(
            f"--net {net} needs --weights PATH (Keras notop .h5 or torchvision .pth); without "
            "trained weights use --net random_vgg19 (the default)"
        )
    if net == "random_vgg19":
        h, w = images[0].shape[:2]
        kwargs["images"] = jnp.stack([resize(im, h, w) for im in images])
    return get_feature_net(
        net, weights or None, key=jax.random.PRNGKey(seed), pooling=pooling, **kwargs
    )
