"""Feature inversion (Mahendran & Vedaldi): the priors by hand, and tiny reconstructions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.metrics.image_quality import psnr
from gen_jax.synthesis.inversion import (
    PIXEL_NORM,
    PIXEL_VARIATION,
    InversionLoss,
    alpha_norm,
    invert_features,
    tv_prior,
)


class Pixels(nn.Module):
    """The identity 'network': its one layer is the image itself."""

    @nn.compact
    def __call__(self, images, outputs=("pix",)):
        return {name: images for name in outputs}


class TinyNet(nn.Module):
    """Three random convs, the last two strided: a shallow and two deeper layers."""

    @nn.compact
    def __call__(self, images, outputs=("a",)):
        a = nn.relu(nn.Conv(16, (3, 3))(images - 0.5))
        b = nn.relu(nn.Conv(16, (3, 3), strides=2)(a))
        c = nn.relu(nn.Conv(16, (3, 3), strides=2)(b))
        feats = {"a": a, "b": b, "c": c}
        return {name: feats[name] for name in outputs}


NET = TinyNet()
PARAMS = NET.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]


def _photo(size=24):
    """A smooth colourful test image with one edge, in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y)], -1)
    img[size // 3 : 2 * size // 3, size // 4 : size // 2] = (0.9, 0.1, 0.2)
    return img.astype(np.float32)


def test_alpha_norm_by_hand():
    b = PIXEL_NORM
    x = np.array([[0.5, 0.5 + b], [0.5 - b, 0.5]], np.float32).reshape(1, 2, 2, 1)
    # |x - m| / B is 0, 1, 1, 0: any alpha gives (0 + 1 + 1 + 0) / (H W) = 0.5.
    for alpha in (2.0, 6.0):
        np.testing.assert_allclose(alpha_norm(x, [0.5], alpha), [0.5], rtol=1e-5)
    # Halving the deviations divides the alpha = 6 norm by 2^6.
    np.testing.assert_allclose(alpha_norm(0.5 + (x - 0.5) / 2, [0.5], 6.0), [0.5 / 64], rtol=1e-4)


def test_tv_prior_by_hand():
    v = PIXEL_VARIATION
    x = np.array([[0.0, v], [0.0, 0.0]], np.float32).reshape(1, 2, 2, 1)
    # One position with both neighbours: dx = V, dy = 0 -> (V^2)^(2/2) / (H W V^2) = 1/4.
    np.testing.assert_allclose(tv_prior(x, 2.0), [0.25], rtol=1e-5)
    np.testing.assert_allclose(tv_prior(x, 1.0), [0.25], rtol=1e-4)
    assert float(tv_prior(np.full((1, 5, 5, 3), 0.3, np.float32))[0]) == 0.0


def test_inversion_loss_terms_by_hand():
    loss = InversionLoss(Pixels(), "pix", alpha_norm_weight=0.5, alpha=2.0, tv_weight=0.25)
    target = np.full((2, 2, 1), 0.5, np.float32)
    image = np.zeros((2, 2, 1), np.float32)
    t = loss.terms(image, {}, target, jnp.array([0.5]))
    # ||0 - 0.5||^2 / ||0.5||^2 = 1; alpha-norm (0.5 / B)^2 * 4 / 4; flat image: TV 0.
    np.testing.assert_allclose(t["feature"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(t["norm"], (0.5 / PIXEL_NORM) ** 2, rtol=1e-5)
    assert float(t["tv"]) == 0.0
    np.testing.assert_allclose(t["total"], 1.0 + 0.5 * (0.5 / PIXEL_NORM) ** 2, rtol=1e-5)
    assert hash(loss) == hash(InversionLoss(Pixels(), "pix", 0.5, 2.0, 0.25))


def test_identity_network_is_inverted_exactly():
    target = _photo(16)
    r = invert_features(
        Pixels(),
        {},
        target,
        layer="pix",
        alpha_norm_weight=0.0,
        tv_weight=0.0,
        steps=10,
        key=jax.random.PRNGKey(0),
    )
    assert r.image.shape == target.shape and r.losses.shape == (11,)
    assert r.end["feature"] < 1e-8
    np.testing.assert_allclose(r.image, target, atol=1e-4)


def test_shallow_layer_inverts_better_than_deep_layer():
    target = _photo(24)
    results = {}
    for layer in ("a", "c"):
        results[layer] = invert_features(
            NET, PARAMS, target, layer=layer, steps=60, key=jax.random.PRNGKey(1)
        )
    score = {
        k: float(psnr(r.image[None], target[None], data_range=1.0)[0]) for k, r in results.items()
    }
    a = results["a"]
    assert a.end["feature"] * 100 <= a.start["feature"], (a.start, a.end)
    assert score["a"] > score["c"] + 3.0, score
    assert score["a"] > 25.0, score
    assert np.all(np.isfinite(a.losses)) and a.losses[-1] < a.losses[0]


def test_target_features_path_matches_target_image_path():
    target = _photo(16)
    feats = NET.apply({"params": PARAMS}, target[None], outputs=("b",))["b"][0]
    kw = {"layer": "b", "steps": 5, "key": jax.random.PRNGKey(2)}
    from_image = invert_features(NET, PARAMS, target, **kw)
    from_feats = invert_features(NET, PARAMS, target_features=feats, size=(16, 16), **kw)
    np.testing.assert_allclose(from_image.image, from_feats.image, atol=1e-5)
    np.testing.assert_allclose(from_image.losses, from_feats.losses, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of target_image and target_features"),
        (
            {"target_image": np.zeros((8, 8, 3), np.float32), "target_features": np.zeros(3)},
            "exactly one",
        ),
        ({"target_features": np.zeros((8, 8, 16), np.float32)}, "size=\\(H, W\\)"),
        ({"target_image": np.full((8, 8, 3), 2.0, np.float32)}, "values in \\[0, 1\\]"),
        ({"target_image": np.zeros((8, 8), np.float32)}, "shape \\[H, W, C\\]"),
        ({"target_image": np.zeros((8, 8, 3), np.float32), "alpha": 0.5}, "alpha must be >= 1"),
        ({"target_image": np.zeros((8, 8, 3), np.float32), "beta": 0.0}, "beta must be positive"),
        ({"target_image": np.zeros((8, 8, 3), np.float32), "tv_weight": -1.0}, "must be >= 0"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    kwargs = {"key": jax.random.PRNGKey(0), **kwargs}
    with pytest.raises(ValueError, match=match):
        invert_features(NET, PARAMS, layer="a", steps=1, **kwargs)


def test_noise_start_needs_a_key():
    with pytest.raises(ValueError, match="PRNG key"):
        invert_features(NET, PARAMS, _photo(8), layer="a", steps=1)


_PRECISIONS_SEEN = []


class RecordingNet(TinyNet):
    """TinyNet that notes the matmul precision in force each time JAX traces it."""

    def __call__(self, images, outputs=("a",)):
        _PRECISIONS_SEEN.append(jax.config.jax_default_matmul_precision)
        return super().__call__(images, outputs)


@pytest.mark.parametrize("precision", ["highest", "float32"])
def test_target_and_optimisation_are_compiled_at_the_requested_precision(precision):
    _PRECISIONS_SEEN.clear()
    invert_features(
        RecordingNet(), PARAMS, _photo(8), layer="a", steps=1, key=jax.random.PRNGKey(0),
        precision=precision,
    )  # fmt: skip
    assert _PRECISIONS_SEEN and set(_PRECISIONS_SEEN) == {precision}
