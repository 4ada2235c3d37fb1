"""RunLog, the progress and metrics.jsonl of every run; run_synthesis's resume rules.

The training loop (`fit`, `run_training`) is tested through tests/test_checkpoint.py and
the experiments' smoke tests; the synthesis runs end to end in
tests/experiments/test_synthesis_smoke.py.
"""

import dataclasses
import json

import numpy as np
import pytest

from gen_jax.train import RunLog, run_synthesis


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_log_appends_rows_and_a_resumed_log_drops_lines_past_its_start(tmp_path):
    with RunLog(str(tmp_path), 0, 6, "t") as log:
        for step in (2, 4, 6):
            log.log(step, {"g/loss": float(step)})
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [2, 4, 6]
    # A run that died after its checkpoint at step 2 logged 4 and 6; resuming drops them.
    with RunLog(str(tmp_path), 2, 6, "t") as log:
        log.log(4, {"g/loss": 40.0})
    rows = _rows(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["g/loss"]) for r in rows] == [(2, 2.0), (4, 40.0)]


def test_non_finite_metrics_stop_the_log_with_the_step_and_write_nothing(tmp_path):
    log = RunLog(str(tmp_path), 0, 4, "t")
    log.log(2, {"d/loss": 1.0})
    with pytest.raises(FloatingPointError, match=r"step 4.*'d/loss': nan"):
        log.log(4, {"d/loss": float("nan")})
    log.close()
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [2]


def test_steady_rate_leaves_out_the_first_line(tmp_path):
    log = RunLog(str(tmp_path), 0, 30, "t")
    for step, t in ((10, 100.0), (20, 101.0), (30, 103.0)):
        log.log(step, {})
        log.rows[-1]["time"] = t  # As if logged at these wall times.
    assert log.steady_rate() == pytest.approx(20 / 3.0)
    log.close()


def _save(workdir, steps, image):
    np.save(workdir / "result.npy", image)
    (workdir / "results.json").write_text(json.dumps({"steps": steps}))


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 4


def test_run_synthesis_continues_from_the_saved_image_and_refuses_fewer_steps(tmp_path):
    calls = []

    def synthesize(init, steps, callback):
        calls.append((None if init is None else init.tolist(), steps))
        for done in range(1, steps + 1):
            callback(done, 1.0 / done)
        return "result"

    first = run_synthesis(Config(4), str(tmp_path), synthesize, desc="t")
    assert first.result == "result" and first.start == 0 and calls == [(None, 4)]
    _save(tmp_path, 4, np.ones(2))
    assert run_synthesis(Config(4), str(tmp_path), synthesize, desc="t").complete
    assert len(calls) == 1  # Complete: nothing ran.
    more = run_synthesis(Config(6), str(tmp_path), synthesize, desc="t")
    assert more.start == 4 and calls[-1] == ([1.0, 1.0], 2)
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="--steps >= 4"):
        run_synthesis(Config(3), str(tmp_path), synthesize, desc="t")


def _read_scalars(folder):
    """{tag: [(step, value)]} from TensorBoard event files, read with tensorboardX's protos.

    An event file is TFRecord: per record a little-endian uint64 length, its masked CRC32C,
    the serialized `Event`, and the data's masked CRC32C (not checked here).
    """
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_tensorboard_events_carry_every_logged_metric(tmp_path):
    pytest.importorskip("tensorboardX")
    with RunLog(str(tmp_path), 0, 4, "t", tensorboard=True) as log:
        log.log(2, {"d/loss": 1.5, "g/loss": 0.25})
        log.log(4, {"d/loss": 1.0, "g/loss": 0.5})
    scalars = _read_scalars(tmp_path / "tensorboard")
    assert scalars["d/loss"] == [(2, 1.5), (4, 1.0)]
    assert scalars["g/loss"] == [(2, 0.25), (4, 0.5)]
    rows = _rows(tmp_path / "metrics.jsonl")
    assert [r["d/loss"] for r in rows] == [1.5, 1.0]  # metrics.jsonl stays the record.


def test_tensorboard_experiment_option(tmp_path):
    pytest.importorskip("tensorboardX")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from experiments import gan_mixture

    gan_mixture.main(["--workdir", str(tmp_path), "--smoke", "--tensorboard", "true"])
    scalars = _read_scalars(tmp_path / "tensorboard")
    steps = [r["step"] for r in _rows(tmp_path / "metrics.jsonl")]
    assert [s for s, _ in scalars["d/loss"]] == steps
    assert {"d/r1", "g/loss", "steps_per_s"} <= set(scalars)
