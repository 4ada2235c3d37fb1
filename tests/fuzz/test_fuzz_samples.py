"""Fuzzed sample files for experiments.score_samples: load_samples returns the stored array
or raises ValueError (FileNotFoundError for a missing file) naming the file or --key."""

import io
import zipfile

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from fuzz_inputs import FUZZ, damaged, junk, names_path
from hypothesis import given

# `experiments` is a top-level folder, importable through pytest's pythonpath setting.
from experiments.score_samples import load_samples

ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
)
WRITERS = {
    "npz": lambda f, a: np.savez(f, images=a, other=np.arange(3)),
    "npz_compressed": lambda f, a: np.savez_compressed(f, images=a),
    "npy": lambda f, a: np.save(f, a),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("samples")


def _load(path, key=None):
    """load_samples under the contract: the array, or None after a clear error."""
    try:
        array, name = load_samples(str(path), key)
    except (ValueError, FileNotFoundError) as e:
        assert names_path(e, path) or (key is not None and repr(key) in str(e)), str(e)
        return None
    assert isinstance(array, np.ndarray) and isinstance(name, str)
    return array


def _written(kind, array) -> bytes:
    buf = io.BytesIO()
    WRITERS[kind](buf, array)
    return buf.getvalue()


@FUZZ
@given(array=ARRAYS, kind=st.sampled_from(sorted(WRITERS)))
def test_valid_files_load(folder, array, kind):
    path = folder / "good"
    path.write_bytes(_written(kind, array))
    np.testing.assert_array_equal(_load(path), array)


@FUZZ
@given(array=ARRAYS, kind=st.sampled_from(sorted(WRITERS)), data=st.data())
def test_damaged_files(folder, array, kind, data):
    path = folder / "damaged.npz"
    path.write_bytes(data.draw(damaged(_written(kind, array))))
    _load(path)


@FUZZ
@given(raw=junk(b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00"))
def test_random_bytes(folder, raw):
    path = folder / "junk.npz"
    path.write_bytes(raw)
    _load(path)


@FUZZ
@given(
    shape=st.lists(st.integers(0, 2**40), max_size=4).map(tuple),
    descr=st.sampled_from(["|u1", "<f4", "<f8", ">i8", "|b1"]),
    payload=st.binary(max_size=64),
    in_npz=st.booleans(),
)
def test_valid_header_with_any_declared_shape(folder, shape, descr, payload, in_npz):
    # numpy allocates the declared shape before reading: a damaged shape must come back as
    # the reader's error (not MemoryError), in an .npy and inside an .npz.
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    npy = buf.getvalue() + payload
    path = folder / "sized"
    if in_npz:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("images.npy", npy)
    else:
        path.write_bytes(npy)
    _load(path)


@FUZZ
@given(key=st.one_of(st.none(), st.text(max_size=12)))
def test_any_key(folder, key):
    path = folder / "keys.npz"
    if not path.exists():
        np.savez(path, a=np.zeros(2), b=np.ones(2))
    array = _load(path, key)
    if array is not None:
        assert key in ("a", "b")
