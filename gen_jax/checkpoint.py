"""Checkpoints of whole training states with orbax: the only module that imports orbax.

A state is saved as its Flax state dict (every leaf, the PRNG key and step included; the
static modules and optimizers are rebuilt by the code). Orbax writes each checkpoint into a
temporary directory and renames it only when complete, and `max_to_keep >= 2` keeps the
previous one, so an interrupted or failed run never destroys the last good checkpoint.

Each finished checkpoint also gets a manifest, ``<step>/gen_jax.sha256.json``: the SHA-256
of every file orbax wrote. `restore` checks it first, so a truncated array file, an emptied
metadata file or one flipped byte is reported by the checkpoint's path and what is wrong
with it, and (unless a step was asked for) the run resumes from the newest intact
checkpoint instead, saying so.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from typing import Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

T = TypeVar("T")

MANIFEST = "gen_jax.sha256.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, incomplete, or of another model."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(step_dir: str) -> dict[str, str]:
    """{path relative to the step's folder: SHA-256} of every file but the manifest."""
    out = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if rel not in (MANIFEST, MANIFEST + ".tmp"):
                out[rel] = _sha256(path)
    return out


def state_nbytes(state: Any) -> int:
    """Bytes of the array leaves of `state` (about what one checkpoint of it takes)."""
    return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(state) if hasattr(x, "dtype")))


class Checkpointer:
    """Saves and restores a state pytree under `directory/<step>`.

    Args:
      directory: where checkpoints go (created if missing).
      max_to_keep: how many of the newest checkpoints to keep (at least 2).
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        if max_to_keep < 2:
            raise ValueError(
                f"max_to_keep must be >= 2 so the last good checkpoint survives a "
                f"failed save, got {max_to_keep}"
            )
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_to_keep = max_to_keep
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The steps of every complete checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def step_dir(self, step: int) -> str:
        """The folder of checkpoint `step`."""
        return os.path.join(self.directory, str(int(step)))

    def check_space(self, state: Any) -> None:
        """Refuses, before training, a folder without room for the checkpoints of `state`.

        Needs room for ``max_to_keep + 1`` checkpoints (the kept ones and the one being
        written) with a 10 % margin.

        Raises:
          OSError (ENOSPC): naming the folder, the space it has and the space it needs.
        """
        need = int(1.1 * (self.max_to_keep + 1) * state_nbytes(state))
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"{self.directory} has {free / 2**20:.1f} MiB free; the checkpoints of this "
                f"run need about {need / 2**20:.1f} MiB ({self.max_to_keep} kept and one being "
                "written). Free some space or use another --workdir",
            )

    def save(self, step: int, state: Any) -> None:
        """Writes `state` as checkpoint `step` (blocking until it is complete on disk).

        Raises:
          OSError: the write failed (a full disk, say); the message names the checkpoint
            and the newest intact one, which the failure leaves as it was.
        """
        previous = self.latest_step()
        try:
            self._manager.save(
                int(step),
                args=ocp.args.StandardSave(serialization.to_state_dict(state)),
                force=True,
            )
            self._manager.wait_until_finished()
        except OSError as e:
            kept = f"checkpoint {previous} is intact" if previous is not None else "none was kept"
            raise OSError(
                e.errno, f"saving checkpoint {step} to {self.directory} failed ({e}); {kept}"
            ) from e
        if jax.process_index() == 0:
            step_dir = self.step_dir(step)
            files = _files(step_dir)  # Before the manifest's own temporary file exists.
            tmp = os.path.join(step_dir, MANIFEST + ".tmp")
            with open(tmp, "w") as f:
                json.dump({"step": int(step), "files": files}, f, sort_keys=True)
            os.replace(tmp, os.path.join(step_dir, MANIFEST))

    def verify(self, step: int) -> str | None:
        """What is wrong with checkpoint `step`'s files (None: they match their manifest).

        A checkpoint written before manifests existed, or whose manifest was never
        written (the run died between orbax's rename and the manifest), has none: it is
        reported as unverified only if it then fails to load.
        """
        step_dir = self.step_dir(step)
        path = os.path.join(step_dir, MANIFEST)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                want = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"its manifest {path} is unreadable ({e})"
        for rel, digest in sorted(want.items()):
            full = os.path.join(step_dir, rel)
            if not os.path.exists(full):
                return f"{rel} is missing"
            if _sha256(full) != digest:
                return f"{rel} does not match its checksum"
        return None

    def _restore_one(self, template: T, step: int) -> T:
        damage = self.verify(step)
        if damage:
            raise CheckpointError(f"checkpoint {self.step_dir(step)} is damaged: {damage}")
        target = jax.tree.map(
            ocp.utils.to_shape_dtype_struct, serialization.to_state_dict(template)
        )
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as e:  # Orbax and TensorStore raise many kinds; name the folder.
            verified = os.path.exists(os.path.join(self.step_dir(step), MANIFEST))
            cause = (
                "it was written by a different model or config"
                if verified
                else "it is damaged, or was written by a different model or config"
            )
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"checkpoint {self.step_dir(step)} does not match the state being restored "
                f"({cause}): {first[:300]}"
            ) from e
        return serialization.from_state_dict(template, restored)

    def restore(self, template: T, step: int | None = None) -> T:
        """Restores checkpoint `step` into the structure of `template`.

        Args:
          template: a state of the same structure (e.g. a freshly initialised one); its leaves'
            shapes, dtypes and shardings are the restore targets.
          step: which checkpoint; None for the newest intact one: a damaged newer one is
            reported (a warning naming it and what is wrong) and passed over.

        Raises:
          FileNotFoundError: if there is no such checkpoint in the directory.
          CheckpointError (a ValueError): the checkpoint asked for is damaged or does not
            match the template; with step None, when no checkpoint is usable (each named).
        """
        steps = self.all_steps()
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(
                    f"no checkpoint {step} in {self.directory} (found steps {steps})"
                )
            return self._restore_one(template, step)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory} (found steps [])")
        problems, damaged = [], []
        for candidate in reversed(steps):
            try:
                state = self._restore_one(template, candidate)
            except CheckpointError as e:
                if not self.verify(candidate) and os.path.exists(
                    os.path.join(self.step_dir(candidate), MANIFEST)
                ):
                    raise  # Intact files that do not fit: another model, not damage.
                problems.append(str(e))
                damaged.append(candidate)
                continue
            if problems:
                # Kept for inspection under another name, out of the way of the steps the
                # resumed run will write again.
                moved = [self._set_aside(s) for s in damaged]
                warnings.warn(
                    "; ".join(problems)
                    + f". Resuming from checkpoint {candidate} instead; the damaged one"
                    + f"{'s are' if len(moved) > 1 else ' is'} kept as {', '.join(moved)}.",
                    stacklevel=2,
                )
            return state
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))

    def _set_aside(self, step: int) -> str:
        """Renames checkpoint `step`'s folder to ``<step>.damaged[-N]``; returns the new path."""
        base = self.step_dir(step) + ".damaged"
        path, n = base, 1
        while os.path.exists(path):
            n += 1
            path = f"{base}-{n}"
        if jax.process_index() == 0:
            os.rename(self.step_dir(step), path)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"gen_jax checkpoint set aside {step}")
        self._manager.reload()
        return path

    def close(self) -> None:
        self._manager.close()
