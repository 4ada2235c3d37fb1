"""DeepDream: octave sizes, the objective by hand, the normalised step, detail re-injection,
max_loss, jitter, and the classifier adapter."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.classifier import TinyClassifier
from gen_jax.synthesis.deep_dream import (
    ClassifierFeatures,
    DreamObjective,
    crop_border_fraction,
    deep_dream,
    octave_shapes,
)


class Pixels(nn.Module):
    """The identity 'network': its one layer is the image itself."""

    @nn.compact
    def __call__(self, images, outputs=("pix",)):
        return {name: images for name in outputs}


class TinyNet(nn.Module):
    """Two random convs with the feature-net contract."""

    @nn.compact
    def __call__(self, images, outputs=("a",)):
        a = nn.relu(nn.Conv(8, (3, 3))(images - 0.5))
        b = nn.relu(nn.Conv(8, (3, 3), strides=2)(a))
        feats = {"a": a, "b": b}
        return {name: feats[name] for name in outputs}


NET = TinyNet()
PARAMS = NET.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]


def _photo(h=24, w=24):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y)], -1)
    return img.astype(np.float32)


def test_octave_shapes_follow_the_scale():
    # 48 / 1.4^2 = 24.49, 48 / 1.4 = 34.29 (floored).
    assert octave_shapes(48, 48, 3) == [(24, 24), (34, 34), (48, 48)]
    # 100 / (2.744, 1.96, 1.4) = 36.4, 51.0, 71.4; 60 / ... = 21.9, 30.6, 42.9.
    assert octave_shapes(100, 60, 4, 1.4) == [(36, 21), (51, 30), (71, 42), (100, 60)]
    assert octave_shapes(10, 10, 1) == [(10, 10)]
    with pytest.raises(ValueError, match="octave_scale"):
        octave_shapes(10, 10, 2, 1.0)
    with pytest.raises(ValueError, match="fewer octaves"):
        octave_shapes(4, 4, 6, 2.0)


def test_dream_runs_on_the_octave_shapes():
    r = deep_dream(
        Pixels(), {}, _photo(48, 48), layers="pix", steps_per_octave=1, num_octaves=3, jitter=0
    )
    assert r.shapes == [(24, 24), (34, 34), (48, 48)]
    assert [tuple(o.shape) for o in r.octaves] == [(24, 24, 3), (34, 34, 3), (48, 48, 3)]


def test_crop_border_fraction():
    a = jnp.arange(100.0).reshape(1, 10, 10, 1)
    c = crop_border_fraction(a, 0.2)  # int(0.2 * 10) = 2 from each side
    assert c.shape == (1, 6, 6, 1) and float(c[0, 0, 0, 0]) == 22.0
    assert crop_border_fraction(a, 0.0).shape == a.shape
    assert crop_border_fraction(jnp.ones((2, 5)), 0.3).shape == (2, 5)  # logits: untouched
    assert crop_border_fraction(jnp.ones((1, 3, 3, 1)), 0.49).shape == (1, 1, 1, 1)


def test_objective_by_hand():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 1:3, 1:3, 0] = [[1.0, 2.0], [3.0, 4.0]]
    x[0, 0, 0, 0] = 10.0  # on the border: cropped away
    full = DreamObjective(Pixels(), ("pix",), (1.0,), "squared", 0.0)(x, {})
    np.testing.assert_allclose(full["total"], [(1 + 4 + 9 + 16 + 100) / 16], rtol=1e-6)
    cropped = DreamObjective(Pixels(), ("pix",), (1.0,), "squared", 0.25)(x, {})
    np.testing.assert_allclose(cropped["total"], [30 / 4], rtol=1e-6)
    mean = DreamObjective(Pixels(), ("pix", "pix2"), (2.0, -1.0), "mean", 0.25)(x, {})
    np.testing.assert_allclose(mean["pix"], [10 / 4], rtol=1e-6)
    np.testing.assert_allclose(mean["total"], [2.0 * 2.5 - 1.0 * 2.5], rtol=1e-6)


def test_one_step_is_the_normalised_gradient_step():
    # L = mean(x^2): g = 2x / N, so g / mean|g| = x / mean|x| and x1 = x + s x / mean|x|.
    x = _photo(8, 8) * 0.5
    s = 0.01
    r = deep_dream(
        Pixels(), {}, x, layers="pix", steps_per_octave=1, num_octaves=1, step_size=s, jitter=0
    )
    np.testing.assert_allclose(r.image, x + s * x / np.mean(np.abs(x)), rtol=1e-5, atol=1e-6)
    assert r.steps_taken == [1]


def test_jitter_is_undone():
    # The pixel objective is invariant to rolls: jittered and plain dreams coincide.
    x = _photo(12, 12) * 0.5
    kw = {"layers": "pix", "steps_per_octave": 3, "num_octaves": 2, "step_size": 0.01}
    plain = deep_dream(Pixels(), {}, x, jitter=0, **kw)
    rolled = deep_dream(Pixels(), {}, x, jitter=4, key=jax.random.PRNGKey(3), **kw)
    np.testing.assert_allclose(plain.image, rolled.image, rtol=1e-5, atol=1e-6)


def test_zero_step_dream_returns_the_original_exactly():
    x = _photo(40, 30)
    r = deep_dream(NET, PARAMS, x, layers=("a",), steps_per_octave=0, num_octaves=4)
    assert r.steps_taken == [0, 0, 0, 0]
    np.testing.assert_array_equal(np.asarray(r.image), x)


def test_detail_reinjection_formula():
    # After octave 0, x_1 = up(dream_0) + (base_1 - up(base_0)).
    x = _photo(28, 28)
    r = deep_dream(
        NET, PARAMS, x, layers=("a",), steps_per_octave=2, num_octaves=2, jitter=0, step_size=0.02
    )
    (h0, w0), (h1, w1) = r.shapes
    assert (h1, w1) == (28, 28)

    def up(a, shape):
        return jax.image.resize(a, (*shape, 3), "linear", antialias=True)

    base0 = up(jnp.asarray(x), (h0, w0))
    x1 = up(r.octaves[0], (h1, w1)) + (jnp.asarray(x) - up(base0, (h1, w1)))
    start = DreamObjective(NET, ("a",), (1.0,))(x1[None], PARAMS)["total"][0]
    np.testing.assert_allclose(r.start[1]["total"], float(start), rtol=1e-4)


def test_dream_increases_the_objective():
    r = deep_dream(
        NET,
        PARAMS,
        _photo(24, 24),
        layers=("a", "b"),
        steps_per_octave=5,
        num_octaves=2,
        jitter=2,
        crop_border=0.1,
        key=jax.random.PRNGKey(0),
    )
    for start, end in zip(r.start, r.end):
        assert end["total"] > start["total"] * 1.05, (start, end)
    assert np.all(np.isfinite(np.concatenate(r.losses)))
    assert float(r.image.min()) >= 0.0 and float(r.image.max()) <= 1.0


def test_max_loss_stops_early():
    x = _photo(16, 16)
    kw = {"layers": ("a",), "steps_per_octave": 8, "num_octaves": 1, "jitter": 0, "step_size": 0.05}
    free = deep_dream(NET, PARAMS, x, **kw)
    assert free.steps_taken == [8]
    losses = np.asarray(free.losses[0])
    assert np.all(np.diff(losses) > 0)
    bound = float(losses[3] + losses[4]) / 2  # exceeded first at step 4
    capped = deep_dream(NET, PARAMS, x, max_loss=bound, **kw)
    assert capped.steps_taken == [4]
    capped_losses = np.asarray(capped.losses[0])
    np.testing.assert_allclose(capped_losses[:5], losses[:5], rtol=1e-5)
    assert np.all(np.isnan(capped_losses[5:]))
    # Already above the bound at the start: the image is untouched.
    none = deep_dream(NET, PARAMS, x, max_loss=float(losses[0]) / 2, **kw)
    assert none.steps_taken == [0]
    np.testing.assert_array_equal(np.asarray(none.image), x)


def test_classifier_features_and_logit_dream():
    clf = TinyClassifier()
    variables = clf.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    feats = ClassifierFeatures(clf)
    grey = _photo(28, 28)[..., :1]
    out = feats.apply({"params": variables}, grey[None], outputs=("hidden", "logits", "logit3"))
    assert out["hidden"].shape == (1, 16) and out["logits"].shape == (1, 10)
    np.testing.assert_allclose(out["logit3"][:, 0], out["logits"][:, 3], rtol=1e-6)
    logits = clf.apply(variables, 2.0 * grey[None] - 1.0)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no output 'logit12'"):
        feats.apply({"params": variables}, grey[None], outputs=("logit12",))

    canvas = np.asarray(jax.image.resize(grey, (42, 42, 1), "linear"))
    r = deep_dream(
        feats,
        variables,
        canvas,
        layers="logit3",
        objective="mean",
        steps_per_octave=4,
        num_octaves=2,
        jitter=2,
        key=jax.random.PRNGKey(1),
    )
    assert r.image.shape == (42, 42, 1)
    assert r.end[-1]["total"] > r.start[0]["total"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image": np.full((8, 8, 3), 2.0, np.float32)}, "values in \\[0, 1\\]"),
        ({"image": np.zeros((8, 8), np.float32)}, "shape \\[H, W, C\\]"),
        ({"layers": ()}, "at least one layer"),
        ({"layer_weights": (1.0, 2.0)}, "one weight per layer"),
        ({"objective": "max"}, "objective must be one of"),
        ({"crop_border": 0.5}, "crop_border"),
        ({"jitter": 4, "key": None}, "PRNG key"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    kwargs = {"image": _photo(8, 8), "layers": ("a",), "jitter": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        deep_dream(NET, PARAMS, steps_per_octave=1, num_octaves=1, **kwargs)
