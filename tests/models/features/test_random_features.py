"""The random multi-scale network of Ustyuzhaninov et al.: filters, names, shapes, early
stopping, and the direct and FFT convolutions against a NumPy float64 reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.features.random_features import (
    MULTISCALE_SIZES,
    MultiscaleRandomFeatures,
    multiscale_layer_names,
    multiscale_params,
)

KEY = jax.random.PRNGKey(0)
IMAGES = np.random.default_rng(0).uniform(size=(2, 13, 17, 3)).astype(np.float32)


def _np_caffe(images):
    x = np.asarray(images, np.float64)[..., [2, 1, 0]] * 255.0
    return x - [103.939, 116.779, 123.68]


def _np_same_correlation(x, kernel, bias):
    """'same' zero-padded cross-correlation, float64, by summing shifted copies."""
    k = np.asarray(kernel, np.float64)
    p = k.shape[0] // 2
    _, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape[:3] + (k.shape[-1],))
    for di in range(k.shape[0]):
        for dj in range(k.shape[1]):
            out += np.einsum("bhwc,co->bhwo", xp[:, di : di + h, dj : dj + w], k[di, dj])
    return out + np.asarray(bias, np.float64)


def test_paper_configuration():
    assert MULTISCALE_SIZES == (3, 5, 7, 11, 15, 23, 37, 55)
    params = multiscale_params(KEY)
    assert set(params) == {f"conv_{k}" for k in MULTISCALE_SIZES}
    for k in MULTISCALE_SIZES:
        kernel = np.asarray(params[f"conv_{k}"]["kernel"], np.float64)
        assert kernel.shape == (k, k, 3, 128)
        assert not np.any(np.asarray(params[f"conv_{k}"]["bias"]))
        # Lasagne's GlorotUniform: U(-a, a), a = sqrt(6 / ((3 + 128) k^2)); std a / sqrt(3).
        a = math.sqrt(6 / (131 * k * k))
        assert np.abs(kernel).max() <= a
        assert abs(kernel.std() / (a / math.sqrt(3)) - 1) < 5 / math.sqrt(kernel.size)
        assert abs(kernel.mean()) < 5 * a / math.sqrt(3 * kernel.size)
    # One subkey per scale: the filters of a scale do not depend on the other scales.
    alone = multiscale_params(KEY, scales=(11,), features_per_scale=128)
    np.testing.assert_array_equal(alone["conv_11"]["kernel"], params["conv_11"]["kernel"])


def test_names_and_shapes():
    names = multiscale_layer_names((3, 5))
    assert names == ("conv_3", "relu_3", "conv_5", "relu_5", "conv", "relu")
    net = MultiscaleRandomFeatures()
    x = jnp.zeros((2, 40, 24, 3))
    feats, variables = jax.eval_shape(lambda k: net.init_with_output(k, x, outputs=None), KEY)
    assert feats["relu"].shape == feats["conv"].shape == (2, 40, 24, 1024)
    for k in MULTISCALE_SIZES:
        assert feats[f"relu_{k}"].shape == (2, 40, 24, 128)
        assert variables["params"][f"conv_{k}"]["kernel"].shape == (k, k, 3, 128)
    # Parameters from `multiscale_params` have the module's own layout.
    assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(
        jnp.shape, multiscale_params(KEY)
    )


@pytest.mark.parametrize("fft_min_size", [1, 7, 100])  # all FFT, mixed, all direct
def test_matches_numpy_float64(fft_min_size):
    scales = (3, 7, 15)
    params = multiscale_params(KEY, scales, features_per_scale=4)
    net = MultiscaleRandomFeatures(scales=scales, features_per_scale=4, fft_min_size=fft_min_size)
    out = net.apply({"params": params}, IMAGES, outputs=None)
    x = _np_caffe(IMAGES)
    pre = [_np_same_correlation(x, **params[f"conv_{k}"]) for k in scales]
    scale = max(np.abs(p).max() for p in pre)
    for k, ref in zip(scales, pre):
        np.testing.assert_allclose(out[f"conv_{k}"], ref, rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(out[f"relu_{k}"], np.maximum(ref, 0), atol=1e-5 * scale)
    np.testing.assert_allclose(
        out["relu"], np.maximum(np.concatenate(pre, -1), 0), rtol=1e-4, atol=1e-5 * scale
    )


def test_fft_equals_direct_at_the_largest_scales():
    # Filters larger than the image: the FFT must not wrap around.
    scales = (37, 55)
    params = multiscale_params(KEY, scales, features_per_scale=2)
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(1, 24, 20, 3)), jnp.float32)
    fft, direct = (
        MultiscaleRandomFeatures(scales, features_per_scale=2, fft_min_size=m).apply(
            {"params": params}, x, outputs=("conv",)
        )["conv"]
        for m in (15, 1000)
    )
    np.testing.assert_allclose(fft, direct, rtol=1e-4, atol=1e-5 * float(jnp.abs(direct).max()))


def test_only_the_requested_scales_are_computed():
    params = multiscale_params(KEY, features_per_scale=2)
    net = MultiscaleRandomFeatures(features_per_scale=2)
    jaxpr = jax.make_jaxpr(lambda p, x: net.apply({"params": p}, x, outputs=("relu_3",)))(
        params, jnp.zeros((1, 16, 16, 3))
    )

    def primitives(jaxpr):
        # Into custom_vjp calls too: gen_jax.nn.xla_cpu wraps the direct convolutions.
        for e in jaxpr.eqns:
            yield e.primitive.name
            inner = e.params.get("call_jaxpr")
            if inner is not None:
                yield from primitives(getattr(inner, "jaxpr", inner))

    prims = list(primitives(jaxpr.jaxpr))
    assert prims.count("conv_general_dilated") == 1 and "fft" not in prims
    # The other scales' parameters are never looked up.
    out = net.apply({"params": {"conv_3": params["conv_3"]}}, IMAGES, outputs="relu_3")
    assert list(out) == ["relu_3"] and out["relu_3"].shape == (2, 13, 17, 2)


def test_bad_inputs_raise():
    net = MultiscaleRandomFeatures(scales=(3,), features_per_scale=2)
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['relu_5'\].*relu_3"):
        jax.eval_shape(lambda k: net.init(k, x, outputs=("relu_5",)), KEY)
    with pytest.raises(ValueError, match="positive odd filter sizes"):
        multiscale_params(KEY, scales=(3, 4))
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]"):
        jax.eval_shape(lambda k: net.init(k, jnp.zeros((8, 8, 3))), KEY)
