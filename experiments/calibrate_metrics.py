"""Calibrates the classifier-feature metrics: what real, corrupted and mode-dropped data score.

    python -m experiments.calibrate_metrics --out docs/metrics_calibration.md

A metric value means little without its scale. This script scores known sets of images
against the 10,000 Fashion-MNIST test images in the feature space of the shipped
Fashion-MNIST classifier (`gen_jax.metrics.evaluate.score_images`):

* ``floor``: real training images (10,000 drawn), the best a generator can do;
* ``blur_s1``, ``blur_s2``: those same images blurred (Gaussian, sigma = 1 and 2 pixels),
  a loss of sharpness with every mode kept;
* ``single_class``: the 6,000 training images of class 0 (T-shirt/top), total mode
  dropping with perfect samples; ``half_classes``: classes 0-4 only (10,000 drawn);
* ``noise``: i.i.d. Gaussian pixels with the training set's pixel mean and standard
  deviation, clipped to [-1, 1];
* ``mix_noise``: half ``floor`` images, half ``noise`` images, shuffled.

It also measures the stacked-MNIST floor: the modes and KL that 26,000 real stacked
samples get with the shipped MNIST classifier, beside the sampling floor (K - 1) / (2N).

It writes a Markdown report (the table, the ordering checks, the command, date, device and
run time) to --out and the numbers to the .json beside it, and checks the orderings a
sound metric must show (`check_orderings`), printing every violation loudly; with
--strict a violation also makes the exit status 1. Everything is seeded (--seed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from typing import Any

import jax
import numpy as np
import scipy.ndimage

from gen_jax.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from gen_jax.metrics.evaluate import score_images, to_model_range
from gen_jax.metrics.features import extract_features
from gen_jax.metrics.frechet import frechet_distance
from gen_jax.metrics.stacked_mnist import PACGAN_NUM_SAMPLES, stacked_mnist_floor
from gen_jax.models.classifier import classifier_fn

BLUR_SIGMAS = (1.0, 2.0)
SINGLE_CLASS = 0
HALF_CLASSES = (0, 1, 2, 3, 4)
PREFIX = "fmnist_cnn"

# (name, description) of each row, in table order.
ROWS = (
    ("floor", "real train images"),
    ("blur_s1", "train images, Gaussian blur sigma = 1 px"),
    ("blur_s2", "train images, Gaussian blur sigma = 2 px"),
    ("half_classes", "train images of classes 0-4 only"),
    ("single_class", f"train images of class {SINGLE_CLASS} ({FASHION_MNIST_CLASSES[0]}) only"),
    ("mix_noise", "50% train images, 50% noise images, shuffled"),
    ("noise", "i.i.d. Gaussian pixels (data mean and std), clipped"),
)


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of [N, 28, 28, 1] images over the two spatial axes (edges repeated)."""
    return scipy.ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="nearest")


def corrupted_sets(
    train_images: np.ndarray, train_labels: np.ndarray, num_fake: int, seed: int
) -> dict[str, np.ndarray]:
    """The image sets of the calibration rows, float32 [n, 28, 28, 1] in [-1, 1].

    Args:
      train_images: uint8 [N, 28, 28] Fashion-MNIST training images.
      train_labels: their classes [N].
      num_fake: images per set (the single class has at most its 6,000).
      seed: the NumPy seed of every draw.

    Returns:
      {row name: images}, names as in `ROWS`.
    """
    rng = np.random.default_rng(seed)

    def draw(indices: np.ndarray, num: int) -> np.ndarray:
        return to_model_range(train_images[np.sort(rng.choice(indices, num, replace=False))])

    everything = np.arange(len(train_images))
    floor = draw(everything, num_fake)
    sets = {"floor": floor}
    for sigma in BLUR_SIGMAS:
        sets[f"blur_s{sigma:g}"] = _blur(floor, sigma)
    one = np.flatnonzero(train_labels == SINGLE_CLASS)
    sets["single_class"] = draw(one, min(num_fake, len(one)))
    sets["half_classes"] = draw(np.flatnonzero(np.isin(train_labels, HALF_CLASSES)), num_fake)
    # The pixel statistics of the whole training set, on the [-1, 1] scale.
    pixels = train_images.astype(np.float64)
    mean = float(pixels.mean() - 127.5) / 127.5
    std = float(pixels.std()) / 127.5
    noise = np.clip(rng.normal(mean, std, size=floor.shape), -1, 1).astype(np.float32)
    sets["noise"] = noise
    half_n = num_fake // 2
    # Shuffled, as a generator's i.i.d. samples would be: the classifier score's parts are
    # consecutive rows, and unshuffled they would be pure real or pure noise.
    mix = np.concatenate([floor[:half_n], noise[half_n:]])
    sets["mix_noise"] = mix[rng.permutation(len(mix))]
    return {name: sets[name] for name, _ in ROWS}


def fashion_mnist_rows(
    num_real: int = 10_000,
    num_fake: int = 10_000,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Scores every calibration set against the Fashion-MNIST test images.

    Args:
      num_real: test images in the reference (10,000: all).
      num_fake: images per scored set.
      kid_subsets, kid_subset_size: KID subsets.
      seed: seeds the draws (NumPy) and the reference subset and KID subsets (JAX).
      verbose: print each row as it is scored.

    Returns:
      One dict per row of `ROWS`: {"name", "description", plus `score_images`' keys}.
    """
    test_images, _ = load_fashion_mnist("test")
    train_images, train_labels = load_fashion_mnist("train")
    real = to_model_range(test_images)
    sets = corrupted_sets(train_images, train_labels, num_fake, seed)
    rows = []
    for name, description in ROWS:
        t0 = time.perf_counter()
        scores = score_images(
            sets[name],
            reference=real,
            classifier="fashion_mnist",
            num_real=num_real,
            key=jax.random.PRNGKey(seed),  # The same reference subset for every row.
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
        )
        rows.append({"name": name, "description": description, **scores})
        if verbose:
            print(
                f"  {name:13s} frechet {scores[PREFIX + '/frechet']:9.3f}  "
                f"precision {scores[PREFIX + '/precision']:.3f}  "
                f"recall {scores[PREFIX + '/recall']:.3f}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return rows


def per_class_frechet(num_real: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Fréchet distance of each single class of training images to the test images."""
    test_images, _ = load_fashion_mnist("test")
    train_images, train_labels = load_fashion_mnist("train")
    classify = classifier_fn("fashion_mnist")

    def features(images):
        return extract_features(lambda x: classify(x)["features"], to_model_range(images), 500)

    rng = np.random.default_rng(seed)
    real = features(test_images[np.sort(rng.permutation(len(test_images))[:num_real])])
    mu_r, sigma_r = real.mean(0), np.cov(real, rowvar=False)
    out = {}
    for c, name in enumerate(FASHION_MNIST_CLASSES):
        f = features(train_images[train_labels == c])
        out[name] = frechet_distance(mu_r, sigma_r, f.mean(0), np.cov(f, rowvar=False))
    return out


def _get(rows: list[dict[str, Any]], name: str, key: str) -> float:
    (row,) = [r for r in rows if r["name"] == name]
    return float(row[key])


def check_orderings(rows: list[dict[str, Any]]) -> list[str]:
    """The orderings a sound metric shows on the calibration rows; returns the violations.

    * Fréchet and KID: floor < blur sigma 1 < blur sigma 2 < single class < noise, and
      floor < half classes < single class; floor < 50/50 mix < noise;
    * mode dropping: the single class's recall and coverage fall below half the floor's,
      while its precision stays above 0.8 times the floor's;
    * noise: precision below 0.1; the 50/50 mix's precision between the noise's and the
      floor's minus 0.25;
    * classifier score: the floor scores higher than the single class, the noise and the
      blur sigma = 2 images.

    Args:
      rows: as returned by `fashion_mnist_rows`.

    Returns:
      A list of human-readable violations, empty when all orderings hold.
    """
    violations = []

    def chain(key: str, names: tuple[str, ...]) -> None:
        values = [_get(rows, n, key) for n in names]
        for (a, va), (b, vb) in zip(zip(names, values), zip(names[1:], values[1:])):
            if not va < vb:
                violations.append(f"{key}: expected {a} ({va:.4g}) < {b} ({vb:.4g})")

    for metric in ("frechet", "kid_mean"):
        key = f"{PREFIX}/{metric}"
        chain(key, ("floor", "blur_s1", "blur_s2", "single_class", "noise"))
        chain(key, ("floor", "half_classes", "single_class"))
        chain(key, ("floor", "mix_noise", "noise"))

    def check(ok: bool, text: str) -> None:
        if not ok:
            violations.append(text)

    p, r, cov = (f"{PREFIX}/{m}" for m in ("precision", "recall", "coverage"))
    floor_p, floor_r, floor_c = (_get(rows, "floor", k) for k in (p, r, cov))
    single_p, single_r, single_c = (_get(rows, "single_class", k) for k in (p, r, cov))
    check(
        single_r < 0.5 * floor_r, f"{r}: single class {single_r:.3f} >= 0.5 * floor {floor_r:.3f}"
    )
    check(
        single_c < 0.5 * floor_c, f"{cov}: single class {single_c:.3f} >= 0.5 * floor {floor_c:.3f}"
    )
    check(
        single_p > 0.8 * floor_p, f"{p}: single class {single_p:.3f} <= 0.8 * floor {floor_p:.3f}"
    )
    noise_p, mix_p = _get(rows, "noise", p), _get(rows, "mix_noise", p)
    check(noise_p < 0.1, f"{p}: noise {noise_p:.3f} >= 0.1")
    check(
        noise_p < mix_p < floor_p - 0.25,
        f"{p}: expected noise {noise_p:.3f} < mix {mix_p:.3f} < floor - 0.25 {floor_p - 0.25:.3f}",
    )
    cs = "classifier_score_mean"
    for other in ("single_class", "noise", "blur_s2"):
        floor_cs, other_cs = _get(rows, "floor", cs), _get(rows, other, cs)
        check(
            other_cs < floor_cs, f"{cs}: expected {other} ({other_cs:.3f}) < floor ({floor_cs:.3f})"
        )
    return violations


def stacked_rows(seed: int = 0) -> list[dict[str, Any]]:
    """`stacked_mnist_floor` of 26,000 real stacked samples: held-out digits, then all."""
    rows = []
    for split in ("heldout", "all"):
        stats = stacked_mnist_floor(num_samples=PACGAN_NUM_SAMPLES, split=split, seed=seed)
        rows.append({"split": split, **stats})
    return rows


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown document of a calibration report (as written to --out)."""
    rows = report["fashion_mnist"]
    lines = [
        "# Calibration of the classifier-feature metrics",
        "",
        "Generated by `experiments/calibrate_metrics.py`; do not edit by hand.",
        "",
        f"- command: `{report['command']}`",
        (
            f"- date: {report['date']}; device: {report['device']}; run time: "
            f"{report['seconds']:.0f} s"
        ),
        f"- classifier: {report['classifier']}",
        f"- seed: {report['seed']}",
        "",
        "## Fashion-MNIST, features of the shipped classifier (`fmnist_cnn`)",
        "",
        (
            f"Reference: {rows[0]['num_real']:,} Fashion-MNIST test images. Each row scores a set "
            "of images against it with `gen_jax.metrics.evaluate.score_images`: Fréchet distance "
            "of the 128-d penultimate features, KID (unbiased cubic-kernel MMD², "
            f"{report['kid_subsets']} subsets of {report['kid_subset_size']}, mean ± std over "
            "the subsets), improved precision and recall (k = 3), density and coverage "
            "(k = 5), and the classifier score (Inception-score formula on the classifier's "
            f"logits, 10 parts). The real test images themselves have a classifier score of "
            f"{rows[0]['real_classifier_score_mean']:.2f} ± "
            f"{rows[0]['real_classifier_score_std']:.2f}."
        ),
        "",
        "| set | N | Fréchet | KID | precision | recall | density | coverage | classifier score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = {k.removeprefix(PREFIX + "/"): v for k, v in row.items()}.__getitem__
        lines.append(
            f"| `{row['name']}`: {row['description']} | {row['num_samples']:,} | "
            f"{_fmt(m('frechet'), 2)} | {m('kid_mean'):.3f} ± {m('kid_std'):.3f} | "
            f"{_fmt(m('precision'))} | {_fmt(m('recall'))} | {_fmt(m('density'))} | "
            f"{_fmt(m('coverage'))} | {row['classifier_score_mean']:.2f} ± "
            f"{row['classifier_score_std']:.2f} |"
        )
    lines += [
        "",
        (
            "Corruptions: blur is `scipy.ndimage.gaussian_filter` on the [-1, 1] images with "
            "edges repeated; noise pixels are i.i.d. N(mean, std²) with the training set's pixel "
            "mean and standard deviation, clipped to [-1, 1]; the single class draws its images "
            "from the 6,000 training images of T-shirt/top (all of them when N > 6,000); "
            "`mix_noise` is the first half of the `floor` images and the second half of the "
            "`noise` images, shuffled."
        ),
        "",
        (
            "The features are the classifier's unnormalised 128-d ReLU activations, not "
            "Inception-v3's 2048-d pool features: these values are on their own scale and "
            "cannot be compared with published FID or KID numbers, only with each other and "
            "with a generator scored by the same classifier (`score_images`, "
            "`experiments/score_samples.py`, the DCGAN experiment's results.json)."
        ),
        "",
        "### Ordering checks",
        "",
    ]
    if report["violations"]:
        lines.append("**Violated:**")
        lines.append("")
        lines += [f"- {v}" for v in report["violations"]]
    else:
        lines.append("All orderings hold:")
    lines += [
        "",
        (
            "- Fréchet and KID: floor < blur σ=1 < blur σ=2 < single class < noise; "
            "floor < half classes < single class; floor < 50/50 mix < noise;"
        ),
        (
            "- mode dropping: single-class recall and coverage < 0.5 × the floor's, precision "
            "> 0.8 × the floor's;"
        ),
        "- noise precision < 0.1; noise precision < mix precision < floor precision − 0.25;",
        "- classifier score: single class, noise and blur σ=2 below the floor.",
        "",
    ]
    if report.get("per_class_frechet"):
        lines += [
            "### Fréchet distance of each single class",
            "",
            (
                "All training images of one class against the test images: how far total mode "
                "dropping lands, class by class."
            ),
            "",
            "| class | Fréchet |",
            "|---|---:|",
        ]
        lines += [f"| {c} | {v:.2f} |" for c, v in report["per_class_frechet"].items()]
        lines.append("")
    if report.get("stacked_mnist"):
        lines += [
            "## Stacked MNIST, the shipped MNIST classifier on each channel",
            "",
            (
                f"{PACGAN_NUM_SAMPLES:,} real stacked samples (three digits of the MNIST subset "
                "drawn uniformly, one per channel), scored like generated ones "
                "(`gen_jax.metrics.stacked_mnist.stacked_mnist_floor`): a generator's KL can only "
                "be compared with these values, not with 0. `heldout` stacks the 1,000 digits "
                "the classifier never saw; `all` stacks all 5,000 (4,000 of which it was trained "
                "on, so it is optimistic)."
            ),
            "",
            (
                "| digits | modes (of 1,000) | KL (nats) | sampling floor (K−1)/(2N) | "
                "all three digits right |"
            ),
            "|---|---:|---:|---:|---:|",
        ]
        for row in report["stacked_mnist"]:
            lines.append(
                f"| {row['split']} | {row['modes']} | {row['kl']:.4f} | "
                f"{row['sampling_floor']:.4f} | {row['mode_accuracy']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _classifier_description() -> str:
    """The shipped classifiers' accuracies and checksums, from their JSON files."""
    from gen_jax.models.classifier import _assets_dir

    parts = []
    for name in ("fashion_mnist", "mnist"):
        path = _assets_dir() / f"{name}.json"
        try:
            doc = json.loads(path.read_text())
            parts.append(
                f"`{name}` (accuracy {doc.get('accuracy', float('nan')):.4f} on "
                f"{doc.get('split', '?')}, sha256 {doc['weights']['sha256'][:12]})"
            )
        except (OSError, KeyError, ValueError):
            parts.append(f"`{name}` (no metadata at {path})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the Markdown report; JSON goes beside it")
    parser.add_argument("--num_real", type=int, default=10_000, help="test images (reference)")
    parser.add_argument("--num_fake", type=int, default=10_000, help="images per scored set")
    parser.add_argument("--kid_subsets", type=int, default=100)
    parser.add_argument("--kid_subset_size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_stacked", action="store_true", help="no stacked-MNIST floor")
    parser.add_argument("--strict", action="store_true", help="exit 1 on an ordering violation")
    args = parser.parse_args(argv)
    if not args.out.endswith(".md"):
        parser.error(f"--out: expected a path ending in .md, found {args.out!r}")
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "experiments.calibrate_metrics", *argv])

    t0 = time.perf_counter()
    print(f"scoring the Fashion-MNIST calibration sets ({args.num_fake} images each)", flush=True)
    rows = fashion_mnist_rows(
        args.num_real,
        args.num_fake,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        seed=args.seed,
        verbose=True,
    )
    per_class = per_class_frechet(args.num_real, args.seed)
    stacked = [] if args.skip_stacked else stacked_rows(args.seed)
    violations = check_orderings(rows)
    device = jax.devices()[0]
    report = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"{device.platform}:{device.device_kind} x{jax.device_count()}",
        "seconds": time.perf_counter() - t0,
        "seed": args.seed,
        "kid_subsets": args.kid_subsets,
        "kid_subset_size": args.kid_subset_size,
        "classifier": _classifier_description(),
        "fashion_mnist": rows,
        "per_class_frechet": per_class,
        "stacked_mnist": stacked,
        "violations": violations,
    }
    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    markdown = render_markdown(report)
    with open(args.out, "w") as f:
        f.write(markdown)
    json_path = args.out[: -len(".md")] + ".json"
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(markdown)
    if violations:
        banner = "!" * 78
        print(f"\n{banner}\nORDERING VIOLATIONS ({len(violations)}):", file=sys.stderr)
        for v in violations:
            print(f"  VIOLATION: {v}", file=sys.stderr)
        print(banner, file=sys.stderr)
    print(f"wrote {args.out} and {json_path} in {report['seconds']:.0f} s")
    if violations and args.strict:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    from gen_jax.config import main_guard

    main_guard(main, sys.argv[1:])
