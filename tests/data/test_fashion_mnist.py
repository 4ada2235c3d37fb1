"""Tests for the Fashion-MNIST loader.

Search order, validation and the download path run on tiny synthetic files (the example
counts are patched down to 3 and 2); nothing here touches the network. Tests on the real
data skip when the Debian package dataset-fashion-mnist is not installed.
"""

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from gen_jax.data import (
    FASHION_MNIST_CLASSES,
    IDXFormatError,
    load_fashion_mnist,
    write_idx,
)
from gen_jax.data import fashion_mnist as fm
from gen_jax.data.idx import read_idx_payload

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
TINY_COUNTS = {"train": 3, "test": 2}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

requires_real_data = pytest.mark.skipif(
    not all((REAL_DIR / f"{n}.gz").is_file() for pair in FILES.values() for n in pair),
    reason=f"Fashion-MNIST not installed at {REAL_DIR} (apt install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def isolated_search_path(tmp_path, monkeypatch):
    """No test sees the real env var, system directory or ~/.cache, or the network."""
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(url, dest):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(fm, "_fetch", no_network)


@pytest.fixture
def tiny_counts(monkeypatch):
    monkeypatch.setattr(fm, "_NUM_EXAMPLES", TINY_COUNTS)


def _write_split(
    directory,
    split,
    label=0,
    gz=True,
    n=None,
    image_shape=(28, 28),
    label_dtype=np.uint8,
    num_labels=None,
):
    """Writes a tiny split whose labels are all `label` (so tests can tell dirs apart)."""
    directory.mkdir(parents=True, exist_ok=True)
    n = TINY_COUNTS[split] if n is None else n
    num_labels = n if num_labels is None else num_labels
    suffix = ".gz" if gz else ""
    images_name, labels_name = FILES[split]
    images = np.arange(n * np.prod(image_shape), dtype=np.uint8).reshape(n, *image_shape)
    labels = np.full(num_labels, label, dtype=label_dtype)
    write_idx(directory / f"{images_name}{suffix}", images)
    write_idx(directory / f"{labels_name}{suffix}", labels)
    return directory / f"{images_name}{suffix}", directory / f"{labels_name}{suffix}"


def _payload_sha256(path):
    payload = read_idx_payload(path)
    return hashlib.sha256(payload).hexdigest(), len(payload)


def test_classes():
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_unknown_split():
    with pytest.raises(ValueError, match=r"expected one of \['test', 'train'\], found 'val'"):
        load_fashion_mnist("val")


@pytest.mark.usefixtures("tiny_counts")
@pytest.mark.parametrize("gz", [True, False])
def test_loads_from_data_dir(tmp_path, gz):
    _write_split(tmp_path / "d", "test", label=7, gz=gz)
    images, labels = load_fashion_mnist("test", data_dir=tmp_path / "d")
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (2,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [7, 7])


def test_data_dir_without_files_is_not_searched_past(tmp_path, monkeypatch):
    # The files exist in the env dir, but an explicit data_dir takes precedence alone.
    _write_split(tmp_path / "env", "test")
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "empty"))) as info:
        load_fashion_mnist("test", data_dir=tmp_path / "empty")
    assert str(tmp_path / "env") not in str(info.value)
    assert "t10k-images-idx3-ubyte" in str(info.value)


def test_not_found_lists_every_place_looked(tmp_path):
    # Only the labels in the cache: a half-present split does not count as found.
    _, labels_path = _write_split(tmp_path / "home/.cache/gen_jax/fashion-mnist", "test")
    labels_path.with_name("t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test")
    message = str(info.value)
    for where in ["system", "home/.cache/gen_jax/fashion-mnist"]:
        assert str(tmp_path / where) in message
    assert "missing t10k-images-idx3-ubyte)" in message
    # Both ways of asking for a download: from Python and on an experiment's command line.
    assert "download=True (--download true on an experiment's command line)" in message


@pytest.mark.usefixtures("tiny_counts")
def test_env_dir_that_is_missing_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    _write_split(tmp_path / "system", "test", label=2)  # a good copy it must not fall back to
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test")
    message = str(info.value)
    assert f"{tmp_path / 'typo'} (no such directory)" in message
    assert str(tmp_path / "system") not in message
    assert f"{fm.ENV_VAR} is the only place looked" in message
    assert "--download true" in message


@pytest.mark.usefixtures("tiny_counts")
def test_env_dir_lacking_a_file_does_not_mix_sources(tmp_path, monkeypatch):
    # The env dir holds the test split and half of the train split; Debian's copy holds both.
    # Train must not come from Debian while test comes from the env dir.
    env = tmp_path / "env"
    _write_split(env, "test", label=1)
    images_path, _ = _write_split(env, "train", label=1)
    images_path.unlink()
    _write_split(tmp_path / "system", "train", label=2)
    monkeypatch.setenv(fm.ENV_VAR, str(env))
    assert load_fashion_mnist("test")[1][0] == 1
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("train")
    assert f"{env} (missing train-images-idx3-ubyte)" in str(info.value)
    assert str(tmp_path / "system") not in str(info.value)


def test_env_dir_is_the_download_target(tmp_path, tiny_remote, monkeypatch):
    env = tmp_path / "env"
    monkeypatch.setenv(fm.ENV_VAR, str(env))
    _, labels = load_fashion_mnist("test", download=True)
    np.testing.assert_array_equal(labels, [5, 5])
    assert sorted(p.name for p in env.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert not (tmp_path / "home/.cache/gen_jax/fashion-mnist").exists()


def test_missing_data_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test", data_dir=tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'} (no such directory)" in str(info.value)
    assert "data_dir (--data_dir) is the only place looked" in str(info.value)


@pytest.mark.parametrize("download", [False, True])
def test_data_dir_that_is_a_file_is_refused(tmp_path, download):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=re.escape(str(path))):
        load_fashion_mnist("test", data_dir=path, download=download)
    assert path.read_text() == "not a folder"


@pytest.mark.usefixtures("tiny_counts")
def test_search_order(tmp_path, monkeypatch):
    env, system = tmp_path / "env", tmp_path / "system"
    cache = tmp_path / "home/.cache/gen_jax/fashion-mnist"
    _write_split(cache, "test", label=3)
    assert load_fashion_mnist("test")[1][0] == 3
    _write_split(system, "test", label=2, gz=False)
    assert load_fashion_mnist("test")[1][0] == 2
    _write_split(env, "test", label=1)
    monkeypatch.setenv(fm.ENV_VAR, str(env))
    assert load_fashion_mnist("test")[1][0] == 1
    _write_split(tmp_path / "explicit", "test", label=4)  # data_dir wins over the env var
    assert load_fashion_mnist("test", data_dir=tmp_path / "explicit")[1][0] == 4


@pytest.mark.usefixtures("tiny_counts")
@pytest.mark.parametrize(
    "kwargs, bad_file, message",
    [
        (
            {"image_shape": (27, 28)},
            "images",
            r"expected uint8 images of shape \[N, 28, 28\], found uint8 \[2, 27, 28\]",
        ),
        ({"label_dtype": np.int32}, "labels", r"expected uint8 labels .* found int32 \[2\]"),
        ({"num_labels": 1}, "images", "expected as many labels as images, found 2 images and 1"),
        ({"n": 3}, "images", "expected 2 examples for split 'test', found 3"),
        ({"label": 10}, "labels", r"expected labels in \[0, 9\], found 10"),
    ],
)
def test_validation(tmp_path, kwargs, bad_file, message):
    images_path, labels_path = _write_split(tmp_path / "d", "test", **kwargs)
    path = images_path if bad_file == "images" else labels_path
    with pytest.raises(IDXFormatError, match=re.escape(str(path))) as info:
        load_fashion_mnist("test", data_dir=tmp_path / "d")
    assert re.search(message, str(info.value)), str(info.value)


def test_real_counts_are_enforced(tmp_path):
    _write_split(tmp_path / "d", "train")
    with pytest.raises(IDXFormatError, match="expected 60000 examples for split 'train', found 3"):
        load_fashion_mnist("train", data_dir=tmp_path / "d")


def test_corrupt_file_names_the_file(tmp_path):
    images_path, _ = _write_split(tmp_path / "d", "test")
    images_path.write_bytes(images_path.read_bytes()[:30])
    with pytest.raises(IDXFormatError, match=re.escape(str(images_path))):
        load_fashion_mnist("test", data_dir=tmp_path / "d")


@pytest.mark.usefixtures("tiny_counts")
def test_verify_checksum_on_found_files(tmp_path, monkeypatch):
    images_path, labels_path = _write_split(tmp_path / "d", "test")
    load_fashion_mnist("test", data_dir=tmp_path / "d")  # shapes are fine
    with pytest.raises(IDXFormatError, match=re.escape(str(images_path))) as info:
        load_fashion_mnist("test", data_dir=tmp_path / "d", verify_checksum=True)
    assert "expected 7840016 uncompressed bytes" in str(info.value)
    sums = dict(fm._PAYLOAD_SHA256)
    sums["t10k-images-idx3-ubyte"] = _payload_sha256(images_path)
    sums["t10k-labels-idx1-ubyte"] = ("0" * 64, _payload_sha256(labels_path)[1])
    monkeypatch.setattr(fm, "_PAYLOAD_SHA256", sums)
    with pytest.raises(IDXFormatError, match=re.escape(str(labels_path))) as info:
        load_fashion_mnist("test", data_dir=tmp_path / "d", verify_checksum=True)
    assert f"expected {'0' * 64}, found {_payload_sha256(labels_path)[0]}" in str(info.value)


# --- Download path: _fetch is replaced by a local copy. ---


def _serve_from(monkeypatch, source_dir, calls):
    """Makes _fetch copy `source_dir/<basename of url>` instead of downloading."""

    def fake_fetch(url, dest):
        assert url.startswith(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
        )
        calls.append(url)
        shutil.copyfile(source_dir / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(fm, "_fetch", fake_fetch)


@pytest.fixture
def tiny_remote(tmp_path, monkeypatch, tiny_counts):
    """A tiny 'test' split served by the fake fetch, with matching checksums."""
    remote = tmp_path / "remote"
    paths = _write_split(remote, "test", label=5)
    sums = dict(fm._PAYLOAD_SHA256)
    for path in paths:
        sums[path.name.removesuffix(".gz")] = _payload_sha256(path)
    monkeypatch.setattr(fm, "_PAYLOAD_SHA256", sums)
    calls = []
    _serve_from(monkeypatch, remote, calls)
    return calls


@pytest.mark.parametrize("explicit_dir", [True, False])
def test_download(tmp_path, tiny_remote, explicit_dir):
    target = tmp_path / ("explicit" if explicit_dir else "home/.cache/gen_jax/fashion-mnist")
    data_dir = target if explicit_dir else None
    _, labels = load_fashion_mnist("test", data_dir=data_dir, download=True)
    np.testing.assert_array_equal(labels, [5, 5])
    assert sorted(p.name for p in target.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert len(tiny_remote) == 2
    load_fashion_mnist("test", data_dir=data_dir, download=True)  # now found locally
    assert len(tiny_remote) == 2


def test_download_only_what_is_missing(tmp_path, tiny_remote):
    cache = tmp_path / "home/.cache/gen_jax/fashion-mnist"
    cache.mkdir(parents=True)
    name = "t10k-labels-idx1-ubyte.gz"
    shutil.copyfile(tmp_path / "remote" / name, cache / name)
    load_fashion_mnist("test", download=True)
    assert [u.rsplit("/", 1)[1] for u in tiny_remote] == ["t10k-images-idx3-ubyte.gz"]


def test_download_checksum_mismatch_leaves_nothing(tmp_path, tiny_remote, monkeypatch):
    sums = dict(fm._PAYLOAD_SHA256)
    _, length = sums["t10k-images-idx3-ubyte"]
    sums["t10k-images-idx3-ubyte"] = ("f" * 64, length)
    monkeypatch.setattr(fm, "_PAYLOAD_SHA256", sums)
    target = tmp_path / "target"
    with pytest.raises(IDXFormatError, match="SHA-256") as info:
        load_fashion_mnist("test", data_dir=target, download=True)
    assert str(target / "t10k-images-idx3-ubyte.gz") in str(info.value)
    assert "downloaded from https://" in str(info.value)
    assert list(target.iterdir()) == []


def test_download_of_real_size_mismatch_leaves_nothing(tmp_path, monkeypatch):
    # Unpatched checksums: the tiny file has the wrong length for the real one.
    remote = tmp_path / "remote"
    _write_split(remote, "test")
    _serve_from(monkeypatch, remote, [])
    with pytest.raises(IDXFormatError, match="expected 7840016 uncompressed bytes"):
        load_fashion_mnist("test", download=True)
    assert list((tmp_path / "home/.cache/gen_jax/fashion-mnist").iterdir()) == []


def test_failed_download_leaves_nothing(tmp_path, monkeypatch):
    def broken_fetch(url, dest):
        dest.write_bytes(b"\x1f\x8b partial")
        raise OSError("connection reset")

    monkeypatch.setattr(fm, "_fetch", broken_fetch)
    with pytest.raises(ConnectionError, match="connection reset") as info:
        load_fashion_mnist("test", data_dir=tmp_path / "target", download=True)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert list((tmp_path / "target").iterdir()) == []


# --- The real data (Debian dataset-fashion-mnist). ---


@requires_real_data
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_data(split, n):
    images, labels = load_fashion_mnist(split, data_dir=REAL_DIR)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)
    assert images.min() == 0 and images.max() == 255


@requires_real_data
def test_real_data_found_via_system_dir(monkeypatch):
    monkeypatch.setattr(fm, "_SYSTEM_DIR", REAL_DIR)
    images, _ = load_fashion_mnist("test", verify_checksum=True)
    assert images.shape == (10000, 28, 28)


@requires_real_data
def test_real_download_is_checksummed(tmp_path, monkeypatch):
    # Debian's re-compressed .gz differ from Zalando's; the payload checksums must match.
    calls = []
    _serve_from(monkeypatch, REAL_DIR, calls)
    images, _ = load_fashion_mnist("test", data_dir=tmp_path / "dl", download=True)
    assert len(calls) == 2 and images.shape == (10000, 28, 28)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
