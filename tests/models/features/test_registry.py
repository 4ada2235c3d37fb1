"""`get_feature_net` and `default_layers`: the contract the synthesis code relies on."""

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.features import FEATURE_NETS, TASKS, default_layers, get_feature_net
from gen_jax.models.features.random_features import (
    MultiscaleRandomFeatures,
    multiscale_layer_names,
)
from gen_jax.models.features.vgg import (
    VGG,
    torchvision_conv_indices,
    vgg_layer_names,
    vgg_param_shapes,
)

KEY = jax.random.PRNGKey(0)
IMAGES = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 32, 32, 3)), jnp.float32)


def _constant_params(depth):
    return {
        c: {k: np.full(s, 0.01, np.float32) for k, s in shapes.items()}
        for c, shapes in vgg_param_shapes(depth).items()
    }


def test_contract_with_random_vgg19():
    module, params = get_feature_net("random_vgg19", key=KEY, pooling="avg", images=IMAGES)
    assert isinstance(module, VGG) and module.depth == 19 and module.pooling == "avg"
    outputs = ("relu1_1", "relu2_1", "conv4_2")
    feats = module.apply({"params": params}, IMAGES, outputs=outputs)
    assert {k: v.shape for k, v in feats.items()} == {
        "relu1_1": (1, 32, 32, 64),
        "relu2_1": (1, 16, 16, 128),
        "conv4_2": (1, 4, 4, 512),
    }
    # Normalised on the images it was given.
    np.testing.assert_allclose(float(jnp.mean(feats["relu2_1"])), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown layer name"):
        module.apply({"params": params}, IMAGES, outputs=("relu9_9",))


def test_multiscale_default():
    module, params = get_feature_net("multiscale", key=KEY, features_per_scale=2, scales=(3, 5))
    assert isinstance(module, MultiscaleRandomFeatures)
    feats = module.apply(
        {"params": params}, IMAGES, outputs=default_layers("multiscale", "texture")
    )
    assert feats["relu"].shape == (1, 32, 32, 4)
    _, full = get_feature_net("multiscale")  # the paper's network, seeded with PRNGKey(0)
    assert full["conv_55"]["kernel"].shape == (55, 55, 3, 128)


def test_vgg_without_weights_raises_unless_asked_for_random():
    with pytest.raises(ValueError, match="needs trained weights.*random_vgg19"):
        get_feature_net("vgg19")
    with pytest.warns(UserWarning, match="random rescaled weights"):
        module, params = get_feature_net("vgg16", allow_random=True, key=KEY)
    assert module.depth == 16 and set(params) == set(vgg_param_shapes(16))


def test_weights_format_by_extension(tmp_path):
    params = _constant_params(16)
    sd = {}
    for conv, idx in torchvision_conv_indices(16).items():
        sd[f"features.{idx}.weight"] = np.transpose(params[conv]["kernel"], (3, 2, 0, 1))
        sd[f"features.{idx}.bias"] = params[conv]["bias"]
    np.savez(tmp_path / "vgg16.npz", **sd)
    module, loaded = get_feature_net("vgg16", tmp_path / "vgg16.npz", pooling="avg")
    assert (module.depth, module.pooling, module.preprocessing) == (16, "avg", "torch")
    np.testing.assert_array_equal(loaded["conv5_3"]["kernel"], params["conv5_3"]["kernel"])

    with h5py.File(tmp_path / "vgg16.h5", "w") as f:
        for conv, p in params.items():
            b, i = conv[4:].split("_")
            g = f.create_group(f"block{b}_conv{i}")
            g.create_dataset(f"block{b}_conv{i}_W_1:0", data=p["kernel"])
            g.create_dataset(f"block{b}_conv{i}_b_1:0", data=p["bias"])
    module, loaded = get_feature_net("vgg16", str(tmp_path / "vgg16.h5"))
    assert module.preprocessing == "caffe"
    np.testing.assert_array_equal(loaded["conv1_1"]["bias"], params["conv1_1"]["bias"])
    # The preprocessing can be overridden (e.g. for converted weights).
    module, _ = get_feature_net("vgg16", tmp_path / "vgg16.h5", preprocessing="none")
    assert module.preprocessing == "none"

    with pytest.raises(ValueError, match=r"unknown extension '\.ckpt'"):
        get_feature_net("vgg16", tmp_path / "vgg16.ckpt")
    with pytest.raises(ValueError, match="takes no weights"):
        get_feature_net("random_vgg19", tmp_path / "vgg16.npz")
    with pytest.raises(ValueError, match="unknown feature net 'vgg11'"):
        get_feature_net("vgg11")


def test_params_mapping_is_accepted():
    params = _constant_params(19)
    module, same = get_feature_net("vgg19", params)
    assert module.depth == 19 and same["conv1_1"] is params["conv1_1"]
    del params["conv5_4"]
    with pytest.raises(ValueError, match=r"lacks \['conv5_4'\]"):
        get_feature_net("vgg19", params)


def test_default_layers():
    assert default_layers("vgg19", "style") == (
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "relu4_1",
        "relu5_1",
    )
    assert default_layers("random_vgg19", "content") == ("relu4_2",)
    assert default_layers("vgg19", "texture") == ("relu1_1", "pool1", "pool2", "pool3", "pool4")
    for name in FEATURE_NETS:
        valid = multiscale_layer_names() if name == "multiscale" else vgg_layer_names(16)
        for task in TASKS:
            assert set(default_layers(name, task)) <= set(valid), (name, task)
    with pytest.raises(ValueError, match="unknown task 'paint'"):
        default_layers("vgg19", "paint")
    with pytest.raises(ValueError, match="unknown feature net"):
        default_layers("alexnet", "style")
