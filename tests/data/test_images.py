"""Image loading: files, skimage.data names, the opencv-doc lookup, resizing, clear errors."""

import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gen_jax.data import images
from gen_jax.data.images import (
    find_opencv_sample,
    load_image,
    resize_max_side,
    save_image,
    side_by_side,
    to_rgb_float,
)


def test_skimage_names_load_as_rgb_float():
    img = load_image("chelsea")
    assert img.shape == (300, 451, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    grey = load_image("skimage:brick", max_side=32)
    assert grey.shape == (32, 32, 3)
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])  # grey repeated


def test_max_side_keeps_the_aspect_ratio():
    img = load_image("chelsea", max_side=45)
    assert img.shape == (30, 45, 3)
    assert resize_max_side(np.ones((10, 20, 3), np.float32), 20).shape == (10, 20, 3)


def test_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 5, 3)).astype(np.float32) / 255.0
    path = tmp_path / "x.png"
    save_image(path, x)
    np.testing.assert_allclose(load_image(str(path)), x, atol=1e-6)


def test_missing_and_unknown_images_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(str(tmp_path / "nope.png"))
    with pytest.raises(FileNotFoundError, match="astronaut"):  # lists the built-in names
        load_image("mona_lisa")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_image(str(bad))


def test_starry_night_lookup(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_OPENCV_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("GEN_JAX_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="fetch_opencv_data.sh"):
        load_image("starry_night")
    folder = tmp_path / "cache" / "opencv-doc"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((8, 12, 3), 200, np.uint8)).save(folder / "starry_night.jpg")
    assert find_opencv_sample() == folder / "starry_night.jpg"
    img = load_image("starry_night", max_side=6)
    assert img.shape == (4, 6, 3)


def test_to_rgb_float_layouts():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    np.testing.assert_array_equal(to_rgb_float(rgba)[0, 0], [1.0, 0.0, 0.0])
    assert to_rgb_float(np.ones((2, 3), bool)).shape == (2, 3, 3)
    np.testing.assert_allclose(to_rgb_float(np.full((1, 1), 65535, np.uint16)), 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_float(np.full((2, 2, 3), 3.0))
    with pytest.raises(ValueError, match="expected an image"):
        to_rgb_float(np.zeros((2, 2, 2)))


def test_side_by_side():
    row = side_by_side([np.zeros((10, 10, 3)), np.ones((20, 10, 3))], height=10, pad=2)
    assert row.shape == (14, 2 + 10 + 2 + 5 + 2, 3)
    assert row[0, 0, 0] == 1.0 and row[5, 5, 0] == 0.0
    # keep_size: no resizing, top-aligned, white below the shorter image.
    kept = side_by_side(
        [np.zeros((10, 10, 3)), np.full((20, 6, 3), 0.5)], height=10, pad=2, keep_size=True
    )
    assert kept.shape == (2 + 20 + 2, 2 + 10 + 2 + 6 + 2, 3)
    assert kept[2:12, 2:12].max() == 0.0 and kept[12:22, 2:12].min() == 1.0
    np.testing.assert_array_equal(kept[2:22, 14:20], 0.5)


# --- Damaged files: ValueError naming the file, whatever Pillow raised (found by fuzzing). ---


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width, height, idat_chunks, between=b""):
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idats = between.join(_chunk(b"IDAT", d) for d in idat_chunks)
    return b"\x89PNG\r\n\x1a\n" + ihdr + idats + _chunk(b"IEND", b"")


_ROWS = zlib.compress(b"".join(b"\x00" + bytes(range(60)) for _ in range(20)))


@pytest.mark.parametrize(
    "name, data, pillow_raised",
    [
        # A bad chunk between two IDAT chunks: Pillow raises SyntaxError("broken PNG file").
        (
            "broken.png",
            _png(20, 20, [_ROWS[:20], _ROWS[20:]], b"\x00\x00\x00\x04\x01\x02\x03\x04abcd"),
            "SyntaxError",
        ),
        # A cut IHDR chunk: a bare ValueError("Truncated IHDR chunk").
        ("cut.png", b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 5) + b"IHDR" + bytes(9), "ValueError"),
        # 60000 x 60000 declared: Image.DecompressionBombError, an Exception of its own.
        ("huge.png", _png(60000, 60000, [_ROWS]), "DecompressionBombError"),
        # A PPM header with an endless number: a bare ValueError("Token too long ...").
        ("token.ppm", b"P6\n" + b"9" * 100 + b" 2\n255\n", "ValueError"),
    ],
)
def test_damaged_files_raise_value_error_naming_them(tmp_path, name, data, pillow_raised):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        load_image(str(path))
    assert f"not a readable image file ({pillow_raised}" in str(info.value)


def test_tilde_of_no_such_user_is_not_found():
    # Path.expanduser raises RuntimeError for "~nosuchuser" (found by fuzzing "~0").
    with pytest.raises(FileNotFoundError, match="~nosuchuser_gen_jax"):
        load_image("~nosuchuser_gen_jax/x.png")
