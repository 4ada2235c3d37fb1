"""Tests for the IDX reader/writer on tiny synthetic files."""

import gzip
import re
import struct

import numpy as np
import pytest

from gen_jax.data import IDXFormatError, read_idx, write_idx


def _named(path) -> str:
    """A regex matching the path literally, for pytest.raises(match=...)."""
    return re.escape(str(path))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)  # native order, whatever was on disk
    assert out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_one_dimensional_and_empty(tmp_path):
    write_idx(tmp_path / "v", np.arange(7, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(tmp_path / "v"), np.arange(7))
    write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(tmp_path / "e").shape == (0, 28, 28)


def test_header_and_values_are_big_endian(tmp_path):
    write_idx(tmp_path / "x", np.array([0x01020304], dtype=np.int32))
    raw = (tmp_path / "x").read_bytes()
    assert raw == bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4])


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    (tmp_path / "a.gz").rename(tmp_path / "compressed_without_suffix")
    write_idx(tmp_path / "raw", array)
    (tmp_path / "raw").rename(tmp_path / "raw_with_suffix.gz")
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed_without_suffix"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw_with_suffix.gz"), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gz"
    with pytest.raises(FileNotFoundError, match=_named(path)):
        read_idx(path)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", "expected bytes 0-1 to be 00 00, found 01 00"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x00", "found 0x0A"),
        (b"\x00\x00\x08\x00", "expected ndim >= 1, found 0"),
        (b"\x00\x00", "expected a 4-byte IDX magic number, found only 2 bytes"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated IDX header: expected 12 bytes"),
    ],
)
def test_bad_header(tmp_path, raw, message):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(IDXFormatError, match=_named(path)) as info:
        read_idx(path)
    assert message in str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_payload(tmp_path, suffix):
    path = tmp_path / "t"
    write_idx(path, np.zeros((2, 3), np.int16))
    data = path.read_bytes()[:-1]
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(IDXFormatError, match=_named(path)) as info:
        read_idx(path)
    assert "truncated IDX payload: expected 12 bytes" in str(info.value)
    assert "found 11" in str(info.value)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "t"
    write_idx(path, np.zeros((2, 3), np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(IDXFormatError, match=_named(path)) as info:
        read_idx(path)
    assert "trailing bytes" in str(info.value)
    assert "expected 6 bytes" in str(info.value) and "found 8 (2 extra)" in str(info.value)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(bytes(range(256)) * 64, mtime=0)
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF  # inside the deflate stream
    cases = {
        "damaged.gz": bytes(damaged),
        "cut.gz": good[: len(good) // 2],  # stream ends early
        "header_only.gz": b"\x1f\x8b",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IDXFormatError, match=_named(path)) as info:
            read_idx(path)
        assert "expected a valid gzip stream" in str(info.value), name


def test_idx_format_error_is_a_value_error():
    assert issubclass(IDXFormatError, ValueError)


@pytest.mark.parametrize(
    "array", [np.zeros(3, np.bool_), np.zeros(3, np.uint16), np.zeros(3, np.complex64)]
)
def test_write_rejects_unsupported_dtypes(tmp_path, array):
    with pytest.raises(ValueError, match="expected dtype in"):
        write_idx(tmp_path / "x", array)
    assert not (tmp_path / "x").exists()


def test_write_rejects_scalars(tmp_path):
    with pytest.raises(ValueError, match="expected 1 to 255 dimensions, found 0"):
        write_idx(tmp_path / "x", np.uint8(3))


def test_empty_shape_that_numpy_cannot_hold_is_refused(tmp_path):
    # Found by fuzzing: no values, so no payload is "missing", but the other sizes multiply
    # past numpy's index range and np.reshape raised a bare ValueError without the path.
    path = tmp_path / "empty_huge"
    dims = (0, 38467, 177023, 1354477244)
    path.write_bytes(bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *dims))
    with pytest.raises(IDXFormatError, match=_named(path)) as info:
        read_idx(path)
    assert "too large for a numpy array" in str(info.value)
    # One that numpy can hold still reads (as an empty array).
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 0, 2**31, 2**31))
    assert read_idx(path).shape == (0, 2**31, 2**31)


def test_huge_declared_size_is_refused_before_allocating(tmp_path):
    # 255 dimensions of 2**32 - 1: checked against the bytes present, nothing allocated.
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x0E, 255]) + b"\xff" * (4 * 255) + b"\x00" * 8))
    with pytest.raises(IDXFormatError, match=_named(path)) as info:
        read_idx(path)
    assert "truncated IDX payload" in str(info.value) and "found 8" in str(info.value)


def test_directory_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(IsADirectoryError, match=_named(tmp_path)):
        read_idx(tmp_path)
