"""Fuzzed IDX files: read_idx returns the array its header describes or raises IDXFormatError
naming the file (FileNotFoundError for a missing one)."""

import gzip
import math
import struct

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from fuzz_inputs import FUZZ, damaged, junk, names_path
from hypothesis import given

from gen_jax.data import IDXFormatError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
ARRAYS = hnp.arrays(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("idx")


def _read(path):
    """read_idx under the contract: the array, or None after a clear IDXFormatError."""
    try:
        out = read_idx(path)
    except IDXFormatError as e:
        assert names_path(e, path), str(e)
        return None
    assert isinstance(out, np.ndarray) and out.flags.writeable and out.dtype.isnative
    assert np.dtype(out.dtype) in [np.dtype(d) for d in DTYPES]
    return out


def _header_dims(raw: bytes):
    ndim = raw[3]
    return struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])


@FUZZ
@given(array=ARRAYS, gz=st.booleans())
def test_round_trip(folder, array, gz):
    path = folder / ("a.gz" if gz else "a")
    write_idx(path, array)
    np.testing.assert_array_equal(_read(path), array)


@FUZZ
@given(array=ARRAYS, data=st.data())
def test_damaged_raw_file(folder, array, data):
    path = folder / "raw"
    write_idx(path, array)
    raw = data.draw(damaged(path.read_bytes()))
    path.write_bytes(raw)
    out = _read(path)
    if out is not None:  # Whatever survived must be what the (damaged) header says.
        assert out.shape == _header_dims(raw)


@FUZZ
@given(array=ARRAYS, data=st.data(), damage_payload=st.booleans())
def test_damaged_gzip_file(folder, array, data, damage_payload):
    # Damage either the gzip bytes (corrupt stream) or the IDX bytes inside a good stream.
    path = folder / "c.gz"
    write_idx(path, array)
    if damage_payload:
        raw = data.draw(damaged(gzip.decompress(path.read_bytes())))
        path.write_bytes(gzip.compress(raw, mtime=0))
    else:
        path.write_bytes(data.draw(damaged(path.read_bytes())))
    _read(path)


@FUZZ
@given(raw=junk(b"\x1f\x8b", b"\x00\x00\x08\x01", b"\x00\x00\x0d\x03", b"\x00\x00"))
def test_random_bytes(folder, raw):
    path = folder / "junk"
    path.write_bytes(raw)
    _read(path)


@FUZZ
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
    payload=st.binary(max_size=64),
)
def test_valid_header_with_any_declared_size(folder, code, dims, payload):
    # A header may declare up to (2**32 - 1)**255 values: it must be checked against the
    # bytes present before anything is allocated (the deadline would catch a slow path).
    path = folder / "sized"
    path.write_bytes(
        bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload
    )
    out = _read(path)
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[code]
    # numpy cannot hold an empty shape whose other sizes multiply past its index range.
    representable = math.prod(d for d in dims if d) * itemsize <= np.iinfo(np.intp).max
    assert (out is not None) == (math.prod(dims) * itemsize == len(payload) and representable)
