"""The one host loop: progress, logs, samples, checkpoints, results and resume for every run.

Output folder of a training run (`run_training`, for a `GANState` or a `TrainState`):

    config.json      the resolved config (checked when a run resumes)
    metrics.jsonl    one JSON line per chunk: step, wall time, the chunk's mean metrics
    samples/         what `on_sample` draws at each sampling interval (PNG grids)
    curves.png       metric curves, written at the end
    checkpoints/     orbax checkpoints of the whole state (two newest kept)
    results.json     the run's headline numbers

Rerunning on the same folder restores the newest checkpoint and continues; because batches
and keys are drawn from (key, step), the continued run is bit-identical to an
uninterrupted one on the same machine.

Runs that optimise an image rather than a state (style transfer, texture synthesis) use
`run_synthesis`: the same folder layout without checkpoints, resumed from the saved image.
Both write their progress through `RunLog`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any, Self

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax import parallel, viz
from gen_jax.checkpoint import Checkpointer
from gen_jax.config import prepare_workdir, write_json_atomic
from gen_jax.train.steps import BatchFn, make_train_chunk

ChunkFn = Callable[[Any, Any], tuple[Any, dict]]

__all__ = [
    "RunLog",
    "SynthesisRun",
    "check_synthesis_resumable",
    "device_description",
    "fit",
    "run_synthesis",
    "run_training",
]


def _crossed(prev: int, now: int, every: int) -> bool:
    return every > 0 and now // every > prev // every


def device_description() -> str:
    """``platform:kind xN`` of the devices the run uses."""
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} x{jax.device_count()}"


class RunLog:
    """A run's ``metrics.jsonl`` and its progress bar, continued from step `start`.

    Lines past `start` (logged by a run that died after its last checkpoint) are dropped
    when the log opens, so a resumed run's log has each step once.

    Args:
      workdir: the run's folder.
      start: the step the run resumes from (0 for a new run).
      total: the step it runs to.
      desc: the progress bar's label.
      unit: the bar's unit ("step", "it").
      shown: metric names shown beside the bar when present.
      tensorboard: also write every metric as a TensorBoard scalar, to event files in
        ``workdir/tensorboard`` (through tensorboardX, which needs no TensorFlow:
        ``pip install 'gen_jax[tensorboard]'``); a resumed run's writer purges the events
        past `start`, as the log drops its lines. metrics.jsonl stays the primary record.

    Raises:
      ImportError: `tensorboard` without tensorboardX installed, saying how to install it.
    """

    def __init__(
        self,
        workdir: str,
        start: int,
        total: int,
        desc: str,
        *,
        unit: str = "step",
        shown: tuple[str, ...] = ("d/loss", "g/loss", "train/loss", "loss/total"),
        tensorboard: bool = False,
    ):
        self._events = _event_writer(workdir, start) if tensorboard else None
        self.path = os.path.join(workdir, "metrics.jsonl")
        rows = [r for r in viz.read_metrics(self.path) if r["step"] <= start]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, self.path)
        self.start = self.step = start
        self.shown = shown
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()
        self._bar = tqdm(total=total, initial=start, desc=desc, unit=unit, dynamic_ncols=True)

    def log(self, step: int, metrics: dict[str, float]) -> dict:
        """Appends ``{"step", "time", **metrics}`` and advances the bar to `step`.

        Raises:
          FloatingPointError: a metric is not finite (nothing is written then).
        """
        row = {"step": int(step), "time": time.time(), **metrics}
        bad = {n: v for n, v in row.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"non-finite metrics at step {step}: {bad}")
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._events is not None:
            for name, value in metrics.items():
                self._events.add_scalar(name, value, int(step), walltime=row["time"])
            self._events.flush()
        postfix = {n: f"{row[n]:.4g}" for n in self.shown if n in row}
        if "steps_per_s" in row:
            postfix["it/s"] = f"{row['steps_per_s']:.1f}"
        # The postfix first, so the bar's redraw on update shows this chunk's numbers.
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(int(step) - self.step)
        self.step = int(step)
        self.rows.append(row)
        return row

    def close(self) -> float:
        """Closes the bar (and the event file); returns the seconds since the log opened."""
        self._bar.close()
        if self._events is not None:
            self._events.close()
            self._events = None
        return time.perf_counter() - self.t0

    def steady_rate(self) -> float | None:
        """Steps per second after this session's first line (which includes compiling)."""
        if len(self.rows) < 2:
            return None
        a, b = self.rows[0], self.rows[-1]
        return (b["step"] - a["step"]) / max(b["time"] - a["time"], 1e-9)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _event_writer(workdir: str, start: int):
    """A tensorboardX writer on ``workdir/tensorboard``, purging events past `start`."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "--tensorboard needs tensorboardX (no TensorFlow): pip install 'gen_jax[tensorboard]'"
        ) from e
    # purge_step: TensorBoard hides what an earlier session logged at steps > start.
    return SummaryWriter(
        os.path.join(workdir, "tensorboard"), purge_step=start + 1 if start else None
    )


@jax.jit
def _finite_leaves(state: Any) -> list[jax.Array]:
    """Whether each floating leaf of `state` is finite everywhere (False for any NaN/inf)."""
    return [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(state)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]


def _check_finite_state(state: Any, finite: list, step: int) -> None:
    """Raises FloatingPointError naming the state's leaves that hold NaN or inf."""
    if all(finite):
        return
    paths = [
        jax.tree_util.keystr(path)
        for path, x in jax.tree_util.tree_leaves_with_path(state)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    bad = [p for p, ok in zip(paths, finite) if not ok]
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise FloatingPointError(f"non-finite parameters or statistics at step {step}: {shown}")


def _kept(checkpointer: Checkpointer | None) -> str:
    """What a stopped run leaves to resume from, for its error message."""
    last = checkpointer.latest_step() if checkpointer else None
    if last is None:
        return "no checkpoint was written before it"
    return f"the last checkpoint, step {last}, is kept ({checkpointer.step_dir(last)})"


def fit(
    state: Any,
    chunk_for: Callable[[int], ChunkFn],
    data: Any,
    *,
    total_steps: int,
    chunk_steps: int,
    workdir: str,
    checkpointer: Checkpointer | None = None,
    checkpoint_every: int = 0,
    sample_every: int = 0,
    on_sample: Callable[[Any, int], None] | None = None,
    desc: str = "train",
    tensorboard: bool = False,
) -> Any:
    """Runs `state` to `total_steps` in chunks, logging, sampling and checkpointing between them.

    Args:
      state: the starting state (possibly restored; its step is where the run resumes).
      chunk_for: `k -> chunk(state, data)` running k fused steps (cached by the caller).
      data: the device-resident dataset passed to every chunk.
      total_steps: the step to stop at.
      chunk_steps: steps per dispatch (and per metrics line).
      workdir: folder for metrics.jsonl.
      checkpointer, checkpoint_every: save whenever the step crosses a multiple, and at the end.
      sample_every, on_sample: call `on_sample(state, step)` likewise, and at the end.
      desc: progress bar label.
      tensorboard: also write the metrics as TensorBoard events (see `RunLog`).

    Raises:
      FloatingPointError: when a chunk's metrics or the state's parameters are not finite,
        naming the step and the metrics or leaves; the state is not saved, so the last good
        checkpoint (named in the message) stays the newest.
    """
    step = int(state.step)
    with RunLog(workdir, step, total_steps, desc, tensorboard=tensorboard) as log:
        while step < total_steps:
            k = min(chunk_steps, total_steps - step)
            t0 = time.perf_counter()
            state, metrics = chunk_for(k)(state, data)
            # One host fetch per chunk: the metrics and which leaves of the state are finite.
            metrics, finite = jax.device_get((metrics, _finite_leaves(state)))
            seconds = time.perf_counter() - t0
            prev, step = step, step + k
            means = {name: float(np.mean(v)) for name, v in metrics.items()}
            try:
                log.log(step, {"steps_per_s": k / seconds, **means})
                _check_finite_state(state, finite, step)
            except FloatingPointError as e:
                raise FloatingPointError(f"{e}; {_kept(checkpointer)}") from None
            done = step >= total_steps
            if on_sample and (done or _crossed(prev, step, sample_every)):
                on_sample(state, step)
            if checkpointer and (done or _crossed(prev, step, checkpoint_every)):
                checkpointer.save(step, state)
    return state


def run_training(
    config: Any,
    workdir: str,
    *,
    init_state: Callable[[], Any],
    train_step: Callable,
    batch_fn: BatchFn,
    data: Any,
    on_sample: Callable[[Any, int, str], None] | None = None,
    evaluate: Callable[[Any, str], dict] | None = None,
    sample_every: int | None = None,
    batch_axis: int = 1,
    unroll: int | bool | None = None,
    desc: str | None = None,
) -> dict:
    """Runs (or resumes) a training experiment in `workdir`; returns its results dict.

    Args:
      config: a frozen dataclass with at least steps, chunk_steps, checkpoint_every and
        batch_size (and sample_every unless given).
      workdir: the output folder (see the module docstring).
      init_state: builds the step-0 state (also the template for restoring).
      train_step, batch_fn: as for `make_train_chunk`.
      data: the dataset, placed on every device of the mesh.
      on_sample: `f(state, step, workdir)` writes pictures at sampling intervals.
      evaluate: `f(state, workdir) -> dict` of headline numbers at the end.
      sample_every: overrides `config.sample_every` (an evaluation interval, say).
      batch_axis: the example axis of the batch leaves (1 after the GAN's n_critic axis).
      unroll: passed to `make_train_chunk`.
      desc: the progress bar's label (default: the folder's name).

    Raises:
      ValueError: the batch does not divide over the devices, or the folder holds a run
        of another config (before anything is written).
    """
    mesh = parallel.make_mesh()
    n_dev = mesh.shape[parallel.DATA_AXIS]
    if config.batch_size % n_dev:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the {n_dev} devices")
    parallel.on_primary(lambda: prepare_workdir(workdir, config), "prepare_workdir")
    # Every process runs this same host code, so all of them compile and run the same
    # programs (on_sample and evaluate may run some over the global state); process 0
    # writes the run's files, the others the same files into a scratch folder of their
    # own, removed at the end. Checkpoints are saved and restored by all (orbax).
    out = workdir
    if not parallel.is_primary():
        out = tempfile.mkdtemp(prefix=f"gen_jax_process{jax.process_index()}_")
        if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
            shutil.copy(os.path.join(workdir, "metrics.jsonl"), out)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    state = init_state()
    checkpointer.check_space(state)  # A full disk fails here, not at the first save.
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        if parallel.is_primary():
            tqdm.write(f"resuming {workdir} from step {int(state.step)}")
    state = parallel.replicate(state, mesh)
    data = parallel.replicate(data, mesh)
    chunks: dict[int, ChunkFn] = {}

    def chunk_for(k: int) -> ChunkFn:
        if k not in chunks:
            chunks[k] = make_train_chunk(
                train_step, batch_fn, k, mesh=mesh, batch_axis=batch_axis, unroll=unroll
            )
        return chunks[k]

    start_step, t0 = int(state.step), time.perf_counter()
    state = fit(
        state,
        chunk_for,
        data,
        total_steps=config.steps,
        chunk_steps=config.chunk_steps,
        workdir=out,
        checkpointer=checkpointer,
        checkpoint_every=config.checkpoint_every,
        sample_every=config.sample_every if sample_every is None else sample_every,
        on_sample=(lambda s, step: on_sample(s, step, out)) if on_sample else None,
        desc=desc or os.path.basename(os.path.normpath(workdir)),
        tensorboard=getattr(config, "tensorboard", False),
    )
    seconds = time.perf_counter() - t0
    checkpointer.close()
    rows = viz.read_metrics(os.path.join(out, "metrics.jsonl"))
    viz.save_curves(rows, os.path.join(out, "curves.png"))
    results = {
        "steps": int(state.step),
        "steps_this_session": int(state.step) - start_step,
        "seconds_this_session": seconds,
        "device": device_description(),
        "processes": jax.process_count(),
    }
    if rows:
        results["final_metrics"] = {k: v for k, v in rows[-1].items() if "/" in k}
        fast = [r["steps_per_s"] for r in rows[1:]] or [rows[0]["steps_per_s"]]
        results["steps_per_s"] = float(np.median(fast))
        results["images_per_s"] = results["steps_per_s"] * config.batch_size
        # Time in the training chunks over all sessions (compilation included; sampling and
        # checkpoints not), read back from the log so a resumed run counts its past.
        done = np.diff([0] + [r["step"] for r in rows])
        results["train_seconds"] = float(sum(k / r["steps_per_s"] for k, r in zip(done, rows)))
    if evaluate:
        results |= evaluate(state, out)
    write_json_atomic(os.path.join(out, "results.json"), results)
    if out != workdir:
        shutil.rmtree(out, ignore_errors=True)
    return results


def _saved_results(workdir: str, steps: int) -> dict | None:
    """The results of a finished synthesis run in `workdir` (None if there is none).

    Raises:
      ValueError: the saved run has more iterations than `steps` (nothing is changed).
    """
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    if saved["steps"] > steps:
        raise ValueError(
            f"{workdir} already holds a run of {saved['steps']} steps; pass --steps "
            f">= {saved['steps']} to continue it, or use another --workdir"
        )
    return saved


def check_synthesis_resumable(workdir: str, steps: int) -> None:
    """Raises the error `run_synthesis` would, before anything is written."""
    _saved_results(workdir, steps)


class SynthesisRun:
    """What `run_synthesis` returns: the result (None when the run was already complete)."""

    def __init__(self, result, saved, start, seconds=None, rate=None):
        self.result = result
        self.saved = saved  # The previous session's results.json, when this one continues it.
        self.start = start  # The iteration this session started from.
        self.seconds = seconds
        self.rate = rate  # Iterations per second after the first chunk.

    @property
    def complete(self) -> bool:
        return self.result is None


def run_synthesis(
    config: Any,
    workdir: str,
    synthesize: Callable[[np.ndarray | None, int, Callable[[int, float], None]], Any],
    *,
    desc: str,
) -> SynthesisRun:
    """Runs (or continues) an image optimisation of `config.steps` iterations in `workdir`.

    A folder whose results.json holds as many steps is complete and left untouched; fewer
    steps and a saved ``result.npy`` continue from that image for the remaining ones; a
    different config is refused before anything is written (`prepare_workdir`).

    Args:
      config: a frozen dataclass with a ``steps`` field.
      workdir: the output folder (config.json, metrics.jsonl; the caller writes the rest,
        including ``result.npy`` and ``results.json``).
      synthesize: ``f(init, steps, callback) -> result``: runs `steps` iterations from
        `init` (None: the method's own start) and calls ``callback(done, loss)`` after each
        chunk of iterations (`gen_jax.synthesis.optimize_image`'s callback).
      desc: the progress bar's label.
    """
    saved = _saved_results(workdir, config.steps)
    prepare_workdir(workdir, config)
    start, init = 0, None
    result_npy = os.path.join(workdir, "result.npy")
    if saved is not None and os.path.exists(result_npy):
        if saved["steps"] == config.steps:
            return SynthesisRun(None, saved, config.steps)
        start, init = saved["steps"], np.load(result_npy)
    else:
        saved = None
    log = RunLog(workdir, start, config.steps, desc, unit="it")

    def callback(done_this_session: int, loss: float) -> None:
        log.log(start + done_this_session, {"loss/total": float(loss)})

    try:
        result = synthesize(init, config.steps - start, callback)
    finally:
        seconds = log.close()
    return SynthesisRun(result, saved, start, seconds, log.steady_rate())
