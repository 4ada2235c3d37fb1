"""How the benchmarks report: markdown tables, ratios, fact lists, the files they write, and
the command line that names them.

Shared by every benchmark's ``main`` and report module; `benchmarks.machine` gives the
lines about the machine. Output paths are checked before the timing (`check_out_paths`),
and every file is written atomically (`write_text`), the JSON beside the markdown
(`json_path`) where a benchmark writes both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "add_ratios",
    "check_out_paths",
    "fact_lines",
    "fmt_ratio",
    "fmt_spread",
    "json_path",
    "parse_config",
    "relative",
    "table",
    "table_row",
    "to_json",
    "write_report",
    "write_text",
]

# ---------------------------------------------------------------------------------------
# Numbers.


def relative(a: float, b: float) -> float:
    """``|a - b|`` relative to the larger magnitude (0 when both are 0)."""
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def add_ratios(
    rows: Sequence[dict[str, Any]], reference_key: str, ratios: Mapping[str, str]
) -> dict[str, Any] | None:
    """Each row's rates over the reference row's: ``row[name] = row[field] / ref[field]``
    for every ``name: field`` of ``ratios``; None in every row when no row has the key
    ``reference_key`` (the reference was skipped). Returns the reference row or None."""
    reference = next((r for r in rows if r["key"] == reference_key), None)
    for row in rows:
        for name, field in ratios.items():
            row[name] = row[field] / reference[field] if reference else None
    return reference


# ---------------------------------------------------------------------------------------
# Markdown.


def table_row(cells: Iterable[str]) -> str:
    """``| a | b |``; an empty cell is written ``| |``."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row of cells.

    ``align`` has one letter per column: ``l`` (text, left) or ``r`` (numbers, right).
    """
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(
            f"align: expected one of 'l'/'r' per column ({len(header)}), found {align!r}"
        )
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    return [table_row(header), rule, *(table_row(cells) for cells in rows)]


def fmt_ratio(x: float | None) -> str:
    """A speed ratio: ``2.06x``, or ``n/a`` where there was no reference row."""
    return "n/a" if x is None else f"{x:.2f}x"


def fmt_spread(values: Sequence[float], digits: int) -> str:
    """The range of a row's repeats: ``min-max`` with ``digits`` decimals."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def fact_lines(facts: Iterable[str]) -> list[str]:
    """The bullet list under a table, after a blank line."""
    return [""] + [f"- {fact}" for fact in facts]


# ---------------------------------------------------------------------------------------
# The command line and the files.


def parse_config(parser: argparse.ArgumentParser, config_cls: type, argv: list[str] | None):
    """(config, args): ``argv`` parsed, its flags that name fields of the frozen dataclass
    ``config_cls`` made into one, and that checked by its ``validate()``, whose ValueError
    is refused through ``parser.error`` (before anything runs)."""
    args = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    config = config_cls(**{k: v for k, v in vars(args).items() if k in fields})
    try:
        config.validate()
    except ValueError as e:
        parser.error(str(e))
    return config, args


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


def to_json(result: Mapping[str, Any]) -> str:
    """A result as the benchmarks save it: indented, NaN allowed, a final newline."""
    return json.dumps(result, indent=2, allow_nan=True) + "\n"


def json_path(markdown_path: str) -> str:
    """The JSON file written beside the markdown one: FILE.md -> FILE.json."""
    root, ext = os.path.splitext(markdown_path)
    return (root if ext == ".md" else markdown_path) + ".json"


def write_report(markdown_path: str | None, markdown: str, result: Mapping[str, Any]) -> None:
    """The markdown at ``markdown_path`` and the result as JSON beside it (`json_path`);
    nothing without a path."""
    if markdown_path:
        write_text(markdown_path, markdown)
        write_text(json_path(markdown_path), to_json(result))
