"""The host loop: chunks of fused steps, with progress, logs, samples and checkpoints between them.

Output folder of a run (`run_gan`):

    config.json      the resolved config (checked when a run resumes)
    metrics.jsonl    one JSON line per chunk: step, wall time, the chunk's mean metrics
    samples/         PNG sample grids at each sampling interval; samples.png is the latest
    curves.png       loss curves, written at the end
    checkpoints/     orbax checkpoints of the whole state (two newest kept)
    results.json     the run's headline numbers

Rerunning on the same folder restores the newest checkpoint and continues; because batches
and latents are drawn from (key, step), the continued run is bit-identical to an
uninterrupted one on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from gen_jax import parallel, viz
from gen_jax.checkpoint import Checkpointer
from gen_jax.config import prepare_workdir, write_json_atomic
from gen_jax.train.state import GANState
from gen_jax.train.steps import BatchFn, make_train_chunk

ChunkFn = Callable[[GANState, Any], tuple[GANState, dict]]


def _crossed(prev: int, now: int, every: int) -> bool:
    return every > 0 and now // every > prev // every


def _truncate_metrics(path: str, last_step: int) -> None:
    """Drops log lines past `last_step`: a run that died after its last checkpoint logged them."""
    rows = [r for r in viz.read_metrics(path) if r["step"] <= last_step]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)


def fit(
    state: GANState,
    chunk_for: Callable[[int], ChunkFn],
    data: Any,
    *,
    total_steps: int,
    chunk_steps: int,
    workdir: str,
    checkpointer: Checkpointer | None = None,
    checkpoint_every: int = 0,
    sample_every: int = 0,
    on_sample: Callable[[GANState, int], None] | None = None,
    desc: str = "train",
) -> GANState:
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

    Raises:
      FloatingPointError: when a chunk's metrics are not finite; the state is not saved, so
        the last good checkpoint stays the newest.
    """
    step = int(state.step)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    _truncate_metrics(metrics_path, step)
    bar = tqdm(total=total_steps, initial=step, desc=desc, unit="step", dynamic_ncols=True)
    with open(metrics_path, "a") as log, bar:
        while step < total_steps:
            k = min(chunk_steps, total_steps - step)
            t0 = time.perf_counter()
            state, metrics = chunk_for(k)(state, data)
            metrics = jax.device_get(metrics)  # One host fetch per chunk.
            seconds = time.perf_counter() - t0
            prev, step = step, step + k
            row = {"step": step, "time": time.time(), "steps_per_s": k / seconds}
            row |= {name: float(np.mean(v)) for name, v in metrics.items()}
            if not all(math.isfinite(v) for v in row.values()):
                bad = {n: v for n, v in row.items() if not math.isfinite(v)}
                raise FloatingPointError(
                    f"non-finite metrics at step {step}: {bad}; the last checkpoint is kept"
                )
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.update(k)
            bar.set_postfix(
                {n: f"{row[n]:.3f}" for n in ("d/loss", "g/loss") if n in row}
                | {"it/s": f"{row['steps_per_s']:.1f}"},
                refresh=False,
            )
            done = step >= total_steps
            if on_sample and (done or _crossed(prev, step, sample_every)):
                on_sample(state, step)
            if checkpointer and (done or _crossed(prev, step, checkpoint_every)):
                checkpointer.save(step, state)
    return state


def run_gan(
    config: Any,
    workdir: str,
    *,
    init_state: Callable[[], GANState],
    train_step: Callable,
    batch_fn: BatchFn,
    data: Any,
    on_sample: Callable[[GANState, int, str], None] | None = None,
    evaluate: Callable[[GANState, str], dict] | None = None,
    unroll: int | bool | None = None,
) -> dict:
    """Runs (or resumes) a GAN experiment in `workdir` and returns its results dict.

    Args:
      config: a frozen dataclass with at least steps, chunk_steps, checkpoint_every,
        sample_every and batch_size.
      workdir: the output folder (see the module docstring).
      init_state: builds the step-0 state (also the template for restoring).
      train_step, batch_fn: as for `make_train_chunk`.
      data: the dataset, placed on every device of the mesh.
      on_sample: `f(state, step, workdir)` writes pictures at sampling intervals.
      evaluate: `f(state, workdir) -> dict` of headline numbers at the end.
      unroll: passed to `make_train_chunk`.
    """
    mesh = parallel.make_mesh()
    n_dev = mesh.shape[parallel.DATA_AXIS]
    if config.batch_size % n_dev:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the {n_dev} devices")
    prepare_workdir(workdir, config)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    state = init_state()
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        tqdm.write(f"resuming {workdir} from step {int(state.step)}")
    state = parallel.replicate(state, mesh)
    data = parallel.replicate(data, mesh)
    chunks: dict[int, ChunkFn] = {}

    def chunk_for(k: int) -> ChunkFn:
        if k not in chunks:
            chunks[k] = make_train_chunk(train_step, batch_fn, k, mesh=mesh, unroll=unroll)
        return chunks[k]

    start_step, t0 = int(state.step), time.perf_counter()
    state = fit(
        state,
        chunk_for,
        data,
        total_steps=config.steps,
        chunk_steps=config.chunk_steps,
        workdir=workdir,
        checkpointer=checkpointer,
        checkpoint_every=config.checkpoint_every,
        sample_every=config.sample_every,
        on_sample=(lambda s, step: on_sample(s, step, workdir)) if on_sample else None,
        desc=os.path.basename(os.path.normpath(workdir)),
    )
    seconds = time.perf_counter() - t0
    checkpointer.close()
    rows = viz.read_metrics(os.path.join(workdir, "metrics.jsonl"))
    viz.save_curves(rows, os.path.join(workdir, "curves.png"))
    results = {
        "steps": int(state.step),
        "steps_this_session": int(state.step) - start_step,
        "seconds_this_session": seconds,
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind} x{n_dev}",
    }
    if rows:
        results["final_metrics"] = {k: v for k, v in rows[-1].items() if "/" in k}
        fast = [r["steps_per_s"] for r in rows[1:]] or [rows[0]["steps_per_s"]]
        results["steps_per_s"] = float(np.median(fast))
        results["images_per_s"] = results["steps_per_s"] * config.batch_size
    if evaluate:
        results |= evaluate(state, workdir)
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results
