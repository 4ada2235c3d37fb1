"""benchmarks.synthesis_profile: HLO operations sorted into kinds, and a tiny real run."""

import os
import subprocess
import sys

import pytest

from benchmarks import synthesis_profile as sp

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A cut-down optimised HLO module in XLA:CPU's dump format: one fusion per kind, a plain
# convolution and a loop.
_HLO = """\
HloModule jit__run_chunk, entry_computation_layout={()->f32[]}

%fused_computation.1 (param_0.1: f32[36,64,512], param_1.1: f32[36,512,512]) -> f32[36,64,512] {
  %param_0.1 = f32[36,64,512]{2,1,0} parameter(0)
  %param_1.1 = f32[36,512,512]{2,1,0} parameter(1)
  ROOT %dot.1 = f32[36,64,512]{2,1,0} dot(%param_0.1, %param_1.1), lhs_batch_dims={0}
}

%fused_computation.2 (param_0.2: f32[36,36], param_1.2: f32[36,32768]) -> f32[16,32768] {
  %param_0.2 = f32[16,36]{1,0} parameter(0)
  %param_1.2 = f32[36,32768]{1,0} parameter(1)
  ROOT %dot.2 = f32[16,32768]{1,0} dot(%param_0.2, %param_1.2), lhs_contracting_dims={1}
}

%fused_computation.3 (param_0.3: f32[4096,64]) -> f32[64,64] {
  %param_0.3 = f32[4096,64]{1,0} parameter(0)
  ROOT %dot.3 = f32[64,64]{1,0} dot(%param_0.3, %param_0.3), lhs_contracting_dims={0}
}

%fused_computation.4 (param_0.4: f32[1,8,8,4]) -> f32[6,16,4] {
  %param_0.4 = f32[1,8,8,4]{3,2,1,0} parameter(0)
  %slice.4 = f32[1,8,2,4]{3,2,1,0} slice(%param_0.4), slice={[0:1], [0:8], [0:8:4], [0:4]}
  %concatenate.4 = f32[6,1,8,2,4]{4,3,2,1,0} concatenate(%slice.4), dimensions={0}
  ROOT %bitcast.4 = f32[6,16,4]{2,1,0} bitcast(%concatenate.4)
}

ENTRY %main.9 () -> f32[] {
  %p = f32[36,64,512]{2,1,0} parameter(0)
  %ynn_fusion.1 = f32[36,64,512]{2,1,0} fusion(%p, %p), kind=kCustom, calls=%fused_computation.1
  %ynn_fusion.2 = f32[16,32768]{1,0} fusion(%p, %p), kind=kCustom, calls=%fused_computation.2
  %ynn_fusion.3 = f32[64,64]{1,0} fusion(%p), kind=kCustom, calls=%fused_computation.3
  %concatenate_bitcast_fusion = f32[6,16,4]{2,1,0} fusion(%p), kind=kLoop, calls=%fused_computation.4
  %convolution.5 = f32[1,8,8,64]{3,2,1,0} convolution(%p, %p), window={size=3x3}
  %dot.6 = f32[] dot(%p, %p), lhs_contracting_dims={0}, rhs_contracting_dims={0}
  %add_fusion = f32[1,8,8,64]{3,2,1,0} fusion(%p), kind=kLoop, calls=%fused_computation.9
  %stack_fusion = f32[1,4,2,4,2,8]{5,4,3,2,1,0} concatenate(%p, %p), dimensions={3}
  ROOT %while.2 = f32[] while(%p), condition=%c, body=%b
}
"""


def test_operations_get_the_kind_of_their_root():
    kinds = sp.hlo_kinds(_HLO)
    assert kinds["ynn_fusion.1"] == "Winograd products"
    assert kinds["ynn_fusion.2"] == "Winograd kernel/output transforms"
    assert kinds["ynn_fusion.3"] == "Gram products"
    assert kinds["concatenate_bitcast_fusion"] == "Winograd input transforms"  # under a bitcast
    assert kinds["convolution.5"] == "direct convolutions"
    assert kinds["dot.6"] == "other"  # an inner product of the optimiser
    assert kinds["add_fusion"] == "other"  # calls a computation that is not in the text
    assert kinds["stack_fusion"] == "other"  # a pool gradient's stacking, not a transform


def test_summary_is_per_evaluation_and_skips_container_events():
    kinds = sp.hlo_kinds(_HLO)
    events = [
        ("ynn_fusion.1", 30.0),
        ("ynn_fusion.1", 10.0),
        ("concatenate_bitcast_fusion", 4.0),
        ("unknown.7", 2.0),
        ("while.2", 1000.0),  # contains the others
        ("ThunkExecutor::Execute", 1000.0),
        ("end: ynn_fusion.1", 0.0),
    ]
    per_eval = sp.summarize(events, kinds, evaluations=2)
    assert per_eval["Winograd products"] == pytest.approx(20.0)
    assert per_eval["Winograd input transforms"] == pytest.approx(2.0)
    assert per_eval["other"] == pytest.approx(1.0)
    assert per_eval["Gram products"] == 0.0
    assert list(per_eval) == list(sp.KINDS)


def test_tiny_run_profiles_every_kind(tmp_path):
    # Its own process: the module must set XLA's dump flag before JAX starts.
    out = tmp_path / "profile.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.synthesis_profile",
            "--size",
            "32",
            "--iterations",
            "1",
            "--out",
            str(out),
        ],
        cwd=_REPO_ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text()
    rows = {
        line.split("|")[1].strip(): float(line.split("|")[2])
        for line in table.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in sp.KINDS
    }
    assert set(rows) == set(sp.KINDS)
    # At 32 px the 64- and 128-channel layers run by Winograd, conv1_1 directly.
    assert rows["Winograd products"] > 0 and rows["direct convolutions"] > 0
    assert rows["Gram products"] > 0
    assert "evaluations in 1 L-BFGS iterations" in table
    # The kernel transforms run once, in their own program, and are counted apart.
    (once,) = [line for line in table.splitlines() if line.startswith("- once per run")]
    assert float(once.split(": ")[1].split(" ms")[0]) > 0


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        sp.main(["--size", "8"])
    with pytest.raises(SystemExit):
        sp.main(["--iterations", "0"])
    # A missing output folder is refused before the minutes of profiling.
    with pytest.raises(SystemExit):
        sp.main(["--size", "32", "--out", "/nonexistent_dir/profile.md"])


def test_profiling_after_jax_started_is_refused_by_name(monkeypatch):
    # Imported after JAX, the module could not set XLA's dump flag: no dump folder.
    monkeypatch.setattr(sp, "_DUMP_DIR", None)
    with pytest.raises(RuntimeError, match="before JAX"):
        sp.profile(32, 1)
