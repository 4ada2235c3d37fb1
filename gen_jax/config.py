"""Experiment configs (frozen dataclasses) and the one command line every experiment shares.

    python -m experiments.NAME --workdir DIR [--smoke] [--FIELD VALUE ...]

Every field of the experiment's config dataclass is an option, typed by its default
(`--steps 5000`, `--hidden 256,256`, `--use_ema false`). `--smoke` starts from the tiny
testing config instead of the default one. The resolved config is written to
`DIR/config.json`; rerunning on the same folder resumes, and refuses (before touching
anything) when options that shape the model or the data differ from the saved run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")

# Options that may change between a run and its resumption: how long, how often to log,
# sample and save, and which seeds a sweep covers (each seed's own run folder is checked
# on its own). Everything else would silently mix two different experiments.
RESUMABLE_FIELDS = frozenset(
    {"steps", "chunk_steps", "sample_every", "checkpoint_every", "eval_samples", "seeds"}
)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser_for(default: Any, hint: Any = None) -> Callable[[str], Any]:
    """An argparse `type=` that parses text into the type of `default`.

    An empty tuple says nothing of its items' type; then the field's annotation does
    (``tuple[int, ...]``), and without one they stay text.
    """
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, tuple):
        if default:
            item = _parser_for(default[0])
        else:
            args = typing.get_args(hint)
            item = _parser_for(args[0]()) if args and args[0] in (int, float, bool) else str

        def parse_tuple(text: str):
            return tuple(item(t) for t in text.split(",") if t.strip())

        return parse_tuple
    return type(default)


def parse_args(
    get_config: Callable[[], C],
    get_smoke_config: Callable[[], C],
    argv: Sequence[str] | None = None,
    description: str = "",
) -> tuple[C, str]:
    """Parses `--workdir DIR [--smoke] [--FIELD VALUE ...]` into (config, workdir).

    Raises:
      SystemExit (from argparse, with a message naming the option) on an unknown option or a
      value of the wrong type.
    """
    fields = dataclasses.fields(get_config())
    hints = typing.get_type_hints(type(get_config()))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", required=True, help="output folder; rerun to resume")
    parser.add_argument("--smoke", action="store_true", help="tiny testing config (seconds)")
    defaults = dataclasses.asdict(get_config())
    for f in fields:
        parser.add_argument(
            f"--{f.name}",
            type=_parser_for(defaults[f.name], hints.get(f.name)),
            default=None,
            metavar=type(defaults[f.name]).__name__.upper(),
            help=f"default: {defaults[f.name]!r}",
        )
    args = parser.parse_args(argv)
    config = get_smoke_config() if args.smoke else get_config()
    overrides = {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}
    return dataclasses.replace(config, **overrides), args.workdir


def layer_weights(
    weights: Sequence[Any], layers: Sequence[str], option: str
) -> tuple[float, ...] | None:
    """Parses a per-layer weights option into floats, or None (empty: equal weights).

    Raises:
      ValueError: a value that is not a number, or not one value per layer, naming the
        option.
    """
    if not weights:
        return None
    try:
        values = tuple(float(w) for w in weights)
    except ValueError as e:
        raise ValueError(f"--{option} must be numbers, e.g. 0.5,0.5; got {weights!r}") from e
    if len(values) != len(layers):
        raise ValueError(
            f"--{option} needs {len(layers)} values for {tuple(layers)}; got {len(values)}"
        )
    return values


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _finite_or_none(obj: Any) -> Any:
    """Replaces inf/nan floats by None: strict JSON has no Infinity or NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes strict JSON (inf/nan as null) to `path` through a temporary file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_finite_or_none(obj), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _defaults(config: Any) -> dict[str, Any]:
    """The JSON form of each field's declared default (fields without one are left out)."""
    defaults = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = json.loads(json.dumps(field.default))
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = json.loads(json.dumps(field.default_factory()))
    return defaults


def prepare_workdir(workdir: str, config: Any) -> None:
    """Creates `workdir` and writes config.json, checking a resumed run's config first.

    A field missing from a saved config.json (a run made before the field was added) counts
    as the value the old code behaved as: the config class's `LEGACY_DEFAULTS[field]` when
    it declares one (a `ClassVar` dict, for a field whose default is not the old
    behaviour), else the field's dataclass default.

    Raises:
      ValueError: if `workdir/config.json` exists and differs from `config` in a field that
        is not in RESUMABLE_FIELDS (nothing in the folder is changed then).
      NotADirectoryError: if `workdir` exists and is a file.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"--workdir {workdir} exists and is not a directory")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = config_to_dict(config)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        legacy = getattr(type(config), "LEGACY_DEFAULTS", {})
        for key, value in {**_defaults(config), **legacy}.items():
            old.setdefault(key, value)
        changed = sorted(
            k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_FIELDS
        )
        if changed:
            diffs = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
            raise ValueError(
                f"{workdir} holds a run with a different config ({diffs}); resuming it would mix "
                "two experiments. Use another --workdir, or the saved values."
            )
    write_json_atomic(path, new)
