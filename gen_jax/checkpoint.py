"""Checkpoints of whole training states with orbax: the only module that imports orbax.

A state is saved as its Flax state dict (every leaf, the PRNG key and step included; the
static modules and optimizers are rebuilt by the code). Orbax writes each checkpoint into a
temporary directory and renames it only when complete, and `max_to_keep >= 2` keeps the
previous one, so an interrupted or failed run never destroys the last good checkpoint.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp
from flax import serialization

T = TypeVar("T")


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
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Writes `state` as checkpoint `step` (blocking until it is complete on disk)."""
        self._manager.save(
            int(step), args=ocp.args.StandardSave(serialization.to_state_dict(state)), force=True
        )
        self._manager.wait_until_finished()

    def restore(self, template: T, step: int | None = None) -> T:
        """Restores checkpoint `step` (default: the newest) into the structure of `template`.

        Args:
          template: a state of the same structure (e.g. a freshly initialised one); its leaves'
            shapes, dtypes and shardings are the restore targets.
          step: which checkpoint; None for the newest.

        Raises:
          FileNotFoundError: if there is no such checkpoint in the directory.
          ValueError: if the checkpoint's tree does not match the template's.
        """
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint {'' if step is None else step} in "
                f"{self.directory} (found steps {self._manager.all_steps()})"
            )
        target = jax.tree.map(
            ocp.utils.to_shape_dtype_struct, serialization.to_state_dict(template)
        )
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint {step} in {self.directory} does not match the state being "
                f"restored (was it written by a different model or config?): {e}"
            ) from e
        return serialization.from_state_dict(template, restored)

    def close(self) -> None:
        self._manager.close()
