"""score_images: input checks, the metrics it assembles, stacked-MNIST modes, and the
calibration orderings on a small real subset (skipped without the data or the weights)."""

import itertools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.metrics.evaluate import _joint_logits, score_images, to_model_range
from gen_jax.metrics.features import FEATURE_METRIC_KEYS
from gen_jax.models.classifier import TinyClassifier

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

RNG = np.random.default_rng(0)


def _tiny_classify():
    """A randomly initialised TinyClassifier as a classifier_fn-style function."""
    module = TinyClassifier()
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))

    def classify(x):
        logits, features = module.apply(variables, x, return_features=True)
        return {"logits": logits, "features": features}

    return classify


TINY = _tiny_classify()


def _images(n, channels=1):
    return RNG.integers(0, 256, size=(n, 28, 28, channels), dtype=np.uint8)


# ---------------------------------------------------------------- to_model_range


def test_to_model_range_maps_uint8_and_appends_a_channel():
    x = np.array([[0, 255], [127, 128]], np.uint8).repeat(14, 0).repeat(14, 1)[None]
    out = to_model_range(x)
    assert out.shape == (1, 28, 28, 1) and out.dtype == np.float32
    assert out.min() == -1.0 and out.max() == 1.0
    np.testing.assert_allclose(out[0, 14, 0, 0], (127 - 127.5) / 127.5)
    floats = np.linspace(-1, 1, 28 * 28 * 3, dtype=np.float32).reshape(1, 28, 28, 3)
    np.testing.assert_array_equal(to_model_range(floats), floats)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 28, 28, 2), np.uint8), r"\[N, 28, 28, 3\].*found shape \[2, 28, 28, 2\]"),
        (np.zeros((2, 32, 32), np.uint8), "found shape"),
        (np.zeros((0, 28, 28), np.uint8), "N >= 1"),
        (np.zeros((2, 28, 28), np.int32), "dtype int32"),
        (np.full((2, 28, 28), 200.0), "pass them as uint8"),
        (np.full((2, 28, 28), 0.5), "2 \\* x - 1"),
        (np.full((2, 28, 28), np.nan), "finite"),
    ],
)
def test_to_model_range_refuses(bad, match):
    with pytest.raises(ValueError, match=match):
        to_model_range(bad)


def test_nonnegative_floats_can_be_allowed_and_tiny_overshoot_is_clipped():
    white = np.ones((2, 28, 28), np.float32)
    np.testing.assert_array_equal(to_model_range(white, allow_nonnegative=True), white[..., None])
    out = to_model_range(np.full((1, 28, 28), -1.0005, np.float32))
    assert out.min() == -1.0


# ---------------------------------------------------------------- score_images


def test_score_images_keys_and_identical_sets():
    real = _images(40)
    out = score_images(
        real, reference=real, classifier=TINY, key=jax.random.key(0), kid_subsets=3, prefix="t"
    )
    assert [f"t/{k}" for k in FEATURE_METRIC_KEYS] == list(out)[: len(FEATURE_METRIC_KEYS)]
    assert out["t/frechet"] == pytest.approx(0.0, abs=1e-3)
    assert out["t/precision"] == out["t/recall"] == out["t/coverage"] == 1.0
    assert out["classifier_score_mean"] == pytest.approx(out["real_classifier_score_mean"])
    assert 1.0 <= out["classifier_score_mean"] <= 10.0
    assert out["num_samples"] == out["num_real"] == 40
    assert not any(k.startswith("stacked_mnist") for k in out)
    assert all(type(v) in (float, int) for v in out.values())


def test_uint8_and_float_inputs_score_the_same_and_num_real_subsets():
    real, fake = _images(60), _images(30)
    kwargs = {"classifier": TINY, "key": jax.random.key(1), "kid_subsets": 4, "num_real": 50}
    a = score_images(fake, reference=real, **kwargs)
    b = score_images(to_model_range(fake)[..., 0], reference=to_model_range(real), **kwargs)
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    assert a["num_real"] == 50 and a["classifier/frechet"] > 0


def test_score_images_refuses_bad_arguments():
    real, key = _images(10), jax.random.key(0)
    with pytest.raises(ValueError, match="classifier: expected a classifier name or function"):
        score_images(real, reference=real, key=key)
    with pytest.raises(ValueError, match="reference: expected one of"):
        score_images(real, reference="cifar10", key=key)
    with pytest.raises(ValueError, match="classifier: expected one of"):
        score_images(real, reference=real, classifier="imagenet", key=key)
    with pytest.raises(TypeError, match="classifier"):
        score_images(real, reference=real, classifier=3, key=key)
    with pytest.raises(ValueError, match="stacked_mnist"):
        score_images(_images(10, 3), reference="mnist", classifier=TINY, key=key)
    with pytest.raises(ValueError, match="reference: expected 1-channel"):
        score_images(real, reference=_images(10, 3), classifier=TINY, key=key)
    with pytest.raises(ValueError, match="images: expected at least 6"):
        score_images(real[:5], reference=real, classifier=TINY, key=key)
    with pytest.raises(ValueError, match="num_real: expected at most the 10"):
        score_images(real, reference=real, classifier=TINY, key=key, num_real=11)
    with pytest.raises(ValueError, match="count_modes"):
        score_images(real, reference=real, classifier=TINY, key=key, count_modes=True)


def test_joint_logits_are_the_product_distribution():
    logits = RNG.standard_normal((4, 3, 5)).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    joint = np.exp(np.asarray(_joint_logits(logits)))
    expected = np.einsum("na,nb,nc->nabc", p[:, 0], p[:, 1], p[:, 2]).reshape(4, 125)
    np.testing.assert_allclose(joint, expected, rtol=1e-5)


def _level_classify(x):
    """A 'digit classifier' that reads digit d from an image of constant level d / 10."""
    level = jnp.mean(x, axis=(1, 2, 3))  # [B]
    centres = jnp.arange(10) / 10.0
    logits = -1e4 * (level[:, None] - centres) ** 2
    return {"logits": logits, "features": jnp.stack([level, level**2], -1)}


def _stacked_levels(triples):
    """[N, 28, 28, 3] images whose channels are constant at digit / 10."""
    x = np.asarray(triples, np.float32)[:, None, None, :] / 10.0
    x = np.broadcast_to(x, (len(triples), 28, 28, 3)).copy()
    x[:, 0, 0, :] = -1.0  # The same corner pixel in every channel: a negative value.
    return x


def test_stacked_samples_count_modes_and_score_the_joint_classes():
    every = list(itertools.product(range(10), repeat=3))  # all 1,000 modes once
    two_modes = [(3, 1, 4), (2, 7, 1)] * 500  # interleaved: every part holds both
    real = _stacked_levels(every)
    key = jax.random.key(0)
    kwargs = {"classifier": _level_classify, "key": key, "kid_subsets": 2, "count_modes": True}
    full = score_images(real, reference=real, **kwargs)
    assert full["stacked_mnist/modes"] == full["stacked_mnist/real_modes"] == 1000
    assert full["stacked_mnist/kl"] == pytest.approx(0.0, abs=1e-9)
    assert full["stacked_mnist/sampling_floor"] == pytest.approx(999 / 2000)
    # Every sample confidently one of 1,000 equally used classes: a score of 1,000 (a
    # single part, since a part of 100 samples cannot use 1,000 classes).
    single = score_images(real, reference=real, classifier_score_splits=1, **kwargs)
    assert single["classifier_score_mean"] == pytest.approx(1000.0, rel=1e-3)
    two = score_images(_stacked_levels(two_modes), reference=real, **kwargs)
    assert two["stacked_mnist/modes"] == 2
    assert two["stacked_mnist/kl"] == pytest.approx(np.log(500.0), rel=1e-6)
    assert two["classifier_score_mean"] == pytest.approx(2.0, rel=1e-3)


# ---------------------------------------------------------------- calibration


def _calibration_or_skip():
    from gen_jax.data import load_fashion_mnist
    from gen_jax.models.classifier import ClassifierWeightsError, classifier_fn

    try:
        load_fashion_mnist("test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed (dataset-fashion-mnist): {e}")
    try:
        classifier_fn("fashion_mnist")
    except ClassifierWeightsError as e:
        pytest.skip(f"the pretrained Fashion-MNIST classifier is not shipped yet: {e}")
    from experiments import calibrate_metrics

    return calibrate_metrics


def test_calibration_orderings_hold_on_a_small_subset():
    calibrate_metrics = _calibration_or_skip()
    rows = calibrate_metrics.fashion_mnist_rows(num_real=500, num_fake=500, kid_subsets=10, seed=0)
    violations = calibrate_metrics.check_orderings(rows)
    assert violations == [], "\n".join(violations)
    names = [r["name"] for r in rows]
    assert names[0] == "floor" and len(set(names)) == len(names)
