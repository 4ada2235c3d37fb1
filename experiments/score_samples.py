"""Scores a file of generated 28x28 samples against a dataset's held-out images.

    python -m experiments.score_samples --samples samples.npz --dataset fashion_mnist
    python -m experiments.score_samples --samples s.npz --key x --dataset stacked_mnist \\
        --out scores.json

The samples are an array in an .npz (or .npy) file: uint8 pixels in [0, 255] or floats in
[-1, 1], shaped [N, 28, 28], [N, 28, 28, 1] or, for stacked MNIST, [N, 28, 28, 3]. They
are scored with `gen_jax.metrics.evaluate.score_images` against

* fashion_mnist: the 10,000 Fashion-MNIST test images, in the features of the shipped
  Fashion-MNIST classifier (keys ``fmnist_cnn/...``);
* mnist: the 1,000 held-out digits of the MNIST subset, in the features of the shipped
  MNIST classifier (``mnist_cnn/...``);
* stacked_mnist: 10,000 stacked samples of those held-out digits, with the stacked-MNIST
  mode count and KL (``stacked_mnist/...``) besides the feature metrics.

The scores (and how they were made) are printed as JSON and, with --out, written to a
file; an existing --out file is never replaced unless --overwrite is given. See
docs/metrics_calibration.md for what values of each metric mean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from gen_jax.config import main_guard, write_json_atomic
from gen_jax.metrics.evaluate import REFERENCE_DATASETS, score_images

# What reading a damaged .npy/.npz raises inside numpy and zipfile: bad headers (ValueError,
# OSError, BadZipFile, UnicodeDecodeError in a member name; TypeError and TokenError from
# the parse of a mangled .npy header dict), a bad CRC or a cut or damaged deflate stream,
# found only when an array is read (BadZipFile, EOFError, zlib.error), and from flipped
# zip flag bits "encrypted" (RuntimeError) or unknown methods (NotImplementedError).
_DAMAGED = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    TypeError,
    tokenize.TokenError,
)


def load_samples(path: str, key: str | None = None) -> tuple[np.ndarray, str]:
    """Reads the sample array of an .npz (or .npy) file.

    Args:
      path: the file.
      key: the array's name in an .npz; None: "images" if present, else the only array.

    Returns:
      (array, the name it was read under).

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a NumPy file, is damaged (a bad CRC, a cut or corrupt
        array, a header declaring more than fits in memory), holds pickled objects, or
        `key` is missing or ambiguous. The message names `path`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--samples {path}: no such file")
    with _reading(path, "expected an .npz or .npy file, found"):
        loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        if key is not None:
            raise ValueError(f"--key {key!r}: {path} is an .npy file holding a single array")
        return loaded, "(npy)"
    with loaded as npz:
        names = list(npz.files)
        if key is None:
            if "images" in names:
                key = "images"
            elif len(names) == 1:
                key = names[0]
            else:
                raise ValueError(f"--samples {path}: holds arrays {names}; choose one with --key")
        if key not in names:
            raise ValueError(f"--key {key!r}: expected one of the arrays in {path}: {names}")
        # The array is read (and its CRC checked) only here: NpzFile is lazy.
        with _reading(path, f"array {key!r} is damaged"):
            array = npz[key]
    if not isinstance(array, np.ndarray):  # a zip member that is not an .npy file
        raise ValueError(f"--samples {path}: {key!r} is not a NumPy array (.npy) member")
    return array, key


@contextlib.contextmanager
def _reading(path: str, what: str) -> Iterator[None]:
    """Turns what numpy and zipfile raise on a damaged file into a ValueError naming it."""
    try:
        yield
    except MemoryError as e:  # numpy allocates an array's declared shape before reading it
        raise ValueError(
            f"--samples {path}: an array header declares more than fits in memory (a damaged "
            f"file?): {e}"
        ) from e
    except _DAMAGED as e:
        raise ValueError(f"--samples {path}: {what}: {e}") from e


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", required=True, help=".npz (or .npy) file of samples")
    parser.add_argument("--key", default=None, help="array name in the .npz (default: images)")
    parser.add_argument("--dataset", required=True, choices=sorted(REFERENCE_DATASETS))
    parser.add_argument(
        "--num_real", type=int, default=None, help="reference images (default: the whole set)"
    )
    parser.add_argument("--out", default=None, help="JSON file to write the scores to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--seed", type=int, default=0, help="reference subset and KID subsets")
    parser.add_argument("--kid_subsets", type=int, default=100)
    parser.add_argument("--kid_subset_size", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=500, help="images per classifier call")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)

    # Every check a user can fail comes before the (slow) scoring.
    if args.out is not None:
        if os.path.isdir(args.out):
            parser.error(f"--out {args.out}: is a directory; expected a JSON file path")
        if os.path.exists(args.out) and not args.overwrite:
            parser.error(f"--out {args.out}: exists; pass --overwrite to replace it")
    if args.num_real is not None and args.num_real < 6:
        parser.error(f"--num_real: expected at least 6, found {args.num_real}")
    try:
        samples, key = load_samples(args.samples, args.key)
        scores = score_images(
            samples,
            reference=args.dataset,
            num_real=args.num_real,
            key=jax.random.PRNGKey(args.seed),
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            batch_size=args.batch_size,
        )
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    results = {
        **scores,
        "samples": os.path.abspath(args.samples),
        "key": key,
        "dataset": args.dataset,
        "classifier": REFERENCE_DATASETS[args.dataset],
        "seed": args.seed,
        "command": shlex.join(["python", "-m", "experiments.score_samples", *argv]),
    }
    print(json.dumps(results, indent=2))
    if args.out is not None:
        out_dir = os.path.dirname(args.out)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        if os.path.exists(args.out) and not args.overwrite:  # appeared while scoring
            parser.error(f"--out {args.out}: exists; pass --overwrite to replace it")
        write_json_atomic(args.out, results)
        print(f"wrote {args.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main_guard(main, sys.argv[1:])
