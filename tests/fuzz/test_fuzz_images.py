"""Fuzzed image files: load_image returns float32 RGB [H, W, 3] in [0, 1] or raises
ValueError (damaged, not an image, too large) or FileNotFoundError, naming the file."""

import io
import struct
import warnings
import zlib

import hypothesis.strategies as st
import numpy as np
import pytest
from fuzz_inputs import FUZZ, damaged, junk, names_path
from hypothesis import given
from PIL import Image

from gen_jax.data.images import load_image

# (Pillow format, mode) of the seed files: the common formats and the modes load_image
# handles specially (grey, 16-bit, alpha, palette, CMYK, float TIFF).
SEEDS = [
    ("PNG", "RGB"),
    ("PNG", "L"),
    ("PNG", "RGBA"),
    ("PNG", "P"),
    ("PNG", "I;16"),
    ("JPEG", "RGB"),
    ("JPEG", "CMYK"),
    ("GIF", "P"),
    ("BMP", "RGB"),
    ("TIFF", "RGB"),
    ("TIFF", "F"),
    ("WEBP", "RGB"),
    ("PPM", "RGB"),
]
MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"P6\n", b"RIFF")


def _seed(fmt: str, mode: str) -> bytes:
    rgb = (np.random.default_rng(0).random((9, 7, 3)) * 255).astype(np.uint8)
    if mode == "F":
        img = Image.fromarray(rgb[..., 0].astype(np.float32) / 255.0)
    elif mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        img = Image.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def seeds():
    return {f"{fmt}-{mode}": _seed(fmt, mode) for fmt, mode in SEEDS}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("images")


def _load(path):
    """load_image under the contract: the image, or None after a clear error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF and tags
        try:
            image = load_image(str(path))
        except (ValueError, FileNotFoundError) as e:
            assert names_path(e, path), str(e)
            return None
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert image.size and 0.0 <= image.min() and image.max() <= 1.0
    return image


def test_seeds_load(seeds, folder):
    for name, data in seeds.items():
        path = folder / f"seed-{name}"
        path.write_bytes(data)
        assert _load(path).shape == (9, 7, 3), name


@FUZZ
@given(data=st.data())
def test_damaged_image_files(seeds, folder, data):
    name = data.draw(st.sampled_from(sorted(seeds)))
    path = folder / "damaged"
    path.write_bytes(data.draw(damaged(seeds[name])))
    _load(path)


@FUZZ
@given(raw=junk(*MAGICS))
def test_random_bytes(folder, raw):
    path = folder / "junk.png"
    path.write_bytes(raw)
    _load(path)


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# Small sizes, and sizes past twice Image.MAX_IMAGE_PIXELS (refused before decoding). The
# range between (a legal size that Pillow would allocate, then find the data truncated) is
# left out only because allocating it takes time, not because it fails the contract.
SIDES = st.one_of(st.integers(0, 64), st.integers(20_000, 2**31 - 1))


@FUZZ
@given(width=SIDES, height=SIDES, pixels=st.binary(max_size=256), compress=st.booleans())
def test_png_with_any_declared_size(folder, width, height, pixels, compress):
    path = folder / "sized.png"
    path.write_bytes(_png(width, height, zlib.compress(pixels) if compress else pixels))
    image = _load(path)
    if image is not None:
        assert image.shape == (height, width, 3)


@FUZZ
@given(
    spec=st.one_of(
        st.text(max_size=24),
        st.sampled_from(["skimage:", "opencv:", "skimage:nope", "opencv:nope.jpg", ".", "/", "~"]),
    )
)
def test_any_spec_text(spec):
    # Not a file: a FileNotFoundError listing what is accepted (or a built-in image).
    try:
        image = load_image(spec)
    except FileNotFoundError as e:
        name = spec.split(":", 1)[-1]  # "opencv:FILE" errors name the FILE
        assert any(t in str(e) for t in (spec, repr(spec), name, repr(name))), str(e)
    except ValueError as e:  # a spec that names an existing non-image file
        assert "not a readable image" in str(e)
    else:
        assert image.ndim == 3 and image.shape[-1] == 3
