"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from local IDX files.

Where the files are looked for:

  1. `data_dir`, when given;
  2. else the directory in the environment variable GEN_JAX_FASHION_MNIST_DIR, when set;
  3. else /usr/share/datasets/fashion-mnist (Debian/Ubuntu package dataset-fashion-mnist),
     then ~/.cache/gen_jax/fashion-mnist, where downloads go.

An explicit source (1 or 2) is the only place looked, and the download target when
`download=True`: a folder that is missing, or lacks a file, is an error rather than a
silent fallback to another copy (which could mix one split from here with one from there).

Each file may be gzip-compressed (`<name>.gz`) or raw (`<name>`). Checksums are SHA-256 of
the *decompressed* bytes: Debian re-compresses the .gz files, so their gzip bytes differ
from Zalando's while the IDX bytes inside are identical.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from gen_jax.data.idx import IDXFormatError, parse_idx, read_idx_payload

__all__ = ["ENV_VAR", "FASHION_MNIST_CLASSES", "load_fashion_mnist"]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

ENV_VAR = "GEN_JAX_FASHION_MNIST_DIR"
_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_BASE_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
_DOWNLOAD_TIMEOUT_S = 60.0
# The loader is called from Python and through experiments' command lines: name both.
_DOWNLOAD_HINT = "pass download=True (--download true on an experiment's command line)"

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_NUM_EXAMPLES = {"train": 60000, "test": 10000}
_IMAGE_SHAPE = (28, 28)

# (SHA-256, length) of the uncompressed IDX bytes; see the module docstring for why.
_PAYLOAD_SHA256 = {
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7840016,
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10008,
    ),
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47040016,
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60008,
    ),
}


def load_fashion_mnist(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    verify_checksum: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of Fashion-MNIST (arXiv:1708.07747) as numpy arrays.

    Found files are always checked for shape, dtype, example count and label range;
    downloaded files are always checked against the SHA-256 of their uncompressed bytes,
    found ones only when `verify_checksum` (it costs a hash of 47 MB for "train").

    Args:
      split: "train" (60000 examples) or "test" (10000).
      data_dir: a directory holding the files. When given it is the only place looked,
        and where `download` writes; when None, the environment variable
        GEN_JAX_FASHION_MNIST_DIR plays that part, and without it see the search order in
        the module docstring.
      download: fetch missing files from the Zalando repository into the explicit
        directory, or into ~/.cache/gen_jax/fashion-mnist when there is none.
      verify_checksum: also check the SHA-256 of files that were found locally.

    Returns:
      (images, labels): uint8 [N, 28, 28] with 0 as background, and uint8 [N] class ids
      indexing `FASHION_MNIST_CLASSES`.

    Raises:
      ValueError: `split` is not "train" or "test".
      FileNotFoundError: the files are in none of the places looked and `download` is
        False (an explicit directory is the only place looked); the message lists the
        places and what each lacks.
      NotADirectoryError: the explicit directory is a file.
      IDXFormatError: a file is corrupt, has the wrong shape or count, or fails its
        checksum; the message names the file.
      ConnectionError: a download failed (no partial file is left behind).
    """
    if split not in _SPLIT_FILES:
        raise ValueError(f"split: expected one of {sorted(_SPLIT_FILES)}, found {split!r}")
    names = _SPLIT_FILES[split]

    explicit, what = _explicit_dir(data_dir)
    if explicit is not None and explicit.exists() and not explicit.is_dir():
        raise NotADirectoryError(f"Fashion-MNIST {what} {explicit} is not a directory")
    candidates = [explicit] if explicit is not None else _search_dirs()
    looked = []
    for directory in candidates:
        paths = [_find_file(directory, name) for name in names]
        if all(p is not None for p in paths):
            return _load_pair(split, paths[0], paths[1], verify_checksum)
        looked.append(_describe_miss(directory, names, paths))

    if not download:
        where = "\n  ".join(looked)
        if explicit is not None:
            hint = (
                f"{what} is the only place looked: put the files there, or {_DOWNLOAD_HINT} "
                "to fetch them into it."
            )
            if what == ENV_VAR:
                hint += f" Unset {ENV_VAR} to search the default places."
        else:
            hint = (
                f"To fetch them, {_DOWNLOAD_HINT}; or set {ENV_VAR} to a folder holding "
                "them, or install the Debian package dataset-fashion-mnist."
            )
        raise FileNotFoundError(
            f"Fashion-MNIST {split!r} files {list(names)} (each as .gz or raw) not found; "
            f"looked in:\n  {where}\n{hint}"
        )
    target = explicit if explicit is not None else _cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = [_find_file(target, name) or _download(name, target) for name in names]
    # Downloaded files were checksummed in _download; files already in `target` are
    # checked like any found file (checksum only if verify_checksum).
    return _load_pair(split, paths[0], paths[1], verify_checksum)


def _cache_dir() -> Path:
    """Download directory; computed per call so a changed HOME is honoured."""
    return Path.home() / ".cache" / "gen_jax" / "fashion-mnist"


def _explicit_dir(data_dir: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """The directory the caller named (`data_dir`, else $ENV_VAR), and what to call it."""
    if data_dir is not None:
        return _expand(data_dir), "data_dir (--data_dir)"
    if os.environ.get(ENV_VAR):
        return _expand(os.environ[ENV_VAR]), ENV_VAR
    return None, ""


def _expand(directory: str | os.PathLike[str]) -> Path:
    """`~` expanded; as given when it names no known user (then it is simply not found)."""
    try:
        return Path(directory).expanduser()
    except RuntimeError:
        return Path(directory)


def _search_dirs() -> list[Path]:
    """Directories searched when no directory is named, in priority order."""
    return [_SYSTEM_DIR, _cache_dir()]


def _find_file(directory: Path, name: str) -> Path | None:
    """Path of `name.gz` or `name` in `directory`, preferring .gz; None if neither."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _describe_miss(directory: Path, names: tuple[str, ...], paths: list) -> str:
    """One line for the not-found message: the directory and what it lacks."""
    if not directory.is_dir():
        return f"{directory} (no such directory)"
    missing = [n for n, p in zip(names, paths) if p is None]
    return f"{directory} (missing {', '.join(missing)})"


def _fetch(url: str, dest: Path) -> None:
    """Writes the bytes at `url` to `dest`. Tests replace this; nothing else touches the net."""
    with (
        urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
        open(dest, "wb") as f,
    ):
        shutil.copyfileobj(response, f)


def _download(name: str, directory: Path) -> Path:
    """Downloads `name.gz` into `directory`, checksummed; returns its final path."""
    final = directory / f"{name}.gz"
    url = _BASE_URL + f"{name}.gz"
    # A temp file in the same directory, renamed on success: os.replace is atomic there,
    # so an interrupted or bad download never leaves a file under the final name.
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.gz.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _fetch(url, tmp)
        except OSError as e:  # urllib's URLError and HTTPError are OSErrors.
            raise ConnectionError(f"downloading {url} to {final} failed: {e}") from e
        _check_payload(name, read_idx_payload(tmp), source=f"{final} (downloaded from {url})")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _check_payload(name: str, payload: bytes, source: str) -> None:
    """Raises IDXFormatError unless `payload` has the known length and SHA-256."""
    want_sha, want_len = _PAYLOAD_SHA256[name]
    if len(payload) != want_len:
        raise IDXFormatError(
            f"{source}: expected {want_len} uncompressed bytes for {name}, found {len(payload)}"
        )
    sha = hashlib.sha256(payload).hexdigest()
    if sha != want_sha:
        raise IDXFormatError(
            f"{source}: SHA-256 of the uncompressed bytes: expected {want_sha}, found {sha}"
        )


def _load_pair(
    split: str, images_path: Path, labels_path: Path, verify_checksum: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Reads and validates one split's image and label files."""
    arrays = []
    for path in (images_path, labels_path):
        payload = read_idx_payload(path)
        if verify_checksum:
            _check_payload(path.name.removesuffix(".gz"), payload, source=str(path))
        arrays.append(parse_idx(payload, path))
    images, labels = arrays

    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise IDXFormatError(
            f"{images_path}: expected uint8 images of shape [N, 28, 28], found "
            f"{images.dtype} {list(images.shape)}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXFormatError(
            f"{labels_path}: expected uint8 labels of shape [N], found "
            f"{labels.dtype} {list(labels.shape)}"
        )
    if len(images) != len(labels):
        raise IDXFormatError(
            f"{images_path} and {labels_path}: expected as many labels as images, found "
            f"{len(images)} images and {len(labels)} labels"
        )
    want = _NUM_EXAMPLES[split]
    if len(images) != want:
        raise IDXFormatError(
            f"{images_path}: expected {want} examples for split {split!r}, found {len(images)}"
        )
    if len(labels) and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise IDXFormatError(
            f"{labels_path}: expected labels in [0, {len(FASHION_MNIST_CLASSES) - 1}], "
            f"found {int(labels.max())}"
        )
    return images, labels
