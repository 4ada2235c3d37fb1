"""scripts/gpu_bench.sh: its plumbing, checked on the CPU before a (rare, short) GPU session
depends on it. GPU_BENCH_SMOKE=1 runs the same commands at toy sizes."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_SCRIPT = _REPO_ROOT / "scripts" / "gpu_bench.sh"


def _run(*args, smoke=True, **env):
    full_env = {**os.environ, "PYTHON": sys.executable, **env}
    if smoke:
        full_env["GPU_BENCH_SMOKE"] = "1"
    return subprocess.run(
        ["bash", str(_SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    missing = _run(str(tmp_path / "no_such_dir"))
    assert missing.returncode == 2 and "is not an existing folder" in missing.stderr
    unknown = _run(str(tmp_path), "synthesis_tune")
    assert unknown.returncode == 2 and "unknown benchmark synthesis_tune" in unknown.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_full_size_commands_are_the_documented_ones(tmp_path):
    """Without the smoke switch (and with `echo` for python), the commands as a GPU gets
    them: 512 px first, auto and tune side by side, the tuning budget."""
    done = _run(str(tmp_path), smoke=False, PYTHON="echo")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("== synthesis:")]
    expected = (
        "== synthesis: -m benchmarks.synthesis_speed --sizes 512,256 --iterations 500,200 "
        f"--repeats 3 --conv-algorithm auto,tune --tune-budget-s 240 --out {tmp_path}/"
        "synthesis_gpu.md"
    )
    assert commands[0] == expected, done.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="bash and coreutils' timeout")
def test_the_default_run_writes_its_tables_and_log(tmp_path):
    done = _run(str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gpu_bench.log",
        "synthesis_gpu.json",
        "synthesis_gpu.md",
    ]
    result = json.loads((tmp_path / "synthesis_gpu.json").read_text())
    keys = [row["key"] for row in result["rows"] if row["key"].startswith("gen_jax")]
    assert keys == ["gen_jax[auto]", "gen_jax[tune]"] * 2
    assert result["rows"][0]["size"] == 32  # the larger size first
    assert result["config"]["tune_budget_s"] == 2
    log = (tmp_path / "gpu_bench.log").read_text()
    assert "== synthesis: exit 0" in log and "jax " in log
