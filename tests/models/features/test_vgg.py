"""VGG16/19: layer shapes, early stopping, loaders of the Keras and torchvision files, and
random rescaled weights, against NumPy float64 references."""

import re

import flax.linen as nn
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.features import prepare
from gen_jax.models.features.vgg import (
    VGG,
    VGGWeightsError,
    load_vgg_keras_h5,
    load_vgg_torchvision,
    pool_2x2,
    random_vgg_params,
    torchvision_conv_indices,
    vgg_layer_names,
    vgg_param_shapes,
)

KEY = jax.random.PRNGKey(0)

# Independent restatement of the architecture (Table 1 of Simonyan & Zisserman).
_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
# The indices of the convs in torchvision's vgg16().features / vgg19().features.
_TORCHVISION_CONVS = {
    16: (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    19: (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34),
}


def _expected_shapes(depth, h, w):
    shapes = {}
    for b, (n, c) in enumerate(zip(_BLOCKS[depth], _WIDTHS), start=1):
        for i in range(1, n + 1):
            shapes[f"conv{b}_{i}"] = shapes[f"relu{b}_{i}"] = (2, h, w, c)
        h, w = h // 2, w // 2
        shapes[f"pool{b}"] = (2, h, w, c)
    return shapes


def _random_numpy_params(depth, seed=0):
    """He-scaled float32 weights with non-zero biases, in our HWIO layout."""
    rng = np.random.default_rng(seed)
    params = {}
    for conv, s in vgg_param_shapes(depth).items():
        fan_in = np.prod(s["kernel"][:3])
        params[conv] = {
            "kernel": (rng.standard_normal(s["kernel"]) * np.sqrt(2 / fan_in)).astype(np.float32),
            "bias": (0.1 * rng.standard_normal(s["bias"])).astype(np.float32),
        }
    return params


# --- NumPy float64 reference -------------------------------------------------------------


def _np_conv3x3(x, kernel, bias):
    x = np.asarray(x, np.float64)
    k = np.asarray(kernel, np.float64)
    _, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:3] + (k.shape[-1],))
    for di in range(3):
        for dj in range(3):
            out += np.einsum("bhwc,co->bhwo", xp[:, di : di + h, dj : dj + w], k[di, dj])
    return out + np.asarray(bias, np.float64)


def _np_pool(x, mode):
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if mode == "max" else x.mean(axis=(2, 4))


def _np_preprocess(images, mode):
    x = np.asarray(images, np.float64)
    if mode == "torch":
        return (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    bgr = x[..., [2, 1, 0]] * 255.0
    return bgr - [103.939, 116.779, 123.68]


def _np_relu1_1_and_conv2_1(params, images, preprocessing, pooling):
    x = _np_preprocess(images, preprocessing)
    relu1_1 = np.maximum(_np_conv3x3(x, **params["conv1_1"]), 0)
    relu1_2 = np.maximum(_np_conv3x3(relu1_1, **params["conv1_2"]), 0)
    conv2_1 = _np_conv3x3(_np_pool(relu1_2, pooling), **params["conv2_1"])
    return relu1_1, conv2_1


def _assert_close(actual, expected):
    actual = np.asarray(actual, np.float64)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale)


IMAGES = np.random.default_rng(1).uniform(size=(2, 12, 10, 3)).astype(np.float32)


# --- Architecture ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [16, 19])
@pytest.mark.parametrize("size", [(32, 32), (40, 56), (33, 47)])
def test_every_named_layer_has_the_paper_shape(depth, size):
    x = jnp.zeros((2, *size, 3))
    net = VGG(depth=depth)
    feats, variables = jax.eval_shape(lambda k: net.init_with_output(k, x, outputs=None), KEY)
    expected = _expected_shapes(depth, *size)
    assert list(vgg_layer_names(depth)) == list(expected)  # forward order
    assert set(feats) == set(expected)  # (eval_shape returns the dict with sorted keys)
    assert {k: v.shape for k, v in feats.items()} == expected
    params = jax.tree.map(lambda a: a.shape, variables["params"])
    assert params == {
        c: {"kernel": s["kernel"], "bias": s["bias"]} for c, s in vgg_param_shapes(depth).items()
    }
    n_weights = sum(np.prod(s) for p in params.values() for s in p.values())
    # The convolutional parameter counts of VGG16 / VGG19 (Keras' "notop" summaries).
    assert n_weights == {16: 14_714_688, 19: 20_024_384}[depth]


def test_torchvision_indices():
    for depth in (16, 19):
        assert tuple(torchvision_conv_indices(depth).values()) == _TORCHVISION_CONVS[depth]


def _count_primitive(jaxpr, name):
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
            count += _count_primitive(sub, name)
        # pjit's "jaxpr", custom_vjp's "call_jaxpr" (gen_jax.nn.xla_cpu's convolutions).
        for key in ("jaxpr", "call_jaxpr"):
            if key in eqn.params:
                inner = eqn.params[key]
                count += _count_primitive(getattr(inner, "jaxpr", inner), name)
    return count


def test_forward_stops_after_the_deepest_requested_layer():
    params = _random_numpy_params(19)
    # Direct convolutions, so that each layer is one conv_general_dilated to count.
    net = VGG(depth=19, conv_algorithm="direct")
    x = jnp.asarray(IMAGES)
    for outputs, n_convs in [(("relu1_1",), 1), (("relu2_1", "conv1_2"), 3), (("pool5",), 16)]:
        jaxpr = jax.make_jaxpr(lambda p, x, o=outputs: net.apply({"params": p}, x, outputs=o))(
            params, jnp.zeros((1, 32, 32, 3))
        )
        assert _count_primitive(jaxpr.jaxpr, "conv_general_dilated") == n_convs, outputs
    # Only conv1_1's parameters are needed for relu1_1: the others are never looked up.
    out = net.apply({"params": {"conv1_1": params["conv1_1"]}}, x, outputs=("relu1_1",))
    assert list(out) == ["relu1_1"]
    out = net.apply({"params": params}, x, outputs="conv1_1")  # a single name is accepted
    assert list(out) == ["conv1_1"]


def test_bad_inputs_raise():
    net = VGG(depth=19)
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['relu6_1'\].*relu1_1"):
        jax.eval_shape(lambda k: net.init(k, x, outputs=("relu1_1", "relu6_1")), KEY)
    with pytest.raises(ValueError, match="relu3_4"):  # VGG16 has no relu3_4
        jax.eval_shape(lambda k: VGG(depth=16).init(k, x, outputs=("relu3_4",)), KEY)
    with pytest.raises(ValueError, match=r"at least 32x32 \(5 2x2 pools\); got 31x40"):
        jax.eval_shape(lambda k: net.init(k, jnp.zeros((1, 31, 40, 3)), outputs="pool5"), KEY)
    with pytest.raises(ValueError, match="at least 16x16"):
        jax.eval_shape(lambda k: net.init(k, jnp.zeros((1, 15, 40, 3)), outputs="relu5_1"), KEY)
    with pytest.raises(ValueError, match=re.escape("[batch, height, width, 3]")):
        jax.eval_shape(lambda k: net.init(k, jnp.zeros((1, 32, 32, 1)), outputs="relu1_1"), KEY)
    for bad in ({"depth": 11}, {"pooling": "min"}, {"preprocessing": "tf"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            jax.eval_shape(lambda k, bad=bad: VGG(**bad).init(k, x, outputs="relu1_1"), KEY)


@pytest.mark.parametrize("preprocessing, pooling", [("torch", "max"), ("caffe", "avg")])
def test_forward_matches_numpy_float64(preprocessing, pooling):
    params = _random_numpy_params(16)
    net = VGG(depth=16, pooling=pooling, preprocessing=preprocessing)
    out = net.apply({"params": params}, IMAGES, outputs=("relu1_1", "conv2_1"))
    relu1_1, conv2_1 = _np_relu1_1_and_conv2_1(params, IMAGES, preprocessing, pooling)
    _assert_close(out["relu1_1"], relu1_1)
    _assert_close(out["conv2_1"], conv2_1)


# --- Loaders -----------------------------------------------------------------------------


def _write_keras_h5(path, params, depth):
    """The layout of fchollet's vgg{16,19}_weights_tf_dim_ordering_tf_kernels_notop.h5."""
    with h5py.File(path, "w") as f:
        names = ["input_1"]
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S")
        for b, n in enumerate(_BLOCKS[depth], start=1):
            for i in range(1, n + 1):
                layer = f"block{b}_conv{i}"
                g = f.create_group(layer)
                wn = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
                g.attrs["weight_names"] = np.array([s.encode() for s in wn])
                g.create_dataset(wn[0], data=params[f"conv{b}_{i}"]["kernel"])
                g.create_dataset(wn[1], data=params[f"conv{b}_{i}"]["bias"])
                names.append(layer)
            f.create_group(f"block{b}_pool").attrs["weight_names"] = np.array([], dtype="S")
            names.append(f"block{b}_pool")
        f.attrs["layer_names"] = np.array([s.encode() for s in names])


def _torchvision_state_dict(params, depth):
    """torchvision's names and OIHW layout, with the classifier the loader must ignore."""
    sd = {}
    for (conv, p), idx in zip(params.items(), _TORCHVISION_CONVS[depth]):
        sd[f"features.{idx}.weight"] = np.transpose(p["kernel"], (3, 2, 0, 1)).copy()
        sd[f"features.{idx}.bias"] = p["bias"]
    sd["classifier.0.weight"] = np.zeros((4, 7), np.float32)
    sd["classifier.0.bias"] = np.zeros((4,), np.float32)
    return sd


def _assert_params_equal(loaded, params):
    assert set(loaded) == set(params)
    for conv in params:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(np.asarray(loaded[conv][leaf]), params[conv][leaf])


@pytest.fixture(scope="module")
def vgg16_params():
    return _random_numpy_params(16, seed=3)


def test_keras_h5_loads_and_runs_with_caffe_preprocessing(tmp_path, vgg16_params):
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _write_keras_h5(path, vgg16_params, 16)
    loaded = load_vgg_keras_h5(path, depth=16)
    _assert_params_equal(loaded, vgg16_params)
    out = VGG(depth=16, preprocessing="caffe").apply(
        {"params": loaded}, IMAGES, outputs=("relu1_1", "conv2_1")
    )
    relu1_1, conv2_1 = _np_relu1_1_and_conv2_1(vgg16_params, IMAGES, "caffe", "max")
    _assert_close(out["relu1_1"], relu1_1)
    _assert_close(out["conv2_1"], conv2_1)


def test_keras_h5_newer_layout_is_read(tmp_path):
    """Keras 2 `save_weights`: nested groups and kernel:0 / bias:0 names."""
    params = {
        c: {k: np.full(s, 0.5, np.float32) for k, s in shapes.items()}
        for c, shapes in vgg_param_shapes(16).items()
    }
    path = tmp_path / "new.h5"
    with h5py.File(path, "w") as f:
        mw = f.create_group("model_weights")
        for conv, p in params.items():
            b, i = conv[4:].split("_")
            layer = f"block{b}_conv{i}"
            g = mw.create_group(layer).create_group(layer)
            g.create_dataset("kernel:0", data=p["kernel"])
            g.create_dataset("bias:0", data=p["bias"])
    _assert_params_equal(load_vgg_keras_h5(path, 16), params)


def test_keras_h5_errors(tmp_path, vgg16_params):
    path = tmp_path / "vgg16.h5"
    _write_keras_h5(path, vgg16_params, 16)
    with pytest.raises(VGGWeightsError, match=r"no layer group 'block3_conv4'.*VGG16 file"):
        load_vgg_keras_h5(path, depth=19)
    with h5py.File(path, "a") as f:
        del f["block2_conv1/block2_conv1_W_1:0"]
        f["block2_conv1"].create_dataset("block2_conv1_W_1:0", data=np.zeros((3, 3, 64, 64)))
    with pytest.raises(VGGWeightsError, match=r"conv2_1.kernel has shape \(3, 3, 64, 64\)"):
        load_vgg_keras_h5(path, depth=16)
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        load_vgg_keras_h5(tmp_path / "nothere.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(VGGWeightsError, match="junk.h5: expected an HDF5 file"):
        load_vgg_keras_h5(junk)


def test_torchvision_npz_and_mapping_load_and_run(tmp_path, vgg16_params):
    sd = _torchvision_state_dict(vgg16_params, 16)
    path = tmp_path / "vgg16.npz"
    np.savez(path, **sd)
    loaded = load_vgg_torchvision(path, depth=16)
    _assert_params_equal(loaded, vgg16_params)
    prefixed = {f"module.{k}": v for k, v in sd.items()}  # a DataParallel checkpoint
    _assert_params_equal(load_vgg_torchvision(prefixed, depth=16), vgg16_params)
    out = VGG(depth=16, preprocessing="torch").apply(
        {"params": loaded}, IMAGES, outputs=("relu1_1", "conv2_1")
    )
    relu1_1, conv2_1 = _np_relu1_1_and_conv2_1(vgg16_params, IMAGES, "torch", "max")
    _assert_close(out["relu1_1"], relu1_1)
    _assert_close(out["conv2_1"], conv2_1)


def test_torchvision_pth_is_read_without_torch_at_load_time(tmp_path, vgg16_params):
    torch = pytest.importorskip("torch")
    sd = _torchvision_state_dict(vgg16_params, 16)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    _assert_params_equal(load_vgg_torchvision(path, depth=16), vgg16_params)


def test_torchvision_errors(vgg16_params):
    sd = _torchvision_state_dict(vgg16_params, 16)
    with pytest.raises(VGGWeightsError, match=r"missing 'features.16.weight' \(VGG19 conv3_4\)"):
        load_vgg_torchvision(sd, depth=19)
    bad = dict(sd)
    bad["features.5.weight"] = np.zeros((128, 64, 5, 5), np.float32)
    with pytest.raises(VGGWeightsError, match=r"'features.5.weight' has shape \(128, 64, 5, 5\)"):
        load_vgg_torchvision(bad, depth=16)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_vgg_torchvision("/nonexistent/missing.pth")
    with pytest.raises(ValueError, match="depth must be 16 or 19"):
        load_vgg_torchvision(sd, depth=13)


# --- Random weights ----------------------------------------------------------------------


def test_random_vgg_rescaling_makes_every_relu_mean_one_and_keeps_directions():
    images = jnp.asarray(np.random.default_rng(2).uniform(size=(2, 16, 16, 3)), jnp.float32)
    raw = random_vgg_params(KEY, 16)
    scaled = random_vgg_params(KEY, 16, images, pooling="avg")
    relus = tuple(n for n in vgg_layer_names(16) if n.startswith("relu"))
    net = VGG(depth=16, pooling="avg")
    apply = jax.jit(lambda p: net.apply({"params": p}, images, outputs=relus))
    f_raw, f_scaled = apply(raw), apply(scaled)
    for r in relus:
        a, b = np.asarray(f_raw[r], np.float64), np.asarray(f_scaled[r], np.float64)
        np.testing.assert_allclose(b.mean(), 1.0, rtol=1e-4)
        # Positive homogeneity: the rescaled maps are the raw ones divided by their mean.
        np.testing.assert_allclose(b, a / a.mean(), rtol=1e-3, atol=1e-5 * b.max())
    for conv in raw:
        assert not np.any(np.asarray(scaled[conv]["bias"]))


def test_random_vgg_without_images_is_he_scaled():
    params = random_vgg_params(jax.random.PRNGKey(4), 16)
    for conv, s in vgg_param_shapes(16).items():
        k = np.asarray(params[conv]["kernel"], np.float64)
        assert k.shape == s["kernel"]
        fan_in = np.prod(s["kernel"][:3])
        tol = 5 / np.sqrt(k.size)  # a few standard errors of a sample std
        assert abs(k.std() * np.sqrt(fan_in / 2) - 1) < tol, conv
        assert abs(k.mean()) * np.sqrt(fan_in / 2) < tol, conv
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]"):
        random_vgg_params(KEY, 16, jnp.zeros((16, 16, 3)))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_2x2_matches_flax_pooling_and_its_gradient(kind):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 5))  # an odd side is floored
    flax_pool = nn.max_pool if kind == "max" else nn.avg_pool
    ref = lambda x: flax_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_allclose(pool_2x2(x, kind), ref(x), rtol=1e-6, atol=1e-7)
    g = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 5))
    ours = jax.vjp(lambda x: pool_2x2(x, kind), x)[1](g)[0]
    theirs = jax.vjp(ref, x)[1](g)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="pooling"):
        pool_2x2(x, "min")


def test_max_pool_2x2_gives_a_tied_window_gradient_to_its_first_maximum():
    """Flat (e.g. clipped) image regions tie; the gradient matches flax and PyTorch."""
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, (1, 6, 8, 2)).astype(np.float32))
    g = jax.random.normal(jax.random.PRNGKey(2), (1, 3, 4, 2))
    ours = jax.vjp(pool_2x2, x)[1](g)[0]
    ref = jax.vjp(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)), x)[1](g)[0]
    np.testing.assert_array_equal(ours, ref)
    # Every window passes its whole gradient to exactly one input.
    assert int(jnp.sum(ours != 0)) == int(jnp.sum(g != 0))


def test_conv_algorithms_agree_on_vgg19():
    """The CPU default ("auto": Winograd on the wide layers) against direct convolutions."""
    params = _random_numpy_params(19)
    x = jax.random.uniform(KEY, (1, 48, 40, 3))  # tile 4 on the first blocks, 2 on the last
    layers = ("relu1_2", "relu3_1", "relu5_1")
    out = {}
    for algorithm in ("direct", "auto"):
        net = VGG(depth=19, conv_algorithm=algorithm)
        out[algorithm] = jax.jit(lambda p, x, n=net: n.apply({"params": p}, x, outputs=layers))(
            params, x
        )
    for name in layers:
        scale = float(jnp.abs(out["direct"][name]).max())
        np.testing.assert_allclose(out["auto"][name], out["direct"][name], atol=1e-5 * scale)
    with pytest.raises(ValueError, match="conv_algorithm"):
        VGG(depth=19, conv_algorithm="fft").apply({"params": params}, x)


def test_prepared_variables_give_the_same_features_and_gradients():
    """`prepare` (VGG's hook): Winograd kernels computed once, the same maps and gradients."""
    params = _random_numpy_params(19)
    net = VGG(depth=19, conv_algorithm="auto")
    x = jax.random.uniform(KEY, (1, 48, 40, 3))
    layers = ("relu2_2", "relu4_1")
    variables = jax.jit(lambda p, x: prepare(net, p, x, layers))(params, x)
    # One collection of VGG's own beside the parameters (callers never name it).
    (prepared,) = set(variables) - {"params"}
    # conv1_1 (3 -> 64) stays direct and gets nothing; conv1_2 (64 -> 64) is prepared.
    assert "conv1_1" not in variables[prepared] and "conv1_2" in variables[prepared]

    def loss(variables, x):
        feats = net.apply(variables, x, outputs=layers)
        return sum(jnp.sum(f**2) for f in feats.values())

    plain, plain_grad = jax.jit(jax.value_and_grad(loss, 1))({"params": params}, x)
    ahead, ahead_grad = jax.jit(jax.value_and_grad(loss, 1))(variables, x)
    np.testing.assert_allclose(ahead, plain, rtol=1e-6)
    np.testing.assert_allclose(
        ahead_grad, plain_grad, rtol=1e-5, atol=1e-6 * float(jnp.abs(plain_grad).max())
    )
    # init builds parameters only; kernels prepared for another size are refused.
    assert set(net.init(KEY, x[:, :32, :32])) == {"params"}
    with pytest.raises(ValueError, match="winograd_kernels"):
        net.apply(variables, jax.random.uniform(KEY, (1, 96, 96, 3)), outputs=layers)
