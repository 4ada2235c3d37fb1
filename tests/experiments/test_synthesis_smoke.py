"""End to end: the style-transfer and texture-synthesis experiments run their --smoke configs,
write their pictures and results, leave a finished folder untouched on a rerun, continue it
with more steps, and refuse (touching nothing) a different config or a missing painting."""

import hashlib
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is a top-level folder, not an installed package.
    sys.path.insert(0, str(ROOT))

from experiments import style_transfer, texture_synthesis
from gen_jax.data import images


def _snapshot(workdir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }


def _assert_png(path: Path):
    assert path.is_file(), f"missing {path.name}"
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 8, path


def _check_rerun_continue_refuse(module, workdir: Path, changed: tuple[str, str]):
    argv = ["--workdir", str(workdir), "--smoke"]
    smoke = module.get_smoke_config()
    before = _snapshot(workdir)

    # Same config: the finished run is returned, nothing is rewritten.
    again = module.main(argv)
    assert again == json.loads((workdir / "results.json").read_text())
    assert _snapshot(workdir) == before

    # More steps: continues from result.npy, keeps the first run's start.
    more = module.main(argv + ["--steps", str(smoke.steps + 2)])
    assert more["steps"] == smoke.steps + 2 and more["steps_this_session"] == 2
    assert more["style_loss_start"] == again["style_loss_start"]
    steps = [
        json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(smoke.chunk_steps, smoke.steps + 3, smoke.chunk_steps))

    # Fewer steps, or another model: refused before anything changes.
    before = _snapshot(workdir)
    with pytest.raises(ValueError, match="steps"):
        module.main(argv + ["--steps", "1"])
    option, value = changed
    with pytest.raises(ValueError, match=option):
        module.main(argv + ["--steps", str(smoke.steps + 2), f"--{option}", value])
    assert _snapshot(workdir) == before


def test_style_transfer_smoke(tmp_path):
    workdir = tmp_path / "style"
    results = style_transfer.main(["--workdir", str(workdir), "--smoke"])
    for name in ("content.png", "style.png", "result.png", "comparison.png", "curves.png"):
        _assert_png(workdir / name)
    assert (workdir / "result.npy").is_file() and (workdir / "config.json").is_file()
    assert results["steps"] == results["steps_this_session"] == 4
    assert results["style_loss_end"] < results["style_loss_start"]
    assert results["style_loss_ratio"] == pytest.approx(
        results["style_loss_start"] / results["style_loss_end"]
    )
    assert results["start"]["content"] == pytest.approx(0.0, abs=1e-3)  # starts at the content
    _check_rerun_continue_refuse(style_transfer, workdir, ("beta", "7"))


def test_style_transfer_missing_painting_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_OPENCV_SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("GEN_JAX_DATA", str(tmp_path / "none"))
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="fetch_opencv_data.sh"):
        style_transfer.main(["--workdir", str(workdir), "--smoke", "--style", "starry_night"])
    assert not workdir.exists()


def test_style_transfer_vgg19_without_weights_is_refused(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="--weights"):
        style_transfer.main(["--workdir", str(workdir), "--smoke", "--net", "vgg19"])
    assert not workdir.exists()


def test_texture_synthesis_smoke(tmp_path):
    workdir = tmp_path / "texture"
    results = texture_synthesis.main(["--workdir", str(workdir), "--smoke"])
    for name in ("source.png", "result.png", "comparison.png", "spectrum.png", "curves.png"):
        _assert_png(workdir / name)
    assert results["source"] == "brick" and results["result_shape"] == [16, 16, 3]
    assert results["source_shape"] == [32, 32, 3]  # larger than the result: a crop exists
    assert results["style_loss_end"] < results["style_loss_start"]
    for key in ("histogram_w1", "spectrum_rms_log10"):
        assert results[key] >= 0.0 and results[f"shuffled_{key}"] >= 0.0
        assert results[f"crop_{key}"] >= 0.0
    assert results["shuffled_histogram_w1"] < 0.02  # the source's own pixels
    # Both images at their own size: the 32 px source beside the 16 px result.
    with Image.open(workdir / "comparison.png") as image:
        assert image.size == (4 + 32 + 4 + 16 + 4, 4 + 32 + 4)
    _check_rerun_continue_refuse(texture_synthesis, workdir, ("ms_features", "4"))


def test_texture_synthesis_all_sources(tmp_path):
    workdir = tmp_path / "textures"
    argv = ["--workdir", str(workdir), "--smoke", "--source", "all", "--steps", "2"]
    results = texture_synthesis.main(argv)
    assert sorted(results["sources"]) == sorted(texture_synthesis.TEXTURES)
    for name in texture_synthesis.TEXTURES:
        _assert_png(workdir / name / "result.png")
        saved = json.loads((workdir / name / "results.json").read_text())
        assert saved == results["sources"][name]
    ratios = [r["style_loss_ratio"] for r in results["sources"].values()]
    assert results["mean_style_loss_ratio"] == pytest.approx(sum(ratios) / len(ratios))
    _assert_png(workdir / "spectra.png")
    # Each 32 px source then its 16 px result, at their own sizes, in one row.
    with Image.open(workdir / "textures.png") as image:
        assert image.size == (4 + 3 * (32 + 4 + 16 + 4), 4 + 32 + 4)


def test_texture_synthesis_unknown_source_is_refused(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="marble"):
        texture_synthesis.main(["--workdir", str(workdir), "--smoke", "--source", "marble"])
    assert not workdir.exists()
