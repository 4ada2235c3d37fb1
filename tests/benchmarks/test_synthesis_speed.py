"""Tests for benchmarks/synthesis_speed.py: a tiny run end to end, and the PyTorch twin VGG.

No timing assertions: the numbers only have to exist and be positive and finite.
"""

import json
import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# `benchmarks` is a top-level folder of the repository, not part of the installed package.
_REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import synthesis_speed
from gen_jax.models.features.vgg import VGG19, random_vgg_params

try:
    import torch
except ImportError:
    torch = None

TINY_ARGS = ["--sizes", "32", "--iterations", "2", "--repeats", "1", "--check_size", "32"]


def _positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.parametrize("algorithms", [None, "direct,auto"])
def test_main_tiny_run_reports_every_row(tmp_path, algorithms):
    out = tmp_path / "synthesis.md"
    extra = [] if algorithms is None else ["--conv-algorithm", algorithms]
    result = synthesis_speed.main(TINY_ARGS + extra + ["--out", str(out)])

    several = algorithms is not None
    jax_keys = ["gen_jax[direct]", "gen_jax[auto]"] if several else ["gen_jax"]
    expected = jax_keys + (["torch_eager"] if torch else [])
    assert [row["key"] for row in result["rows"]] == expected
    for row in result["rows"]:
        assert row["size"] == 32
        assert row["iterations"] == 2
        assert row["evaluations"] >= 2
        for field in ("iterations_per_s", "evaluations_per_s", "flops_per_eval", "loss_start"):
            assert _positive_finite(row[field]), (row["key"], field, row[field])
        assert math.isfinite(row["loss_end"]) and row["loss_end"] < row["loss_start"]
        if torch:
            assert _positive_finite(row["speedup_iterations"]), row
        else:
            assert row["speedup_iterations"] is None
    assert not any(row["incomplete"] for row in result["rows"])
    assert any(note.startswith("precision: float32") for note in result["notes"])
    jax_rows = result["rows"][: len(jax_keys)]
    # A program an earlier test compiled comes from JAX's cache (compile_s 0).
    assert jax_rows[0]["compile_s"] > 0
    for row in jax_rows:
        assert row["compile_s"] >= 0
        assert row["timed_compile_events"] == 0, "the timed runs recompiled"
        # Counted once per size, with direct convolutions, whichever the algorithm.
        assert row["flops_per_eval"] == jax_rows[0]["flops_per_eval"]
    if several:
        # The algorithms compute the same function: same start loss, ends within rounding.
        direct, auto = jax_rows
        np.testing.assert_allclose(auto["loss_start"], direct["loss_start"], rtol=1e-5)
        np.testing.assert_allclose(auto["loss_end"], direct["loss_end"], rtol=1e-3)
        assert "(one gen_jax row each)" in result["network"]

    if torch:
        checks = result["checks"]
        assert [c["conv_algorithm"] for c in checks] == (
            ["direct", "auto"] if several else ["auto"]
        )
        assert result["check"] == checks[0]
        for check in checks:
            assert check["passed"], check
            assert check["loss_rel_diff"] < synthesis_speed.CHECK_RTOL
            # Both float32 sides near the float64 reference, with no pixel off at 32 px.
            for side in ("gen_jax", "torch"):
                assert check[f"loss_error_{side}"] < 1e-5, check
                assert check[f"grad_error_{side}"] < 1e-4, check
                assert check[f"pixels_off_{side}"] == 0, check
                assert check[f"pixels_off_box_{side}"] is None, check
            assert check["pixels"] == 32 * 32
        # The same function at the same start image on both sides.
        for row in jax_rows:
            np.testing.assert_allclose(
                result["rows"][-1]["loss_start"], row["loss_start"], rtol=1e-4
            )
    else:
        assert result["check"] is None and result["checks"] == []
        assert any("import torch" in note for note in result["notes"])

    table = out.read_text()
    assert "| size | implementation | iterations | evaluations |" in table
    assert all(row["name"] in table for row in result["rows"])
    assert ("Equal-work check (passed)" in table) == bool(torch)
    assert "\n- environment: " in table and "environment" in result["device"]
    if torch and several:
        assert (
            "| loss (conv direct) |" in table and "| gradient, relative L2 (conv auto) |" in table
        )
        assert "| pixels off (of 1024) (conv auto) | 0 | 0 |" in table
        assert "| loss at the start image, 32 px (gen_jax[auto]) |" in table
    saved = json.loads(pathlib.Path(synthesis_speed.json_path(str(out))).read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))


@pytest.mark.parametrize(
    "argv",
    [
        ["--sizes", "8"],
        ["--sizes", "32,64", "--iterations", "1,2,3"],
        ["--optimizer", "sgd"],
        ["--precision", "tf32"],
        ["--conv-algorithm", "fft"],
        ["--conv-algorithm", "auto,fft"],
        ["--conv-algorithm", "auto,auto"],
        ["--conv-algorithm", ","],
        ["--tune-budget-s", "-1"],
        ["--out", "/nonexistent_dir/x.md"],
    ],
)
def test_main_rejects_bad_config_before_running(argv):
    with pytest.raises(SystemExit):
        synthesis_speed.main(argv)


def test_rows_that_stopped_early_are_flagged():
    rows = [
        {"size": 64, "name": "gen_jax", "iterations": 5},
        {"size": 64, "name": "PyTorch eager", "iterations": 1},
        {"size": 128, "name": "PyTorch eager", "iterations": 3},
    ]
    notes = synthesis_speed.mark_incomplete(rows, {64: 5, 128: 3})
    assert [row["incomplete"] for row in rows] == [False, True, False]
    assert len(notes) == 1 and "PyTorch eager at 64 px ran 1 of 5 iterations" in notes[0]


def test_tuned_convolutions_are_reported(monkeypatch):
    from gen_jax.nn.xla_cpu import _tuning as conv_tune

    def fake(choice, x, w, b, pads, precision, limit):
        if choice.name == "winograd4, data first":
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")
        return [{"direct": 2e-3, "winograd4, kernel first": 1e-3}.get(choice.name, 5e-3)], None

    monkeypatch.setattr(conv_tune, "_time_candidate", fake)
    conv_tune.clear_tuning()
    try:
        conv_tune.tuned_choice((1, 16, 16, 64), (3, 3, 64, 128), ((1, 1), (1, 1)), "float32")
        conv_tune.tuned_choice((1, 2, 2, 8), (3, 3, 8, 8), ((1, 1), (1, 1)), "float32")
        choices = synthesis_speed.conv_choices()
    finally:
        conv_tune.clear_tuning()
    assert [c["choice"] for c in choices] == ["winograd4, kernel first", "direct"]
    assert json.loads(json.dumps(choices)) == choices
    lines = synthesis_speed.format_conv_choices(choices)
    header = next(line for line in lines if line.startswith("| input NHWC"))
    assert "| direct | winograd2, data first |" in header
    row = next(line for line in lines if line.startswith("| 1x16x16x64"))
    assert "| 64 -> 128 | winograd4, kernel first | 2.00 | 5.00 |" in row
    assert row.endswith("| 5.00 | *failed* | 1.00 |  |")  # no deviations from the fake
    assert "out of memory" in choices[0]["failed"]["winograd4, data first"]
    # The 2x2 map has no tile-4 candidates: its cells are left empty.
    assert next(line for line in lines if line.startswith("| 1x2x2x8")).endswith("|  |  |  |")
    measured = dict(choices[0], deviation={"winograd2, data first": 3e-7, "winograd4": 2.5e-6})
    (row,) = [r for r in synthesis_speed.format_conv_choices([measured]) if r.startswith("| 1x1")]
    assert row.endswith("| 2.5e-06 |")
    assert synthesis_speed.format_conv_choices([]) == []
    skipped = dict(choices[1], skipped="the tuning budget of 0 s was spent (0.0 s)")
    (row,) = [r for r in synthesis_speed.format_conv_choices([skipped]) if r.startswith("| 1x2")]
    assert "| direct (auto's rule: tuning budget spent) |" in row


def test_resolve_spreads_iterations_over_sizes():
    cfg = synthesis_speed.BenchConfig(sizes=(32, 64), iterations=(3,)).resolve()
    assert cfg.iterations == (3, 3)
    cfg = synthesis_speed.BenchConfig(sizes=(256, 512)).resolve()
    assert len(cfg.iterations) == 2 and cfg.iterations[0] >= cfg.iterations[1] >= 2


def test_json_path():
    assert (
        synthesis_speed.json_path("docs/bench/synthesis_cpu.md") == "docs/bench/synthesis_cpu.json"
    )
    assert synthesis_speed.json_path("out") == "out.json"


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_torch_vgg_matches_gen_jax(pooling):
    """The PyTorch Sequential with converted parameters computes gen_jax's VGG19 maps."""
    params = random_vgg_params(jax.random.key(0), 19)
    layers = ("relu1_1", "relu3_1", "relu5_1")
    x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    module = VGG19(pooling=pooling, preprocessing="none")
    with jax.default_matmul_precision("highest"):
        ours = module.apply({"params": params}, x, outputs=layers)
    net, names = synthesis_speed.build_torch_vgg(jax.device_get(params), pooling, "relu5_1")
    assert names[-1] == "relu5_1" and len(net) == len(names)
    h = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        for name, layer in zip(names, net):
            h = layer(h)
            if name in layers:
                np.testing.assert_allclose(
                    h.numpy().transpose(0, 2, 3, 1), ours[name], rtol=1e-4, atol=1e-4
                )


def _check(**errors):
    check = {"loss_error_gen_jax": 0.0, "loss_error_torch": 0.0}
    check |= {"grad_error_gen_jax": 0.0, "grad_error_torch": 0.0}
    return check | errors


@pytest.mark.parametrize(
    ("errors", "passed"),
    [
        ({}, True),
        # Within the tolerances of float64, whatever PyTorch's error.
        ({"loss_error_gen_jax": 9e-5, "grad_error_gen_jax": 9e-4}, True),
        # gen_jax off, PyTorch exact: fails on either quantity.
        ({"loss_error_gen_jax": 2e-4}, False),
        ({"grad_error_gen_jax": 2e-3}, False),
        # PyTorch's own rounding moved a max-pool choice: gen_jax as close or closer passes.
        ({"grad_error_gen_jax": 2e-3, "grad_error_torch": 3e-3}, True),
        ({"grad_error_gen_jax": 4e-3, "grad_error_torch": 3e-3}, False),
        ({"loss_error_gen_jax": 2e-4, "loss_error_torch": 3e-4}, True),
    ],
)
def test_check_passes_when_gen_jax_is_as_close_to_float64_as_the_tolerance_or_pytorch(
    errors, passed
):
    assert synthesis_speed.check_passed(_check(**errors)) is passed


def test_pixels_off_counts_pixels_beyond_a_fraction_of_the_largest_entry():
    exact = np.zeros((8, 8, 3))
    exact[0, 0, 0] = 10.0  # tolerance 1e-2
    grad = exact.copy()
    grad[1, 1, 2] += 0.02  # one channel of one pixel off
    grad[2, 3] += 0.005  # under the tolerance in every channel
    grad[4, 4, :] -= 1.0  # every channel of another pixel
    assert synthesis_speed.pixels_off(grad, exact) == (2, [1, 4, 1, 4])
    assert synthesis_speed.pixels_off(exact, exact) == (0, None)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_float64_twin_computes_the_float32_objective_in_float64():
    cfg = synthesis_speed.BenchConfig(sizes=(32,), check_size=32).resolve()
    content, style, image = synthesis_speed.check_image(32, 0)
    module, params, _ = synthesis_speed.build_network(cfg, np.stack([content, style]))
    results = {}
    for dtype in ("float32", "float64"):
        _, loss = synthesis_speed._make_losses(
            cfg, module, params, torch.device("cpu"), False, torch_dtype=dtype
        )
        assert all(p.dtype == getattr(torch, dtype) for p in loss.net.parameters())
        loss.set_targets(loss.image(content), loss.image(style))
        assert loss.style_grams["relu1_1"].dtype == getattr(torch, dtype)
        results[dtype] = synthesis_speed.torch_loss_and_grad(loss, image)
    (v32, g32), (v64, g64) = results["float32"], results["float64"]
    assert g32.dtype == g64.dtype == np.float64 and g64.shape == image.shape
    np.testing.assert_allclose(v32, v64, rtol=1e-5)
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-4
    assert v32 != v64  # the float64 twin did not round through float32


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_gram_matches_gen_jax():
    from gen_jax.losses.perceptual import gram_matrix

    f = np.random.default_rng(0).normal(size=(1, 5, 4, 3)).astype(np.float32)  # NHWC
    ours = gram_matrix(jnp.asarray(f), "positions")[0]
    theirs = synthesis_speed.TorchStyleLoss.per_position_gram(
        torch.from_numpy(f.transpose(0, 3, 1, 2).copy())
    )
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_float32_turns_tf32_off_for_the_block_only():
    b = torch.backends

    def settings():
        return b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision

    before = settings()
    with synthesis_speed.torch_float32(torch):
        assert settings() == ("ieee", "ieee")
    assert settings() == before
    with synthesis_speed.torch_float32(torch, enabled=False):
        assert settings() == before


def test_each_finished_size_is_saved_before_the_next(tmp_path, monkeypatch):
    """A run cut short (a time limit) keeps the sizes it finished: --out is rewritten,
    marked partial, after every size but the last."""
    out = tmp_path / "synthesis.md"
    saved = []
    real_write = synthesis_speed.write_text

    def spy(path, text):
        real_write(path, text)
        if path == str(out):
            saved.append(text)

    monkeypatch.setattr(synthesis_speed, "write_text", spy)
    argv = ["--sizes", "16,32", "--iterations", "1", "--repeats", "1", "--no-torch"]
    result = synthesis_speed.main(argv + ["--out", str(out)])
    assert len(saved) == 2
    assert "PARTIAL RESULT: sizes 32 px not measured yet." in saved[0]
    assert "| 16 | gen_jax" in saved[0] and "| 32 | gen_jax" not in saved[0]
    assert "PARTIAL" not in saved[1] and out.read_text() == saved[1]
    assert [row["size"] for row in result["rows"]] == [16, 32]
    assert not any("PARTIAL" in note for note in result["notes"])
