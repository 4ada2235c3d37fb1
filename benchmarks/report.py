"""Where the benchmarks write their tables (shared by every benchmark's ``main``)."""

from __future__ import annotations

import argparse
import os

__all__ = ["check_out_paths", "write_text"]


def check_out_paths(parser: argparse.ArgumentParser, **paths: str | None) -> None:
    """Refuses, through ``parser.error``, an output whose directory does not exist.

    Called before the timing, so a mistyped path fails at once instead of after minutes
    of work. ``paths`` maps a flag's name without dashes (``out``) to its value; None or an
    empty value means the flag was not given.
    """
    for flag, path in paths.items():
        if not path:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            parser.error(
                f"--{flag} {path}: expected a file in an existing directory, found no {parent}"
            )


def write_text(path: str | None, text: str) -> None:
    """Writes ``text`` to ``path``; nothing when no path was given.

    Through a temporary file beside it and a rename, so a run killed mid-write (a time
    limit) leaves the previous complete file, never a truncated one.
    """
    if path:
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
