"""The FID Inception-v3 against a NumPy float64 re-implementation of pytorch-fid's network.

Weights are synthetic (random values under the real names and shapes): the real weight file
cannot be downloaded here.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gen_jax.models.features.inception import (
    FIDInceptionV3,
    _resize_bilinear,
    fid_feature_fn,
    fid_inception_state_dict_shapes,
    fid_inception_variables,
    load_fid_inception,
)
from gen_jax.models.features.torch_weights import StateDictMismatchError

EPS = 1e-3  # batch-norm epsilon of the TF graph


@pytest.fixture(scope="module")
def state_dict():
    """Random weights under the real names, scaled so activations neither die nor explode."""
    rng = np.random.default_rng(0)
    sd = {}
    for name, shape in fid_inception_state_dict_shapes().items():
        if name.endswith("conv.weight") or name == "fc.weight":
            fan_in = math.prod(shape[1:])
            value = rng.standard_normal(shape, np.float32) * math.sqrt(2.0 / fan_in)
        elif name.endswith(("running_var", "bn.weight")):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # running_mean, bn.bias, fc.bias
            value = 0.1 * rng.standard_normal(shape)
        sd[name] = value.astype(np.float32)
    return sd


@pytest.fixture(scope="module")
def npz_path(state_dict, tmp_path_factory):
    path = tmp_path_factory.mktemp("fid") / "fid_inception.npz"
    np.savez(path, **state_dict)
    return path


def test_state_dict_names_and_shapes_are_pytorch_fids():
    shapes = fid_inception_state_dict_shapes()
    # 94 BasicConvs x (conv weight + 4 batch-norm tensors) + fc weight and bias.
    assert len(shapes) == 94 * 5 + 2
    # Pinned by hand from pytorch-fid / torchvision's Inception3.
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_var"] == (32,)
    assert shapes["Conv2d_4a_3x3.conv.weight"] == (192, 80, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_5b.branch1x1.conv.weight"] == (64, 192, 1, 1)
    assert shapes["Mixed_6a.branch3x3.conv.weight"] == (384, 288, 3, 3)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7b.branch3x3_2b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert shapes["Mixed_7c.branch3x3dbl_1.bn.weight"] == (448,)
    assert shapes["fc.weight"] == (1008, 2048)
    assert shapes["fc.bias"] == (1008,)
    assert not any(k.startswith("AuxLogits") for k in shapes)
    # torchvision's Inception3 without AuxLogits has 23,834,568 parameters with 1000
    # classes; 1008 classes add 8 x 2049.
    trainable = sum(math.prod(s) for k, s in shapes.items() if "running" not in k)
    assert trainable == 23_834_568 + 8 * 2049
    assert "fc.weight" not in fid_inception_state_dict_shapes(num_classes=0)


# --- NumPy float64 reference, NCHW, written from pytorch-fid's forward ------------------


def _conv(x, w, stride=1, pad=(0, 0)):
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("bchwij,ocij->bohw", win, w, optimize=True)


def _basic(sd, name, x, stride=1, pad=(0, 0)):
    p = {k: sd[f"{name}.{k}"].astype(np.float64)[None, :, None, None] for k in _BN}
    y = _conv(x, sd[f"{name}.conv.weight"].astype(np.float64), stride, pad)
    y = (y - p["bn.running_mean"]) / np.sqrt(p["bn.running_var"] + EPS)
    return np.maximum(y * p["bn.weight"] + p["bn.bias"], 0.0)


_BN = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


def _max_pool(x, stride=2, pad=0):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    return sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride].max((-1, -2))


def _avg_pool_no_pad_count(x):
    pad = ((0, 0), (0, 0), (1, 1), (1, 1))
    total = sliding_window_view(np.pad(x, pad), (3, 3), axis=(2, 3)).sum((-1, -2))
    count = sliding_window_view(np.pad(np.ones_like(x), pad), (3, 3), axis=(2, 3)).sum((-1, -2))
    return total / count


def _reference(sd, images_nhwc):
    """pool3 features and logits of pytorch-fid's FID Inception (inputs in [0, 1])."""
    x = 2.0 * images_nhwc.astype(np.float64).transpose(0, 3, 1, 2) - 1.0
    b = lambda name, x, *a: _basic(sd, name, x, *a)
    x = b("Conv2d_1a_3x3", x, 2)
    x = b("Conv2d_2a_3x3", x)
    x = _max_pool(b("Conv2d_2b_3x3", x, 1, (1, 1)))
    x = _max_pool(b("Conv2d_4a_3x3", b("Conv2d_3b_1x1", x)))
    for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = np.concatenate(
            [
                b(f"{m}.branch1x1", x),
                b(f"{m}.branch5x5_2", b(f"{m}.branch5x5_1", x), 1, (2, 2)),
                b(
                    f"{m}.branch3x3dbl_3",
                    b(f"{m}.branch3x3dbl_2", b(f"{m}.branch3x3dbl_1", x), 1, (1, 1)),
                    1,
                    (1, 1),
                ),
                b(f"{m}.branch_pool", _avg_pool_no_pad_count(x)),
            ],
            axis=1,
        )
    m = "Mixed_6a"
    d = b(f"{m}.branch3x3dbl_2", b(f"{m}.branch3x3dbl_1", x), 1, (1, 1))
    x = np.concatenate(
        [b(f"{m}.branch3x3", x, 2), b(f"{m}.branch3x3dbl_3", d, 2), _max_pool(x)], axis=1
    )
    for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        s = b(f"{m}.branch7x7_2", b(f"{m}.branch7x7_1", x), 1, (0, 3))
        s = b(f"{m}.branch7x7_3", s, 1, (3, 0))
        d = b(f"{m}.branch7x7dbl_1", x)
        for i, pad in zip(range(2, 6), [(3, 0), (0, 3), (3, 0), (0, 3)]):
            d = b(f"{m}.branch7x7dbl_{i}", d, 1, pad)
        p = b(f"{m}.branch_pool", _avg_pool_no_pad_count(x))
        x = np.concatenate([b(f"{m}.branch1x1", x), s, d, p], axis=1)
    m = "Mixed_7a"
    t = b(f"{m}.branch3x3_2", b(f"{m}.branch3x3_1", x), 2)
    s = b(f"{m}.branch7x7x3_2", b(f"{m}.branch7x7x3_1", x), 1, (0, 3))
    s = b(f"{m}.branch7x7x3_4", b(f"{m}.branch7x7x3_3", s, 1, (3, 0)), 2)
    x = np.concatenate([t, s, _max_pool(x)], axis=1)
    for m, pool in (("Mixed_7b", _avg_pool_no_pad_count), ("Mixed_7c", _max_pool)):
        t = b(f"{m}.branch3x3_1", x)
        t = [b(f"{m}.branch3x3_2a", t, 1, (0, 1)), b(f"{m}.branch3x3_2b", t, 1, (1, 0))]
        d = b(f"{m}.branch3x3dbl_2", b(f"{m}.branch3x3dbl_1", x), 1, (1, 1))
        d = [b(f"{m}.branch3x3dbl_3a", d, 1, (0, 1)), b(f"{m}.branch3x3dbl_3b", d, 1, (1, 0))]
        p = pool(x, 1, 1) if pool is _max_pool else pool(x)
        x = np.concatenate([b(f"{m}.branch1x1", x), *t, *d, b(f"{m}.branch_pool", p)], axis=1)
    features = x.mean(axis=(2, 3))
    logits = features @ sd["fc.weight"].T.astype(np.float64) + sd["fc.bias"]
    return x, features, logits


def test_forward_matches_numpy_reference(state_dict, npz_path):
    model, variables = load_fid_inception(npz_path, resize_input=False)
    # 75 is the smallest size (Mixed_7a's output is 1x1); a height of 107 makes it 2, so
    # that Mixed_7c's padded pools see more than one pixel.
    images = np.random.default_rng(1).uniform(0, 1, (2, 107, 75, 3)).astype(np.float32)
    (features, logits), state = jax.jit(
        lambda v, x: model.apply(
            v,
            x,
            return_logits=True,
            capture_intermediates=lambda mdl, _: mdl.name == "Conv2d_1a_3x3",
        )
    )(variables, images)
    stem = np.asarray(state["intermediates"]["Conv2d_1a_3x3"]["__call__"][0])

    x64 = 2.0 * images.astype(np.float64).transpose(0, 3, 1, 2) - 1.0
    stem_ref = _basic(state_dict, "Conv2d_1a_3x3", x64, 2).transpose(0, 2, 3, 1)
    assert stem.shape == (2, 53, 37, 32)
    np.testing.assert_allclose(stem, stem_ref, rtol=1e-5, atol=1e-5)

    last, features_ref, logits_ref = _reference(state_dict, images)
    assert last.shape == (2, 2048, 2, 1)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert np.isfinite(features).all() and features.std() > 0.1  # alive, not saturated
    scale = np.abs(features_ref).max()
    np.testing.assert_allclose(features, features_ref, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(logits, logits_ref, rtol=1e-4, atol=1e-4 * np.abs(logits_ref).max())


def _torch_bilinear(x, size):
    """NumPy float64 version of F.interpolate(mode="bilinear", align_corners=False), NHWC."""

    def axis_weights(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = np.zeros((n_out, n_in))
        np.add.at(w, (np.arange(n_out), i0), 1 - (src - i0))
        np.add.at(w, (np.arange(n_out), i1), src - i0)
        return w

    wh, ww = axis_weights(x.shape[1], size[0]), axis_weights(x.shape[2], size[1])
    return np.einsum("oh,bhwc,pw->bopc", wh, x.astype(np.float64), ww)


@pytest.mark.parametrize(
    "in_size, out_size", [((9, 13), (4, 6)), ((5, 4), (12, 11)), ((7, 7), (7, 7))]
)
def test_resize_is_pytorch_bilinear(in_size, out_size):
    x = np.random.default_rng(2).uniform(0, 1, (2, *in_size, 3)).astype(np.float32)
    got = np.asarray(_resize_bilinear(jnp.asarray(x), out_size))
    np.testing.assert_allclose(got, _torch_bilinear(x, out_size), rtol=1e-5, atol=1e-6)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return
    ref = F.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=out_size, mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_fid_feature_fn_full_resolution(npz_path):
    # Batch 1 through the 299x299 resize; input in [-1, 1] (a tanh generator's range).
    features = fid_feature_fn(npz_path, input_range=(-1.0, 1.0))
    images = np.random.default_rng(3).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    out = features(jnp.asarray(images))
    assert out.shape == (1, 2048) and out.dtype == jnp.float32
    assert np.isfinite(np.asarray(out)).all()


def test_pth_file_loads_like_npz(state_dict, tmp_path):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(v) for k, v in state_dict.items()}
    # PyTorch's BatchNorm state dicts carry counters that the FID network does not use.
    tensors["Mixed_5b.branch1x1.bn.num_batches_tracked"] = torch.tensor(0)
    path = tmp_path / "pt_inception.pth"
    torch.save(tensors, path)
    _, variables = load_fid_inception(path)
    expected = fid_inception_variables(state_dict)
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, expected)


def test_kernel_layout_conversion(state_dict):
    variables = fid_inception_variables(state_dict)
    kernel = variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
    w = state_dict["Mixed_6b.branch7x7_2.conv.weight"]  # OIHW (128, 128, 1, 7)
    assert kernel.shape == (1, 7, 128, 128)  # HWIO
    np.testing.assert_array_equal(kernel[0, 5, 3, 2], w[2, 3, 0, 5])
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state_dict["fc.weight"].T)
    np.testing.assert_array_equal(
        variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
        state_dict["Mixed_7c.branch_pool.bn.running_var"],
    )


def test_mismatched_weights_are_named(state_dict, tmp_path):
    bad = dict(state_dict)
    del bad["Mixed_6c.branch7x7_1.bn.running_mean"]
    bad["Mixed_7c.branch_pool.conv.weight"] = np.zeros((192, 2048, 3, 3), np.float32)
    bad["AuxLogits.fc.weight"] = np.zeros((1000, 768), np.float32)
    with pytest.raises(StateDictMismatchError) as info:
        fid_inception_variables(bad, source="w.pth")
    msg = str(info.value)
    assert "1 missing keys: Mixed_6c.branch7x7_1.bn.running_mean" in msg
    assert "1 unexpected keys: AuxLogits.fc.weight" in msg
    assert "Mixed_7c.branch_pool.conv.weight: expected (192, 2048, 1, 1), found" in msg
    assert "torchvision" in msg  # the AuxLogits hint
    # Through a file, the message names the file.
    path = tmp_path / "small.npz"
    np.savez(path, **{"fc.weight": np.zeros((1008, 2048), np.float32)})
    with pytest.raises(StateDictMismatchError, match=r"small\.npz.*471 missing keys"):
        load_fid_inception(path)


def test_input_checks():
    x = jax.ShapeDtypeStruct((1, 80, 80, 1), jnp.float32)
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0), x)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"H, W >= 75"):
        jax.eval_shape(FIDInceptionV3(resize_input=False).init, jax.random.PRNGKey(0), x)
    out = jax.eval_shape(FIDInceptionV3().init_with_output, jax.random.PRNGKey(0), x)[0]
    assert out.shape == (1, 2048)
