"""The CNN classifier: shapes, features, weight files and their errors, and the committed
weights reproducing their recorded accuracy on the real test splits."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import load_fashion_mnist, to_signed_unit
from gen_jax.data.mnist import load_mnist_subset
from gen_jax.models.classifier import (
    PRETRAINED_CLASSIFIERS,
    Classifier,
    ClassifierWeightsError,
    TinyClassifier,
    classifier_fn,
    load_classifier_weights,
    load_pretrained_classifier,
    save_classifier_weights,
)

X = jnp.linspace(-1.0, 1.0, 3 * 28 * 28).reshape(3, 28, 28, 1)


@pytest.fixture(scope="module")
def tiny():
    module = TinyClassifier()
    return module, module.init(jax.random.PRNGKey(0), X, train=False)


def test_logits_and_features_shapes(tiny):
    module, variables = tiny
    logits = module.apply(variables, X)
    logits2, features = module.apply(variables, X, return_features=True)
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32
    assert features.shape == (3, 16)
    np.testing.assert_array_equal(logits, logits2)
    assert np.all(np.asarray(features) >= 0)  # Post-ReLU.
    assert set(variables) == {"params", "batch_stats"}


def test_default_network_has_128_features():
    module = Classifier()
    out = jax.eval_shape(
        lambda: module.init_with_output(
            jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)), return_features=True
        )
    )
    (logits, features), _ = out
    assert logits.shape == (2, 10) and features.shape == (2, 128)


def test_train_mode_updates_batch_stats_and_uses_dropout(tiny):
    module, variables = tiny
    run = lambda key: module.apply(
        variables, X, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )
    (a, stats), (b, _) = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2))
    assert not np.allclose(a, b), "dropout should make train-mode logits key-dependent"
    old = jax.tree.leaves(variables["batch_stats"])
    new = jax.tree.leaves(stats["batch_stats"])
    assert any(not np.allclose(o, n) for o, n in zip(old, new))


def test_rejects_images_without_a_channel_axis(tiny):
    module, variables = tiny
    with pytest.raises(ValueError, match=r"\[B, H, W, 1\]"):
        module.apply(variables, X[..., 0])


def test_save_load_round_trip(tiny, tmp_path):
    module, variables = tiny
    doc = save_classifier_weights(tmp_path / "w.npz", module, variables, {"accuracy": 0.5})
    loaded_module, loaded, meta = load_classifier_weights(tmp_path / "w.npz")
    assert meta == doc and meta["accuracy"] == 0.5
    assert loaded_module == module
    np.testing.assert_array_equal(loaded_module.apply(loaded, X), module.apply(variables, X))
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        assert "params/conv1/kernel" in npz.files and "batch_stats/bn1/mean" in npz.files


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="cifar10"):
        load_pretrained_classifier("cifar10")
    with pytest.raises(ValueError, match="fashion_mnist"):
        classifier_fn("cifar10")


def test_missing_weights_are_reported(tmp_path):
    with pytest.raises(ClassifierWeightsError, match="mnist.npz: classifier weight file not found"):
        load_pretrained_classifier("mnist", weights_dir=tmp_path)


def _write(tiny, tmp_path):
    module, variables = tiny
    save_classifier_weights(tmp_path / "mnist.npz", module, variables)
    return tmp_path / "mnist.npz", tmp_path / "mnist.json"


def test_corrupt_weight_file_fails_its_checksum(tiny, tmp_path):
    npz, _ = _write(tiny, tmp_path)
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ClassifierWeightsError, match="SHA-256"):
        load_pretrained_classifier("mnist", weights_dir=tmp_path)


def test_corrupt_json_is_reported(tiny, tmp_path):
    _, meta = _write(tiny, tmp_path)
    meta.write_text("{not json")
    with pytest.raises(ClassifierWeightsError, match="mnist.json"):
        load_pretrained_classifier("mnist", weights_dir=tmp_path)


def test_not_an_npz_is_reported(tiny, tmp_path):
    npz, meta = _write(tiny, tmp_path)
    npz.write_bytes(b"not a zip archive")
    doc = json.loads(meta.read_text())
    import hashlib

    doc["weights"]["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    meta.write_text(json.dumps(doc))
    with pytest.raises(ClassifierWeightsError, match="expected an .npz archive"):
        load_pretrained_classifier("mnist", weights_dir=tmp_path)


def test_weights_of_another_shape_are_refused(tiny, tmp_path):
    _, meta = _write(tiny, tmp_path)
    doc = json.loads(meta.read_text())
    doc["module"]["hidden"] = 32  # The JSON now describes a wider network than the .npz.
    meta.write_text(json.dumps(doc))
    with pytest.raises(ClassifierWeightsError, match=r"params/hidden/(bias|kernel) expected shape"):
        load_pretrained_classifier("mnist", weights_dir=tmp_path)


# --- The committed weights. ------------------------------------------------------------------


def _metadata(name):
    from gen_jax.models.classifier import _assets_dir

    return json.loads((_assets_dir() / f"{name}.json").read_text())


@pytest.mark.parametrize("name", PRETRAINED_CLASSIFIERS)
def test_committed_weights_load_and_describe_themselves(name):
    module, _ = load_pretrained_classifier(name)
    meta = _metadata(name)
    assert meta["dataset"] == name
    assert meta["command"].startswith("python -m experiments.train_classifier")
    assert f"--dataset {name}" in meta["command"]
    out = classifier_fn(name)(X)
    assert out["logits"].shape == (3, 10) and out["features"].shape == (3, module.hidden)
    assert module.hidden == 128


def test_classifier_fn_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\[B, 28, 28, 1\]"):
        classifier_fn("mnist")(jnp.zeros((2, 32, 32, 1)))


def _accuracy(name, images, labels):
    classify = classifier_fn(name)
    correct = 0
    for start in range(0, len(images), 1000):
        x = to_signed_unit(images[start : start + 1000])
        correct += int(np.sum(np.argmax(classify(x)["logits"], -1) == labels[start : start + 1000]))
    return correct / len(images)


def test_committed_fashion_mnist_classifier_reaches_91_percent_on_the_test_set():
    try:
        images, labels = load_fashion_mnist("test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST test files are not installed (dataset-fashion-mnist): {e}")
    accuracy = _accuracy("fashion_mnist", images, labels)
    meta = _metadata("fashion_mnist")
    assert meta["split"] == "test" and meta["num_test"] == len(images) == 10_000
    assert accuracy >= 0.91
    assert accuracy == pytest.approx(meta["accuracy"], abs=2e-3)


def test_committed_mnist_classifier_reaches_97_percent_on_the_held_out_digits():
    images, labels = load_mnist_subset("heldout")
    accuracy = _accuracy("mnist", images, labels)
    meta = _metadata("mnist")
    assert meta["split"] == "heldout" and meta["num_test"] == len(images) == 1_000
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(meta["accuracy"], abs=2e-3)
