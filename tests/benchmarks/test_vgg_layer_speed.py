"""benchmarks.vgg_layer_speed: a tiny run fills every cell of its tables."""

import math

import pytest

from benchmarks import vgg_layer_speed


def test_tiny_run_times_every_layer_and_pool(tmp_path):
    out = tmp_path / "layers.md"
    result = vgg_layer_speed.main(["--size", "16", "--repeats", "1", "--out", str(out)])
    assert result["convs"][0]["layer"] == "conv1_1"
    for r in result["convs"]:
        for field in ("direct", "winograd2", "winograd4"):
            assert math.isfinite(r[field]) and r[field] > 0, (r["layer"], field)
        assert r["auto"] in ("direct", "winograd2", "winograd4")
    assert result["convs"][0]["auto"] == "direct"  # RGB input: 3 channels
    assert len(result["pools"]) == 4
    table = out.read_text()
    assert "| conv4_2..4 | 2x2 | 512->512 | 3 |" in table
    assert "| 2x2 max pool of |" in table
    assert [g["layer"] for g in result["grams"]] == [f"relu{b}_1" for b in range(1, 6)]
    assert all(g["einsum"] > 0 and g["gram_matrix"] > 0 for g in result["grams"])
    assert "| relu5_1 1x1x512 |" in table
    # Every Winograd layer's products in both orders, and the order the module picks.
    winograd_layers = [r["layer"] for r in result["convs"] if r["auto"] != "direct"]
    assert [p["layer"] for p in result["products"]] == winograd_layers
    for p in result["products"]:
        for field in ("data first", "kernel first", "layer data first", "layer kernel first"):
            assert math.isfinite(p[field]) and p[field] > 0, (p["layer"], field)
        assert p["picked"] in ("data first", "kernel first")
    assert "| Winograd layer | products: batch x [tiles, C] x [C, K] |" in table
    assert "| conv1_2 | 16 x [64, 64] x [64, 64] |" in table  # 16 px: 8 x 8 tiles of 2 x 2


@pytest.mark.parametrize(
    "argv", [["--size", "8"], ["--repeats", "0"], ["--out", "/nonexistent_dir/layers.md"]]
)
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        vgg_layer_speed.main(argv)
