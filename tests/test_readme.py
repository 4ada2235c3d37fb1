"""The README's code runs as written, and its first lines are the two commands."""

import re
from pathlib import Path

import numpy as np

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_first_lines_are_the_two_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.DOTALL).group(1).splitlines()
    assert block[0].startswith("bash scripts/demo.sh") and block[1].startswith(
        "bash scripts/test.sh"
    )


def test_use_the_pieces_example_runs():
    section = README.split("## Use the pieces", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks, "no python example under 'Use the pieces'"
    scope: dict = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), scope)  # noqa: S102 (the test)
    assert scope["samples"].shape == (2500, 2)
    assert np.isfinite(np.asarray(scope["samples"])).all()
    metrics = scope["metrics"]
    assert {"d/loss", "d/r1", "g/loss"} <= set(metrics)
    assert all(np.shape(v) == (500,) and np.isfinite(v).all() for v in metrics.values())
    assert int(scope["state"].step) == 500
