"""Single images for synthesis: files, the offline `skimage.data` pictures, OpenCV samples.

`load_image(spec, max_side=...)` returns float32 RGB ``[H, W, 3]`` in [0, 1] from:

* a path to an image file (PNG, JPEG, ... anything Pillow reads);
* a name of `SKIMAGE_IMAGES` (``"astronaut"``, ``"brick"`` ...), optionally written
  ``"skimage:astronaut"``: the pictures that ship inside scikit-image (no download);
* ``"starry_night"`` or ``"opencv:NAME"``: a sample of Debian's ``opencv-doc``, found at
  ``/usr/share/doc/opencv-doc/examples/data/`` or, after ``bash
  scripts/fetch_opencv_data.sh``, at ``${GEN_JAX_DATA:-~/.cache/gen_jax}/opencv-doc/``.

Grey images are repeated into three channels; an alpha channel is dropped.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "SKIMAGE_IMAGES",
    "find_opencv_sample",
    "load_image",
    "resize",
    "resize_max_side",
    "save_image",
    "side_by_side",
    "to_rgb_float",
]

# The skimage.data pictures whose files ship with scikit-image (the others download).
SKIMAGE_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "checkerboard",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)

_OPENCV_SYSTEM_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
_FETCH_HINT = "run `bash scripts/fetch_opencv_data.sh` (it unpacks Debian's opencv-doc samples)"


def _opencv_dirs() -> list[Path]:
    cache = Path(os.environ.get("GEN_JAX_DATA", Path.home() / ".cache" / "gen_jax"))
    return [_OPENCV_SYSTEM_DIR, cache / "opencv-doc"]


def find_opencv_sample(filename: str = "starry_night.jpg") -> Path:
    """The path of one of opencv-doc's sample images (e.g. the painting starry_night.jpg).

    Args:
      filename: file name in opencv-doc's ``examples/data``.

    Returns:
      The first existing path among the system folder and the gen_jax cache.

    Raises:
      FileNotFoundError: naming both folders and how to fetch the samples.
    """
    dirs = _opencv_dirs()
    for d in dirs:
        if (d / filename).is_file():
            return d / filename
    looked = " and ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"{filename} not found in {looked}; {_FETCH_HINT}, or pass the path of your own image."
    )


def to_rgb_float(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Converts an image array (grey, RGB or RGBA; uint8, uint16, bool or float) to RGB [0, 1].

    Args:
      array: ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]``; floats must already
        be in [0, 1].
      name: what to call the image in errors.

    Returns:
      float32 ``[H, W, 3]`` in [0, 1].
    """
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if a.size and (a.min() < 0.0 or a.max() > 1.0):
            raise ValueError(
                f"{name}: float pixels must be in [0, 1]; got range [{a.min():.3g}, {a.max():.3g}]"
            )
    else:
        raise ValueError(f"{name}: unsupported pixel dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an image [H, W], [H, W, 3] or [H, W, 4]; got {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes ``[H, W, C]`` in [0, 1] to ``[height, width, C]`` (Lanczos, antialiased)."""
    if height < 1 or width < 1:
        raise ValueError(f"the target size must be positive; got {height}x{width}")
    image = np.asarray(image, np.float32)
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(image[..., c], "F").resize((width, height), Image.LANCZOS))
        for c in range(image.shape[-1])
    ]
    # Lanczos rings slightly past the input's range at edges.
    return np.clip(np.stack(channels, -1), 0.0, 1.0).astype(np.float32)


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Resizes ``[H, W, C]`` so that its longer side is ``max_side`` (aspect ratio kept)."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1; got {max_side}")
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    return resize(image, max(1, round(h * scale)), max(1, round(w * scale)))


# What Pillow's decoders raise on a damaged or hostile file besides OSError (its
# UnidentifiedImageError and "truncated" errors): SyntaxError ("broken PNG file"),
# ValueError and struct.error from bad headers, TypeError and IndexError from bad TIFF
# tags, EOFError, ZeroDivisionError, DecompressionBombError for a declared size past
# Image.MAX_IMAGE_PIXELS. Only the Pillow calls are inside the `try`.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
    Image.DecompressionBombError,
)


def _read_file(path: Path) -> np.ndarray:
    """Decodes an image file (the first frame) into an array, or raises ValueError naming it."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB") if img.mode not in ("L", "RGB", "RGBA", "I;16") else img
            return np.asarray(img)
    except MemoryError as e:  # A declared size under Pillow's limit but past this machine's.
        raise ValueError(f"{path}: the image is too large to decode here ({e})") from e
    except _DECODE_ERRORS as e:
        raise ValueError(f"{path}: not a readable image file ({type(e).__name__}: {e})") from e


def _read(spec: str) -> tuple[np.ndarray, str]:
    """Reads `spec` (see `load_image`) into an array; returns it and a name for errors."""
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # "~user" of no such user: not a file, then
        path = Path(spec)
    if path.is_file():
        return _read_file(path), str(path)
    if spec == "starry_night":
        spec = "opencv:starry_night.jpg"
    if spec.startswith("opencv:"):
        found = find_opencv_sample(spec.split(":", 1)[1])
        return _read(str(found))
    name = spec.split(":", 1)[1] if spec.startswith("skimage:") else spec
    if name in SKIMAGE_IMAGES:
        import skimage.data

        return getattr(skimage.data, name)(), f"skimage.data.{name}"
    if path.suffix or os.sep in spec:
        raise FileNotFoundError(f"image file {spec!r} does not exist")
    raise FileNotFoundError(
        f"image {spec!r}: no such file, and not a built-in name; expected a path, "
        f"'starry_night', 'opencv:FILE' or one of the offline skimage.data images {SKIMAGE_IMAGES}"
    )


def load_image(spec: str | os.PathLike[str], max_side: int | None = None) -> np.ndarray:
    """Loads an image as float32 RGB ``[H, W, 3]`` in [0, 1] (see the module docstring).

    Args:
      spec: a file path, a `SKIMAGE_IMAGES` name (or ``"skimage:NAME"``),
        ``"starry_night"`` or ``"opencv:FILE"``.
      max_side: if given, resize so that the longer side has this many pixels.

    Returns:
      float32 ``[H, W, 3]`` in [0, 1].

    Raises:
      FileNotFoundError: no such file or name (the message lists the built-in names, or
        says how to fetch the OpenCV samples).
      ValueError: the file is not an image, is damaged (whatever its bytes), declares more
        pixels than Pillow's `Image.MAX_IMAGE_PIXELS` limit, or has an unsupported
        layout; the message names the file.
    """
    array, name = _read(os.fspath(spec))
    image = to_rgb_float(array, name)
    return resize_max_side(image, max_side) if max_side else image


def save_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Saves float RGB (or grey) ``[H, W, 3]`` in [0, 1] as an 8-bit PNG (values clipped)."""
    a = np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(a).save(path)


def side_by_side(
    images: Sequence[np.ndarray],
    height: int | None = None,
    pad: int = 4,
    keep_size: bool = False,
) -> np.ndarray:
    """Places RGB images ``[H_i, W_i, 3]`` in one row, each resized to ``height`` (default:
    the tallest), separated by ``pad`` white pixels; float32 in [0, 1]. With ``keep_size``
    each keeps its own size (top-aligned, white below), so that scales compare."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    images = [to_rgb_float(np.clip(np.asarray(im, np.float32), 0.0, 1.0)) for im in images]
    height = height or max(im.shape[0] for im in images)
    rows = []
    for im in images:
        h, w = im.shape[:2]
        rows.append(im if keep_size else resize(im, height, max(1, round(w * height / h))))
    height = max(r.shape[0] for r in rows)
    total = sum(r.shape[1] for r in rows) + pad * (len(rows) + 1)
    canvas = np.ones((height + 2 * pad, total, 3), np.float32)
    x = pad
    for r in rows:
        canvas[pad : pad + r.shape[0], x : x + r.shape[1]] = r
        x += r.shape[1] + pad
    return canvas
