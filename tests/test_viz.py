"""The spectrum plot: one panel per texture, and a clear error for nothing to plot."""

import numpy as np
import pytest
from PIL import Image

from gen_jax import viz
from gen_jax.metrics.texture import texture_spectra


def test_save_spectra_writes_one_panel_per_texture(tmp_path):
    rng = np.random.default_rng(0)
    source, result = rng.random((32, 32, 3)), rng.random((16, 16, 3))
    spectra = texture_spectra(result, source)
    one, two = tmp_path / "one.png", tmp_path / "sub" / "two.png"
    viz.save_spectra([("a", spectra)], str(one))
    viz.save_spectra([("a", spectra), ("b", spectra)], str(two))  # creates the folder
    with Image.open(one) as a, Image.open(two) as b:
        assert a.format == b.format == "PNG"
        assert b.size[0] > 1.8 * a.size[0] and b.size[1] == a.size[1]


def test_save_spectra_refuses_no_panels(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        viz.save_spectra([], str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()
