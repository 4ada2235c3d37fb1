"""benchmarks.synthesis_report: the tuned convolutions' table, and saved results rendering
again from their JSON."""

import json
import pathlib

import pytest

from benchmarks import synthesis_report, synthesis_speed

_BENCH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bench"


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
    lines = synthesis_report.format_conv_choices(choices)
    header = next(line for line in lines if line.startswith("| input NHWC"))
    assert "| direct | winograd2, data first |" in header
    row = next(line for line in lines if line.startswith("| 1x16x16x64"))
    assert "| 64 -> 128 | winograd4, kernel first | 2.00 | 5.00 |" in row
    assert row.endswith("| 5.00 | *failed* | 1.00 | |")  # no deviations from the fake
    assert "out of memory" in choices[0]["failed"]["winograd4, data first"]
    # The 2x2 map has no tile-4 candidates: its cells are left empty.
    assert next(line for line in lines if line.startswith("| 1x2x2x8")).endswith("| | | |")
    measured = dict(choices[0], deviation={"winograd2, data first": 3e-7, "winograd4": 2.5e-6})
    (row,) = [r for r in synthesis_report.format_conv_choices([measured]) if r.startswith("| 1x1")]
    assert row.endswith("| 2.5e-06 |")
    assert synthesis_report.format_conv_choices([]) == []
    skipped = dict(choices[1], skipped="the tuning budget of 0 s was spent (0.0 s)")
    (row,) = [r for r in synthesis_report.format_conv_choices([skipped]) if r.startswith("| 1x2")]
    assert "| direct (auto's rule: tuning budget spent) |" in row


def test_a_saved_result_renders_its_checks_and_tuned_convolutions():
    """docs/bench/synthesis_check_cpu.json: every gen_jax algorithm's check, PyTorch's
    rows and the tuning table, from the JSON alone."""
    result = json.loads((_BENCH / "synthesis_check_cpu.json").read_text())
    text = synthesis_speed.format_markdown(result)  # the benchmark's own path
    assert text == synthesis_report.format_markdown(result)
    lines = text.splitlines()
    assert lines[0] == "## Gatys style transfer through VGG19, L-BFGS"
    assert lines[2].startswith("| size | implementation | iterations | evaluations |")
    assert lines[3] == "|---:|---|" + "---:|" * 10
    assert all(f"| {row['name']} |" in text for row in result["rows"])
    assert text.count("| PyTorch eager |") == 1 and "x | " in lines[4]
    for check in result["checks"]:
        label = f"(conv {check['conv_algorithm']})"
        assert f"| gradient, relative L2 {label} | | | | " in text
        assert f"| pixels off (of {check['pixels']}) {label} | " in text
    assert "| input NHWC | C -> K | chosen |" in text
    assert "\n- PyTorch " in text and "\n- environment: " in text
    assert text.endswith(f"- {result['notes'][-1]}\n")


def test_a_result_without_pytorch_has_no_checks_and_no_ratios():
    result = json.loads((_BENCH / "synthesis_check_cpu.json").read_text())
    result = dict(
        result,
        rows=[dict(r, speedup_iterations=None, speedup_evaluations=None)
              for r in result["rows"] if r["key"] != "torch_eager"],
        check=None,
        checks=[],
        conv_choices=[],
        notes=["PyTorch rows skipped: `import torch` failed."],
        device={k: v for k, v in result["device"].items() if k != "torch"},
    )  # fmt: skip
    text = synthesis_report.format_markdown(result)
    assert "Equal-work check" not in text and "| n/a | n/a |" in text
    assert "PyTorch warm-up" not in text and "\n- PyTorch 2" not in text


@pytest.mark.parametrize("several", [False, True])
def test_the_check_table_labels_algorithms_only_when_there_are_several(several):
    check = {
        "conv_algorithm": "auto", "size": 16, "pixels": 256, "passed": True,
        "loss_gen_jax": 1.0, "loss_torch": 1.0, "loss_float64": 1.0, "loss_rel_diff": 0.0,
        "loss_error_gen_jax": 0.0, "loss_error_torch": 0.0, "grad_rel_l2_diff": 1e-6,
        "grad_error_gen_jax": 1e-6, "grad_error_torch": 2e-6, "rtol": 1e-4, "grad_rtol": 1e-3,
        "pixels_off_gen_jax": 0, "pixels_off_box_gen_jax": None,
        "pixels_off_torch": 2, "pixels_off_box_torch": [1, 2, 3, 3],
    }  # fmt: skip
    checks = [check, dict(check, conv_algorithm="direct", passed=False)] if several else [check]
    lines = synthesis_report.format_checks(checks, rows=[])
    status = "FAILED" if several else "passed"
    assert lines[0].startswith(f"Equal-work check ({status})")
    label = " (conv auto)" if several else ""
    assert f"| pixels off (of 256){label} | 0 | 2 (rows 1-2, columns 3-3) | | | | |" in lines
    assert ("| loss (conv direct) FAILED |" in "\n".join(lines)) is several
