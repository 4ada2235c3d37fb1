"""Tests for benchmarks/step_speed.py: the tiny config end to end, and the PyTorch twin nets
(`benchmarks.torch_reference`).

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
