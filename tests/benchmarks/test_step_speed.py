"""Tests for benchmarks/step_speed.py: the tiny config end to end, and the PyTorch twin nets
(`benchmarks.torch_reference`).

No timing assertions: the numbers only have to exist and be positive and finite.
"""

import json
import math
import pathlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import step_speed, torch_reference
from gen_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator

try:
    import torch
except ImportError:
    torch = None

TINY_ARGS = [
    "--image_size", "28", "--batch_size", "8", "--steps", "2", "--chunk", "2",
    "--warmup", "1", "--repeats", "1", "--ngf", "8", "--ndf", "8",
]  # fmt: skip


def _positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_main_tiny_config_reports_every_row(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    result = step_speed.main(TINY_ARGS + ["--out", str(out), "--markdown", str(md)])

    expected = ["gen_jax_step", "gen_jax_chunk"] + (["torch_eager"] if torch else [])
    assert [row["key"] for row in result["rows"]] == expected
    assert _positive_finite(result["flops_per_step"])
    for row in result["rows"]:
        for field in ("ms_per_step", "images_per_s", "achieved_flops_per_s"):
            assert _positive_finite(row[field]), (row["key"], field, row[field])
        assert row["steps_timed"] == 2
        if torch:
            assert _positive_finite(row["speedup_vs_torch_eager"]), row
        else:
            assert row["speedup_vs_torch_eager"] is None
    # The same FLOP count drives every row: achieved FLOP/s ratios are speed ratios.
    step_row = result["rows"][0]
    np.testing.assert_allclose(
        step_row["achieved_flops_per_s"] * step_row["ms_per_step"] / 1e3,
        result["flops_per_step"],
        rtol=1e-9,
    )
    assert "use_ema=False" in " ".join(result["notes"])

    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    table = md.read_text()
    assert "| implementation | ms/step | repeats min-max | images/s | vs PyTorch eager |" in table
    assert all(row["name"] in table for row in result["rows"])


_STAND_INS = []  # every _StandInStep made, in order


class _StandInStep:
    """In place of `torch_reference.DCGANTrainStep`: counts its steps, takes no time."""

    def __init__(self, real_nhwc, **kwargs):
        self.real_shape, self.kwargs, self.steps, self.syncs = real_nhwc.shape, kwargs, 0, 0
        _STAND_INS.append(self)

    def __call__(self):
        self.steps += 1

    def sync(self):
        self.syncs += 1


def test_the_reference_rows_run_through_the_same_runner(monkeypatch, tmp_path):
    """The PyTorch rows' plumbing where torch is missing: a stand-in for the reference's
    update gets the batch, the warm-up and the timed steps, and its row is the ratios'
    reference."""
    facts = {"version": "0.0-stand-in", "device": "cpu", "num_threads": 1}
    monkeypatch.setattr(torch_reference, "torch_importable", lambda: True)
    device = types.SimpleNamespace(type="cpu")
    monkeypatch.setattr(torch_reference, "torch_device", lambda notes, **kw: (device, facts))
    monkeypatch.setattr(torch_reference, "DCGANTrainStep", _StandInStep)
    _STAND_INS.clear()
    md = tmp_path / "bench.md"
    argv = TINY_ARGS + ["--repeats", "2", "--torch-compile", "--markdown", str(md)]
    result = step_speed.main(argv)
    keys = [row["key"] for row in result["rows"]]
    assert keys == ["gen_jax_step", "gen_jax_chunk", "torch_eager", "torch_compile"]
    eager, compiled = _STAND_INS
    assert eager.real_shape == (8, 28, 28, 1) and eager.kwargs["compile_modules"] is False
    assert compiled.kwargs["compile_modules"] is True and eager.kwargs["betas"] == (0.5, 0.999)
    # One untimed first step (warm-up 1), then 2 repeats of 2 steps.
    assert eager.steps == 1 + 2 * 2 and eager.syncs >= 3
    rows = {row["key"]: row for row in result["rows"]}
    assert rows["torch_eager"]["speedup_vs_torch_eager"] == 1.0
    assert rows["torch_eager"]["first_step_s"] >= 0 and "compile_s" not in rows["torch_eager"]
    assert _positive_finite(rows["gen_jax_chunk"]["speedup_vs_torch_eager"])
    assert result["device"]["torch"] == facts
    table = md.read_text()
    assert "- PyTorch 0.0-stand-in on cpu, 1 CPU threads" in table
    assert "torch_eager first step" in table and "| PyTorch, torch.compile |" in table


@pytest.mark.parametrize("argv", [["--image_size", "32"], ["--batch_size", "0"]])
def test_main_rejects_bad_config_before_running(argv):
    with pytest.raises(SystemExit):
        step_speed.main(argv)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("image_size, channels", [(28, 1), (64, 3)])
def test_torch_networks_match_gen_jax(image_size, channels):
    """Same parameter and statistic counts and the same shapes: the same architecture."""
    ngf, ndf, nz, b = 8, 8, 100, 2
    g_t, d_t = torch_reference.build_torch_dcgan(image_size, ngf, ndf, nz)
    g = DCGANGenerator(image_size=image_size, channels=channels, ngf=ngf)
    d = DCGANDiscriminator(image_size=image_size, ndf=ndf)
    x = jnp.zeros((b, image_size, image_size, channels))
    g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((b, nz)), train=False))
    d_vars = jax.eval_shape(lambda: d.init(jax.random.key(0), x, train=False))

    def count(tree):
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))

    for module, variables in ((g_t, g_vars), (d_t, d_vars)):
        assert sum(p.numel() for p in module.parameters()) == count(variables["params"])
        stats = sum(buf.numel() for name, buf in module.named_buffers() if "running" in name)
        assert stats == count(variables["batch_stats"])

    with torch.no_grad():
        fake = g_t.eval()(torch.zeros(b, nz, 1, 1))
        logits = d_t.eval()(fake)
    assert tuple(fake.shape) == (b, channels, image_size, image_size)
    assert tuple(logits.shape) == (b, 1, 1, 1)
    assert jax.eval_shape(lambda v: d.apply(v, x, train=False), d_vars).shape == (b, 1, 1, 1)


@pytest.mark.parametrize("name", ["cpu_28", "step_gpu_h200_64"])
def test_a_saved_result_renders_again_from_its_json(name):
    """docs/bench's results, PyTorch rows included, through the benchmark's own renderer."""
    bench = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bench"
    result = json.loads((bench / f"{name}.json").read_text())
    text = step_speed.format_markdown(result)
    lines = text.splitlines()
    assert lines[2] == (
        "| implementation | ms/step | repeats min-max | images/s | vs PyTorch eager | "
        "achieved GFLOP/s |"
    )
    assert lines[3] == "|---|---:|---:|---:|---:|---:|"
    eager = next(line for line in lines if line.startswith("| PyTorch eager |"))
    assert "| 1.00x |" in eager
    assert sum(line.startswith("| gen_jax") for line in lines) == 2
    assert "\n- PyTorch " in text and "\n- CPU: " in text
    assert text.endswith(f"- {result['notes'][-1]}\n")
