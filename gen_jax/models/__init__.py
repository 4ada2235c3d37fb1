"""Flax modules, one file per family, and the fixed networks used by metrics and synthesis."""

from gen_jax.models.classifier import (
    PRETRAINED_CLASSIFIERS,
    Classifier,
    ClassifierWeightsError,
    TinyClassifier,
    classifier_fn,
    load_pretrained_classifier,
)
from gen_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.models.feature_nets import FEATURE_NETS, default_layers, get_feature_net
from gen_jax.models.inception import FIDInceptionV3, fid_feature_fn, load_fid_inception
from gen_jax.models.mlp_gan import MLPDiscriminator, MLPGenerator
from gen_jax.models.random_features import MultiscaleRandomFeatures, multiscale_params
from gen_jax.models.torch_weights import (
    StateDictMismatchError,
    TorchCheckpointError,
    load_torch_state_dict,
    load_weight_file,
    save_npz_state_dict,
)
from gen_jax.models.vgg import (
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
    "PRETRAINED_CLASSIFIERS",
    "VGG",
    "VGG16",
    "VGG19",
    "Classifier",
    "ClassifierWeightsError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "FIDInceptionV3",
    "MLPDiscriminator",
    "MLPGenerator",
    "MultiscaleRandomFeatures",
    "StateDictMismatchError",
    "TinyClassifier",
    "TorchCheckpointError",
    "VGGWeightsError",
    "classifier_fn",
    "default_layers",
    "fid_feature_fn",
    "get_feature_net",
    "load_fid_inception",
    "load_pretrained_classifier",
    "load_torch_state_dict",
    "load_vgg_keras_h5",
    "load_vgg_torchvision",
    "load_weight_file",
    "multiscale_params",
    "random_vgg_params",
    "save_npz_state_dict",
    "vgg_layer_names",
]
