"""experiments.score_samples: scores an .npz of samples, writes JSON, never clobbers --out."""

import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

from experiments import score_samples
from gen_jax.models.classifier import ClassifierWeightsError, classifier_fn

FAST = ["--kid_subsets", "3", "--kid_subset_size", "50", "--batch_size", "100"]


def _needs(classifier: str, load_data):
    try:
        load_data()
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(f"the {classifier} data is not installed: {e}")
    try:
        classifier_fn(classifier)
    except ClassifierWeightsError as e:
        pytest.skip(f"the pretrained {classifier} classifier is not shipped: {e}")


def test_existing_out_is_refused_untouched(tmp_path, capsys):
    samples, out = tmp_path / "s.npz", tmp_path / "scores.json"
    np.savez(samples, images=np.zeros((8, 28, 28), np.uint8))
    out.write_text("keep me")
    argv = ["--samples", str(samples), "--dataset", "fashion_mnist", "--out", str(out)]
    with pytest.raises(SystemExit):
        score_samples.main(argv)
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_bad_files_and_keys_are_refused(tmp_path, capsys):
    two = tmp_path / "two.npz"
    np.savez(two, a=np.zeros((8, 28, 28), np.uint8), b=np.zeros((8, 28, 28), np.uint8))
    text = tmp_path / "text.npz"
    text.write_text("not numpy")
    cases = [
        (["--samples", str(tmp_path / "missing.npz")], "no such file"),
        (["--samples", str(text)], "expected an .npz or .npy file"),
        (["--samples", str(two)], r"holds arrays \['a', 'b'\]; choose one with --key"),
        (["--samples", str(two), "--key", "c"], "--key 'c': expected one of"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit):
            score_samples.main([*argv, "--dataset", "mnist"])
        err = capsys.readouterr().err
        assert re.search(message, err), (message, err)


def test_fashion_mnist_samples_are_scored_and_written(tmp_path):
    from gen_jax.data import load_fashion_mnist

    _needs("fashion_mnist", lambda: load_fashion_mnist("test"))
    images, _ = load_fashion_mnist("test")
    samples, out = tmp_path / "s.npz", tmp_path / "out" / "scores.json"
    np.savez(samples, x=images[-40:])  # uint8 [N, 28, 28], the only array
    argv = ["--samples", str(samples), "--dataset", "fashion_mnist", "--num_real", "100"]
    results = score_samples.main([*argv, "--out", str(out), *FAST])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert results["key"] == "x" and results["num_samples"] == 40 and results["num_real"] == 100
    assert results["fmnist_cnn/frechet"] > 0 and 0 <= results["fmnist_cnn/precision"] <= 1
    assert 1 <= results["classifier_score_mean"] <= 10
    # Floats in [-1, 1] of the same images score the same; --overwrite replaces the file.
    np.savez(samples, images=(images[-40:, :, :, None] - 127.5) / 127.5)
    again = score_samples.main([*argv, "--out", str(out), "--overwrite", *FAST])
    assert again["fmnist_cnn/frechet"] == pytest.approx(results["fmnist_cnn/frechet"], rel=1e-4)
    assert json.loads(out.read_text())["key"] == "images"


def test_stacked_mnist_samples_get_mode_counts(tmp_path):
    import jax

    from gen_jax.data.mnist import load_mnist_subset
    from gen_jax.data.stacked_mnist import sample_stacked_mnist

    _needs("mnist", lambda: load_mnist_subset("heldout"))
    digits, labels = load_mnist_subset("train")
    x, _ = sample_stacked_mnist(jax.random.PRNGKey(3), digits, labels, 60)
    samples = tmp_path / "s.npz"
    np.savez(samples, images=np.asarray(x))
    argv = ["--samples", str(samples), "--dataset", "stacked_mnist", "--num_real", "100"]
    results = score_samples.main([*argv, *FAST])
    assert 1 <= results["stacked_mnist/modes"] <= 60
    assert results["stacked_mnist/kl"] > 0 and results["mnist_cnn/frechet"] > 0
    assert 1 <= results["classifier_score_mean"] <= 1000
    with pytest.raises(SystemExit):  # one-channel samples are not stacked MNIST
        np.savez(samples, images=np.asarray(x)[..., 0])
        score_samples.main([*argv, *FAST])


def _bad_crc(path):
    """An .npz whose array bytes no longer match their CRC (zip stores it; numpy reads lazily)."""
    np.savez(path, images=np.arange(8 * 28 * 28, dtype=np.uint8).reshape(8, 28, 28))
    data = bytearray(path.read_bytes())
    start = data.index(b"\x93NUMPY") + 200  # inside the array's bytes, past its header
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


def _pickled(path, sentinel):
    """An .npy of an object array whose pickle would run `touch sentinel` if loaded."""

    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {sentinel}",)

    np.save(path, np.array([Evil()], dtype=object), allow_pickle=True)


def test_damaged_sample_files_name_the_path(tmp_path, capsys):
    # Found by fuzzing and by a new user: a bad CRC (zipfile.BadZipFile raised lazily at
    # npz[key]) gave a raw traceback without the path; so did a damaged deflate stream
    # (zlib.error), a header declaring 2**40 floats (MemoryError) and a zip member that is
    # not an .npy (NpzFile returned its raw bytes).
    crc = tmp_path / "crc.npz"
    _bad_crc(crc)
    deflated = tmp_path / "deflated.npz"
    np.savez_compressed(deflated, images=np.arange(8 * 28 * 28, dtype=np.uint8).reshape(8, 28, 28))
    data = bytearray(deflated.read_bytes())
    data[len(data) // 3] ^= 0xFF
    deflated.write_bytes(bytes(data))
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
        )
    member = tmp_path / "member.npz"
    with zipfile.ZipFile(member, "w") as z:
        z.writestr("images", b"not an npy")
    sentinel = tmp_path / "sentinel"
    pickled = tmp_path / "pickled.npy"
    _pickled(pickled, sentinel)
    for path, what in [
        (crc, "Bad CRC-32"),
        (deflated, "damaged"),
        (huge, "declares more than fits in memory"),
        (member, "is not a NumPy array"),
        (pickled, "allow_pickle"),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"--samples {path}")) as info:
            score_samples.load_samples(str(path))
        assert what in str(info.value), (path, str(info.value))
        with pytest.raises(SystemExit) as exit_info:
            score_samples.main(["--samples", str(path), "--dataset", "mnist"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err
    assert not sentinel.exists()
