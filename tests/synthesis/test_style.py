"""Style transfer, texture synthesis and colour preservation with a tiny random conv net."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.synthesis import color
from gen_jax.synthesis.style import (
    PerceptualLoss,
    content_targets,
    style_grams,
    style_transfer,
    texture_synthesis,
)


class TinyNet(nn.Module):
    """Two random convs with the feature-net contract: apply(..., outputs=names) -> dict."""

    @nn.compact
    def __call__(self, images, outputs=("a", "b")):
        a = nn.relu(nn.Conv(6, (3, 3))(images - 0.5))
        b = nn.relu(nn.Conv(8, (3, 3), strides=2)(a))
        feats = {"a": a, "b": b}
        return {name: feats[name] for name in outputs}


NET = TinyNet()
PARAMS = NET.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]


def _stripes(h, w, period=4):
    """A colourful vertical-stripe texture in [0, 1]."""
    x = np.arange(w)[None, :, None]
    phase = np.array([0.0, 2.0, 4.0])[None, None, :]
    img = 0.5 + 0.4 * np.sin(2 * np.pi * x / period + phase)
    return np.broadcast_to(img, (h, w, 3)).astype(np.float32)


def _smooth(h, w):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], -1).astype(np.float32)


def test_texture_synthesis_matches_the_grams():
    source = _stripes(16, 16)
    r = texture_synthesis(
        NET,
        PARAMS,
        source,
        layers=("a", "b"),
        size=12,
        steps=40,
        key=jax.random.PRNGKey(1),
        parametrization="sigmoid",
    )
    assert r.image.shape == (12, 12, 3)
    assert r.losses.shape == (41,) and r.evaluations.shape == (40,)
    assert 0.0 <= float(r.image.min()) and float(r.image.max()) <= 1.0
    assert r.end["style"] < 1e-2 * r.start["style"]
    assert r.start["content"] == 0.0 and r.start["tv"] == 0.0


def test_style_transfer_from_content_keeps_content_and_takes_style():
    content, style = _smooth(16, 16), _stripes(24, 20)  # the style has another size
    r = style_transfer(
        NET,
        PARAMS,
        content,
        style,
        content_layers=("b",),
        style_layers=("a", "b"),
        style_layer_weights=(0.5, 0.5),
        alpha=1.0,
        beta=1e6,
        tv_weight=1e-3,
        steps=30,
        parametrization="sigmoid",
    )
    assert r.image.shape == content.shape
    assert r.start["content"] == 0.0  # starts at the content image
    assert r.end["style"] < 0.1 * r.start["style"]
    assert r.end["total"] < r.start["total"]
    assert set(r.start) == {"total", "content", "style", "tv"}


def test_style_transfer_noise_start_needs_a_key():
    with pytest.raises(ValueError, match="key"):
        style_transfer(NET, PARAMS, _smooth(8, 8), _stripes(8, 8), init="noise", steps=1)
    r = style_transfer(
        NET,
        PARAMS,
        _smooth(8, 8),
        _stripes(8, 8),
        content_layers=("b",),
        style_layers=("a",),
        init="noise",
        key=jax.random.PRNGKey(0),
        optimizer="adam",
        steps=5,
    )
    assert r.start["content"] > 0.0
    assert np.all(np.isfinite(np.asarray(r.losses)))


def test_luminance_only_transfer_keeps_the_content_colours():
    content = _smooth(16, 16)
    r = style_transfer(
        NET,
        PARAMS,
        content,
        _stripes(16, 16),
        content_layers=("b",),
        style_layers=("a", "b"),
        beta=1e4,
        steps=10,
        preserve_color=True,
    )
    got, want = color.rgb_to_yiq(r.image), color.rgb_to_yiq(content)
    inside = np.all((np.asarray(r.image) > 0.01) & (np.asarray(r.image) < 0.99), -1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(
        np.asarray(got)[inside][:, 1:], np.asarray(want)[inside][:, 1:], atol=2e-3
    )


def test_histogram_mode_runs_and_bad_modes_are_refused():
    r = style_transfer(
        NET,
        PARAMS,
        _smooth(8, 8),
        _stripes(8, 8),
        content_layers=("b",),
        style_layers=("a",),
        steps=3,
        preserve_color="histogram",
    )
    assert r.image.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="preserve_color"):
        style_transfer(NET, PARAMS, _smooth(8, 8), _stripes(8, 8), preserve_color="hsv")


@pytest.mark.parametrize(
    "content, kwargs, match",
    [
        (np.zeros((8, 8)), {}, "content"),
        (np.full((8, 8, 3), 2.0), {}, r"\[0, 1\]"),
        (np.zeros((8, 8, 3), np.uint8), {}, "float"),
        (np.zeros((8, 8, 3)), {"style_layer_weights": (1.0,)}, "style_layer_weights"),
        (np.zeros((8, 8, 3)), {"init": "photo"}, "init"),
    ],
)
def test_style_transfer_refuses_bad_input(content, kwargs, match):
    with pytest.raises(ValueError, match=match):
        style_transfer(NET, PARAMS, content, _stripes(8, 8), style_layers=("a", "b"), **kwargs)


def test_unknown_layer_is_named():
    with pytest.raises((ValueError, KeyError), match="zz"):
        texture_synthesis(
            NET, PARAMS, _stripes(8, 8), layers=("zz",), steps=1, key=jax.random.PRNGKey(0)
        )


def test_targets_and_loss_terms_by_hand():
    content = _smooth(8, 8)
    p = content_targets(NET, PARAMS, content, ("a", "b"))
    assert p["a"].shape == (8, 8, 6) and p["b"].shape == (4, 4, 8)
    g = style_grams(NET, PARAMS, content, ("b",))
    f = np.asarray(p["b"]).reshape(16, 8)
    np.testing.assert_allclose(g["b"], f.T @ f / 16, rtol=1e-5)  # per-position Gram
    loss = PerceptualLoss(NET, ("a",), ("b",), (1.0,), alpha=2.0, beta=3.0, tv_weight=0.5)
    terms = loss.terms(content, PARAMS, p, g)
    assert float(terms["content"]) == 0.0 and float(terms["style"]) == pytest.approx(0.0, abs=1e-8)
    tv = float(terms["tv"])
    assert tv > 0.0 and float(terms["total"]) == pytest.approx(0.5 * tv, rel=1e-5)
    # Equal settings hash equal: the compiled optimisation is reused.
    assert hash(loss) == hash(PerceptualLoss(NET, ("a",), ("b",), (1.0,), 2.0, 3.0, 0.5))


def test_color_space_round_trip_and_luminance():
    x = jax.random.uniform(jax.random.PRNGKey(3), (5, 4, 3))
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-5)
    np.testing.assert_allclose(color.luminance(jnp.array([1.0, 0.0, 0.0])), 0.299, rtol=1e-6)
    np.testing.assert_allclose(color.luminance(jnp.ones(3)), 1.0, rtol=1e-5)
    grey = jnp.full((2, 2, 3), 0.4)
    np.testing.assert_allclose(color.rgb_to_yiq(grey)[..., 1:], 0.0, atol=1e-6)


def test_match_luminance_moments():
    style, content = _stripes(8, 8), _smooth(6, 10)
    got = color.match_luminance(style, content)
    lc = color.luminance(content)
    assert got.shape == (8, 8)
    np.testing.assert_allclose([got.mean(), got.std()], [lc.mean(), lc.std()], rtol=1e-3)


@pytest.mark.parametrize("mode", ["cholesky", "eigen"])
def test_match_color_moments(mode):
    # Small spread around 0.5 (nothing is clipped); a full-rank colour covariance.
    style = 0.5 + 0.05 * np.asarray(jax.random.normal(jax.random.PRNGKey(4), (12, 12, 3)))
    content = 0.5 + 0.3 * (_smooth(10, 10) - 0.5)
    out = np.asarray(color.match_color(style, content, mode)).reshape(-1, 3)
    ref = content.reshape(-1, 3)
    np.testing.assert_allclose(out.mean(0), ref.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.cov(ref.T, bias=True), atol=2e-4)
    with pytest.raises(ValueError, match="mode"):
        color.match_color(style, content, "lab")


def test_prepare_precomputes_vgg_winograd_kernels_and_keeps_the_loss():
    """`PerceptualLoss.prepare`: VGG params become variables with the Winograd kernels;
    the loss and its gradient are unchanged; other networks get their parameters as variables."""
    from gen_jax.models.features import VGG, as_variables, random_vgg_params

    net = VGG(depth=19, conv_algorithm="auto")
    params = random_vgg_params(jax.random.PRNGKey(1), depth=19)
    image = jax.random.uniform(jax.random.PRNGKey(2), (64, 64, 3))
    loss = PerceptualLoss(net, ("relu2_2",), ("relu2_1", "relu3_1"), (0.5, 0.5), beta=10.0)
    p = content_targets(net, params, image * 0.5, loss.content_layers)
    g = style_grams(net, params, image[::-1], loss.style_layers)
    prepared, p2, g2 = jax.jit(loss.prepare)(image, params, p, g)
    assert p2 is not None and g2 is not None
    (collection,) = set(prepared) - {"params"}  # VGG's own, never named by synthesis
    assert "conv3_2" not in prepared[collection]  # past relu3_1: not run
    # >= 64 channels, >= 16 px: all but the 3-channel conv1_1.
    assert set(prepared[collection]) == {"conv1_2", "conv2_1", "conv2_2", "conv3_1"}
    value_grad = jax.jit(jax.value_and_grad(loss))
    v0, d0 = value_grad(image, params, p, g)
    v1, d1 = value_grad(image, prepared, p, g)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-6 * float(jnp.abs(d0).max()))
    tiny = PerceptualLoss(NET, ("a",), ("b",), (1.0,))
    # A network without a prepare method: its parameters, as variables.
    assert as_variables(tiny.prepare(_smooth(8, 8), PARAMS, {}, {})[0]) == {"params": PARAMS}


_PRECISIONS_SEEN = []


class RecordingNet(TinyNet):
    """TinyNet that notes the matmul precision in force each time JAX traces it."""

    def __call__(self, images, outputs=("a", "b")):
        _PRECISIONS_SEEN.append(jax.config.jax_default_matmul_precision)
        return super().__call__(images, outputs)


def test_targets_and_optimisation_are_compiled_at_the_requested_precision():
    net, img = RecordingNet(), _stripes(8, 8)
    _PRECISIONS_SEEN.clear()
    content_targets(net, PARAMS, img, ("a",))
    style_grams(net, PARAMS, img, ("b",))
    style_transfer(net, PARAMS, img, img, content_layers=("a",), style_layers=("b",), steps=1)
    texture_synthesis(net, PARAMS, img, layers=("b",), steps=1, key=jax.random.PRNGKey(0))
    assert _PRECISIONS_SEEN and set(_PRECISIONS_SEEN) == {"highest"}
    _PRECISIONS_SEEN.clear()
    with jax.default_matmul_precision("tensorfloat32"):  # None keeps the caller's setting
        style_transfer(
            net, PARAMS, img, img, content_layers=("a",), style_layers=("b",), steps=1,
            precision=None,
        )  # fmt: skip
    assert _PRECISIONS_SEEN and set(_PRECISIONS_SEEN) == {"tensorfloat32"}
    with pytest.raises(ValueError, match="precision"):
        content_targets(net, PARAMS, img, ("a",), precision="float31")
