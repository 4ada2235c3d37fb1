"""The fixed networks that losses, metrics and synthesis read features from.

VGG16/VGG19 (trained or random, `vgg`), FID's InceptionV3 (`inception`), multiscale
random features (`random_features`), the readers of their weight files
(`torch_weights`: ``python -m gen_jax.models.features.torch_weights IN.pth OUT.npz``), the
registry `get_feature_net` (`registry`) and the generic `prepare` hook (`variables`).

Every network is a Flax module with one contract (see `registry`)::

    module, params = get_feature_net(name, weights=None, key=..., pooling="max")
    feats = module.apply(as_variables(params), images, outputs=("relu1_1", "conv4_2"))

and `prepare(module, params, example_input, outputs)` gives variables with the work that
depends only on the parameters done once (VGG's Winograd kernel transforms), for code
that applies the network inside a loop.
"""

from gen_jax.models.features.inception import FIDInceptionV3, fid_feature_fn, load_fid_inception
from gen_jax.models.features.random_features import MultiscaleRandomFeatures, multiscale_params
from gen_jax.models.features.registry import FEATURE_NETS, TASKS, default_layers, get_feature_net
from gen_jax.models.features.torch_weights import (
    StateDictMismatchError,
    TorchCheckpointError,
    load_torch_state_dict,
    load_weight_file,
    save_npz_state_dict,
)
from gen_jax.models.features.variables import PreparedVariables, as_variables, prepare
from gen_jax.models.features.vgg import (
    VGG,
    VGG16,
    VGG19,
    VGGWeightsError,
    load_vgg_keras_h5,
    load_vgg_torchvision,
    random_vgg_params,
    vgg_layer_names,
)

__all__ = [
    "FEATURE_NETS",
    "TASKS",
    "VGG",
    "VGG16",
    "VGG19",
    "FIDInceptionV3",
    "MultiscaleRandomFeatures",
    "PreparedVariables",
    "StateDictMismatchError",
    "TorchCheckpointError",
    "VGGWeightsError",
    "as_variables",
    "default_layers",
    "fid_feature_fn",
    "get_feature_net",
    "load_fid_inception",
    "load_torch_state_dict",
    "load_vgg_keras_h5",
    "load_vgg_torchvision",
    "load_weight_file",
    "multiscale_params",
    "prepare",
    "random_vgg_params",
    "save_npz_state_dict",
    "vgg_layer_names",
]
