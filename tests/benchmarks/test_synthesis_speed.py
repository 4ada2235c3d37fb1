"""Tests for benchmarks/synthesis_speed.py: a tiny run end to end, its command line, and
what it adds to the rows.

No timing assertions: the numbers only have to exist and be positive and finite.
"""

import json
import math
import pathlib
import types

import numpy as np
import pytest

from benchmarks import report, synthesis_check, synthesis_speed, synthesis_work, torch_reference

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
            assert check["loss_rel_diff"] < synthesis_check.CHECK_RTOL
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
    saved = json.loads(pathlib.Path(report.json_path(str(out))).read_text())
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


def test_resolve_spreads_iterations_over_sizes():
    cfg = synthesis_speed.BenchConfig(sizes=(32, 64), iterations=(3,)).resolve()
    assert cfg.iterations == (3, 3)
    cfg = synthesis_speed.BenchConfig(sizes=(256, 512)).resolve()
    assert len(cfg.iterations) == 2 and cfg.iterations[0] >= cfg.iterations[1] >= 2


def test_each_finished_size_is_saved_before_the_next(tmp_path, monkeypatch):
    """A run cut short (a time limit) keeps the sizes it finished: --out is rewritten,
    marked partial, after every size but the last."""
    out = tmp_path / "synthesis.md"
    saved = []
    real_write = report.write_text

    def spy(path, text):
        real_write(path, text)
        if path == str(out):
            saved.append(text)

    monkeypatch.setattr(report, "write_text", spy)
    argv = ["--sizes", "16,32", "--iterations", "1", "--repeats", "1", "--no-torch"]
    result = synthesis_speed.main(argv + ["--out", str(out)])
    assert len(saved) == 2
    assert "PARTIAL RESULT: sizes 32 px not measured yet." in saved[0]
    assert "| 16 | gen_jax" in saved[0] and "| 32 | gen_jax" not in saved[0]
    assert "PARTIAL" not in saved[1] and out.read_text() == saved[1]
    assert [row["size"] for row in result["rows"]] == [16, 32]
    assert not any("PARTIAL" in note for note in result["notes"])


class _StandInLoss:
    """In place of `torch_reference.TorchStyleLoss`: images stay numpy, targets recorded."""

    device = types.SimpleNamespace(type="cpu")

    def __init__(self, jax_loss, params, **kwargs):
        self.jax_loss, self.kwargs, self.targets = jax_loss, kwargs, []

    def image(self, hwc):
        return np.asarray(hwc)

    def set_target_images(self, content, style, highest=True):
        self.targets.append((content.shape, highest))


def test_the_reference_rows_and_checks_with_a_stand_in_for_torch(monkeypatch, tmp_path):
    """The PyTorch side's plumbing where torch is missing: its runner is timed beside
    gen_jax's, its row is the ratios' reference, and every algorithm gets its check."""
    facts = {"version": "0.0-stand-in", "device": "cpu", "num_threads": 1}
    made, optimized = [], []

    def stand_in_loss(jax_loss, params, **kwargs):
        made.append(_StandInLoss(jax_loss, params, **kwargs))
        return made[-1]

    def optimize_style(loss, x0, *, optimizer, steps, highest, **kwargs):
        optimized.append((x0.shape, optimizer, steps, highest, kwargs))
        return {"iterations": steps, "evaluations": steps + 1, "loss_start": 2.0, "loss_end": 1.0}

    def references(jax_loss, params, torch_loss, size, seed):
        # gen_jax's own evaluation as both references: every check passes exactly.
        content, style, image = synthesis_check.check_image(size, seed)
        targets = synthesis_work.jax_targets(jax_loss, params, content, style, "highest")
        value, grad = synthesis_check.jax_loss_and_grad(jax_loss, image, params, *targets)
        return {"torch": (value, np.float64(grad)), "float64": (value, np.float64(grad))}

    monkeypatch.setattr(torch_reference, "torch_importable", lambda: True)
    monkeypatch.setattr(torch_reference, "torch_device", lambda notes, **kw: ("cpu", facts))
    monkeypatch.setattr(torch_reference, "style_loss_like", stand_in_loss)
    monkeypatch.setattr(torch_reference, "optimize_style", optimize_style)
    monkeypatch.setattr(synthesis_speed, "check_references", references)
    out = tmp_path / "synthesis.md"
    argv = ["--sizes", "16", "--iterations", "1", "--repeats", "2", "--check_size", "16"]
    result = synthesis_speed.main(argv + ["--conv-algorithm", "direct,auto", "--out", str(out)])

    keys = [row["key"] for row in result["rows"]]
    assert keys == ["gen_jax[direct]", "gen_jax[auto]", "torch_eager"]
    (loss,) = made
    assert loss.kwargs == {"device": "cpu", "channels_last": True}
    assert loss.targets == [((16, 16, 3), True)]
    # Two warm-up iterations at most (here the one asked for), then one run per repeat.
    assert [o[2] for o in optimized] == [1, 1, 1] and optimized[0][1] == "lbfgs"
    assert optimized[0][4] == {"history_size": 10, "max_linesearch_steps": 25,
                               "learning_rate": 0.02}  # fmt: skip
    torch_row = result["rows"][-1]
    assert torch_row["speedup_iterations"] == 1.0 and torch_row["evaluations"] == 2
    assert len(torch_row["repeat_seconds"]) == 2 and "first_call_s" in torch_row
    assert all(_positive_finite(r["speedup_evaluations"]) for r in result["rows"])
    assert [c["conv_algorithm"] for c in result["checks"]] == ["direct", "auto"]
    assert all(c["passed"] for c in result["checks"])
    table = out.read_text()
    assert "Equal-work check (passed)" in table and "| loss (conv auto) |" in table
    assert "- PyTorch 0.0-stand-in on cpu, 1 CPU threads (its default)" in table
    assert "16 px PyTorch warm-up" in table
    assert json.loads(pathlib.Path(report.json_path(str(out))).read_text())["checks"]
