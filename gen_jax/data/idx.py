"""Reader and writer for the IDX format (the format of MNIST and Fashion-MNIST).

Layout (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):

    bytes 0-1   0x00 0x00
    byte  2     dtype code (table `_CODE_TO_DTYPE`)
    byte  3     ndim (>= 1)
    then        ndim big-endian uint32 dimension sizes
    then        prod(dims) big-endian values of that dtype, C order

Files may be gzip-compressed; compression is detected from the gzip magic bytes, not the
file name, because mirrors do not agree on names.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXFormatError", "parse_idx", "read_idx", "read_idx_payload", "write_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX values are big-endian whatever the machine; `read_idx` converts to native order.
_CODE_TO_DTYPE = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_NAMES = "0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64"


class IDXFormatError(ValueError):
    """A file is not valid IDX, or not the IDX content that was expected of it."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or raw, into a numpy array.

    Args:
      path: the file. Gzip is detected from the magic bytes 1f 8b, not the name.

    Returns:
      A writable array of shape `dims` (as stored in the header) in native byte order,
      with dtype uint8, int8, int16, int32, float32 or float64.

    Raises:
      FileNotFoundError: `path` does not exist.
      IDXFormatError: corrupt gzip, bad magic number, truncated header or payload, bytes
        after the payload, or a shape numpy cannot hold. The message names `path`.
      OSError: `path` cannot be read (a directory, no permission); the message names it.
    """
    return parse_idx(read_idx_payload(path), path)


def read_idx_payload(path: str | os.PathLike[str]) -> bytes:
    """Returns the bytes of an IDX file, decompressed if the file is gzip.

    These are the bytes that checksums are taken over: re-compressing a file changes its
    gzip bytes but not these.

    Args:
      path: the file.

    Returns:
      The uncompressed IDX bytes (header and payload).

    Raises:
      FileNotFoundError: `path` does not exist.
      IDXFormatError: the file starts with the gzip magic but does not decompress.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        # The default message is fine but says nothing about what was being read.
        raise FileNotFoundError(errno.ENOENT, "IDX file not found", str(path)) from None
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    # BadGzipFile (an OSError) for bad headers/CRC, EOFError for a cut-off stream,
    # zlib.error for a damaged deflate stream.
    except (OSError, EOFError, zlib.error) as e:
        raise IDXFormatError(
            f"{path}: expected a valid gzip stream (the file starts with the gzip magic "
            f"1f 8b), found a corrupt one: {e}"
        ) from e


def parse_idx(data: bytes, source: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Parses uncompressed IDX bytes into a numpy array.

    Args:
      data: the IDX bytes (header and payload), e.g. from `read_idx_payload`.
      source: the name used in error messages (normally the file path).

    Returns:
      As `read_idx`.

    Raises:
      IDXFormatError: as `read_idx`, naming `source`.
    """
    if len(data) < 4:
        raise IDXFormatError(
            f"{source}: expected a 4-byte IDX magic number, found only {len(data)} bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise IDXFormatError(
            f"{source}: bad IDX magic number: expected bytes 0-1 to be 00 00, found "
            f"{data[:2].hex(' ')} (not an IDX file?)"
        )
    code, ndim = data[2], data[3]
    if code not in _CODE_TO_DTYPE:
        raise IDXFormatError(
            f"{source}: bad IDX magic number: expected a dtype code in ({_DTYPE_NAMES}), "
            f"found 0x{code:02X}"
        )
    if ndim < 1:
        raise IDXFormatError(f"{source}: bad IDX magic number: expected ndim >= 1, found {ndim}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXFormatError(
            f"{source}: truncated IDX header: expected {header_size} bytes for {ndim} "
            f"dimensions, found {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _CODE_TO_DTYPE[code]
    # Python ints, so a hostile header cannot overflow the size computation.
    expected = math.prod(dims) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise IDXFormatError(
            f"{source}: truncated IDX payload: expected {expected} bytes for shape "
            f"{dims} of {dtype.name}, found {found}"
        )
    if found > expected:
        raise IDXFormatError(
            f"{source}: trailing bytes after the IDX payload: expected {expected} bytes "
            f"for shape {dims} of {dtype.name}, found {found} ({found - expected} extra)"
        )
    # An empty array may still declare huge other dimensions; numpy refuses a shape whose
    # non-zero sizes multiply past its index range, even with no element.
    if math.prod(d for d in dims if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise IDXFormatError(
            f"{source}: IDX shape {dims} of {dtype.name} is too large for a numpy array "
            f"(its non-zero dimensions alone exceed {np.iinfo(np.intp).max} bytes)"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header_size)
    # astype copies, which also makes the result writable (frombuffer over bytes is not).
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Writes an array as an IDX file, gzip-compressed when `path` ends in ".gz".

    Args:
      path: the destination; overwritten if it exists.
      array: any shape with ndim in [1, 255] and every dimension < 2**32; dtype uint8,
        int8, int16, int32, float32 or float64.

    Raises:
      ValueError: the dtype or shape cannot be stored as IDX.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    code = next((c for c, dt in _CODE_TO_DTYPE.items() if dt.newbyteorder("=") == native), None)
    if code is None:
        raise ValueError(
            f"write_idx({str(path)!r}): expected dtype in ({_DTYPE_NAMES}), found {array.dtype}"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(
            f"write_idx({str(path)!r}): expected 1 to 255 dimensions, found {array.ndim}"
        )
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(
            f"write_idx({str(path)!r}): expected dimensions < 2**32, found {array.shape}"
        )
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if os.fspath(path).endswith(".gz"):
        # mtime=0 so writing the same array twice gives identical files.
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
