"""Experiment configs (frozen dataclasses) and the one command line every experiment shares.

    python -m experiments.NAME --workdir DIR [--smoke] [--FIELD VALUE ...]

Every field of the experiment's config dataclass is an option, typed by its default
(`--steps 5000`, `--hidden 256,256`, `--use_ema false`). `--smoke` starts from the tiny
testing config instead of the default one. The shared numeric options are checked against
`OPTION_RANGES` as they are parsed, and float options must be finite. The resolved config
is written to `DIR/config.json`; rerunning on the same folder resumes, and refuses (before
touching anything) when options that shape the model or the data differ from the saved run.

`main_guard(main)` is what an experiment's `if __name__ == "__main__":` block calls: a
user error (`USER_ERRORS`) is printed as one line `error: <message>` with exit status 2,
and its traceback only with `--debug` (or GEN_JAX_DEBUG=1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")

# Options that may change between a run and its resumption: how long, how often to log,
# sample and save, and which seeds a sweep covers (each seed's own run folder is checked
# on its own). Everything else would silently mix two different experiments.
RESUMABLE_FIELDS = frozenset(
    {
        "steps",
        "chunk_steps",
        "sample_every",
        "checkpoint_every",
        "eval_samples",
        "seeds",
        "tensorboard",
    }
)


# The values the shared numeric options take: (lowest, highest), inclusive, None for no
# bound. A config class may add or override entries with a `ClassVar` dict of the same
# name. A value equal to the option's default in the experiment's own config (or smoke
# config) is always accepted: there a default outside the range is a documented special
# value (train_classifier's `steps = 0`: "the dataset's default").
OPTION_RANGES: dict[str, tuple[float | None, float | None]] = {
    "steps": (1, None),
    "chunk_steps": (1, None),
    "batch_size": (1, None),
    "sample_every": (0, None),  # 0: only at the end
    "checkpoint_every": (0, None),  # 0: only at the end
    "eval_every": (0, None),
    "eval_samples": (0, None),  # 0: no evaluation
    "limit_examples": (0, None),  # 0: all
    "limit_eval": (0, None),
    "warmup_steps": (0, None),
    "n_critic": (1, None),
    "num_examples": (1, None),
    "iterative_steps": (1, None),
    "ema_decay": (0.0, 1.0),
}

# The errors a user can cause: a bad path, a corrupt or wrong file, a bad value, a failed
# download, a run that diverged (non-finite metrics). The project's reader errors are
# ValueErrors (IDXFormatError, TorchCheckpointError, StateDictMismatchError,
# ClassifierWeightsError), so they are in. Bugs (TypeError, KeyError, AttributeError ...)
# are not: they keep their traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ConnectionError,
    FloatingPointError,
)

DEBUG_FLAG = "--debug"
DEBUG_ENV = "GEN_JAX_DEBUG"


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

    The description (normally the experiment's docstring) keeps its line breaks, so usage
    examples stay one per line in `--help`.

    Raises:
      SystemExit (from argparse, status 2, with a message naming the option) on an unknown
      option, a value of the wrong type, or a value outside its range (`OPTION_RANGES`;
      a float that is not finite), before anything is written.
    """
    fields = dataclasses.fields(get_config())
    hints = typing.get_type_hints(type(get_config()))
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", required=True, help="output folder; rerun to resume")
    parser.add_argument("--smoke", action="store_true", help="tiny testing config (seconds)")
    if not any(f.name == DEBUG_FLAG[2:] for f in fields):
        # Read (and removed) by main_guard; listed here so that --help shows it.
        parser.add_argument(
            DEBUG_FLAG,
            action="store_true",
            help=f"show the traceback of an error (also: {DEBUG_ENV}=1)",
        )
    defaults = dataclasses.asdict(get_config())
    for f in fields:
        parser.add_argument(
            f"--{f.name}",
            type=_parser_for(defaults[f.name], hints.get(f.name)),
            default=None,
            metavar=type(defaults[f.name]).__name__.upper(),
            help=f"default: {defaults[f.name]!r}",
        )
    args = parser.parse_args(_attach_negative_values(argv, {f"--{f.name}" for f in fields}))
    config = get_smoke_config() if args.smoke else get_config()
    overrides = {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}
    ranges = {**OPTION_RANGES, **getattr(type(config), "OPTION_RANGES", {})}
    own = (dataclasses.asdict(get_config()), dataclasses.asdict(get_smoke_config()))
    for name, value in overrides.items():
        problem = _out_of_range(value, ranges.get(name), [d[name] for d in own])
        if problem:
            parser.error(f"argument --{name}: {problem}")
    return dataclasses.replace(config, **overrides), args.workdir


# A value that starts like a negative number: argparse (before Python 3.13) takes "-1e-3",
# "-inf" or "-0.5,1" for an option name and reports "expected one argument".
_NEGATIVE_VALUE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _attach_negative_values(argv: Sequence[str] | None, options: set[str]) -> list[str]:
    """Writes `--FIELD -1e-3` as `--FIELD=-1e-3`, which every argparse reads as the value."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out, i = [], 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _within(value: Any, bounds: tuple[float | None, float | None]) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _out_of_range(
    value: Any, bounds: tuple[float | None, float | None] | None, defaults: list[Any]
) -> str | None:
    """What is wrong with an option's value (None: nothing), given its range and defaults."""
    if any(value == d and type(value) is type(d) for d in defaults):
        return None
    items = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        return f"expected finite numbers, got {value!r}"
    if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if _within(value, bounds):
        return None
    lo, hi = bounds
    expected = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in [{lo}, {hi}]"
    special = sorted({d for d in defaults if not _within(d, bounds)})
    if special:
        expected += f" (or {', '.join(map(repr, special))}, this experiment's default)"
    return f"expected a value {expected}, got {value!r}"


def main_guard(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> Any:
    """Runs an experiment's `main(argv)` as a command: user errors become one line, exit 2.

    What an experiment's `if __name__ == "__main__":` block calls (`main_guard(main)`). An
    exception in `USER_ERRORS` is printed as ``error: <message>`` on stderr and the process
    exits with status 2, without a traceback, unless `--debug` is among the arguments (it is
    removed before `main` sees them) or the environment has GEN_JAX_DEBUG=1; then it
    propagates with its traceback. Any other exception (a bug) always propagates.

    Args:
      main: the experiment's `main`, taking the argument list.
      argv: the arguments; None: `sys.argv[1:]`.

    Returns:
      What `main` returns.

    Raises:
      SystemExit: status 2 on a user error (and whatever `main` or argparse exits with).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return main(argv)
    except USER_ERRORS as e:
        if debug:
            raise
        message = str(e) or type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


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


def _read_saved_config(path: str, workdir: str) -> dict[str, Any]:
    """The dict in a run's config.json, or a ValueError naming the file."""
    advice = f"Use another --workdir, or remove {workdir} if it holds nothing you need."
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: expected a run's config as JSON, found: {e}. {advice}") from e
    if not isinstance(saved, dict):
        raise ValueError(
            f"{path}: expected a run's config (a JSON object), found a JSON "
            f"{type(saved).__name__}. {advice}"
        )
    return saved


def prepare_workdir(workdir: str, config: Any) -> None:
    """Creates `workdir` and writes config.json, checking a resumed run's config first.

    A field missing from a saved config.json (a run made before the field was added) counts
    as the value the old code behaved as: the config class's `LEGACY_DEFAULTS[field]` when
    it declares one (a `ClassVar` dict, for a field whose default is not the old
    behaviour), else the field's dataclass default.

    A config whose learning-rate schedule is built over its `steps` says so with a method
    ``schedule_spans_steps() -> bool``; such a run cannot change its length on resume.

    Raises:
      ValueError: if `workdir/config.json` exists and differs from `config` in a field that
        is not in RESUMABLE_FIELDS, or in `steps` when the schedule spans them, or is not a
        JSON object (nothing in the folder is changed then).
      NotADirectoryError: if `workdir` exists and is a file.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"--workdir {workdir} exists and is not a directory")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = config_to_dict(config)
    if os.path.exists(path):
        old = _read_saved_config(path, workdir)
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
        spans = getattr(config, "schedule_spans_steps", None)
        if old.get("steps") != new.get("steps") and spans is not None and spans():
            raise ValueError(
                f"{workdir} holds a run of {old.get('steps')} steps whose learning-rate "
                f"schedule spans exactly those steps; resuming it with --steps "
                f"{new.get('steps')} would restart the schedule's decay part-way (a jump in "
                "the learning rate), so it is refused. Use another --workdir for a run of "
                "that length" + getattr(config, "SCHEDULE_ADVICE", "") + "."
            )
    write_json_atomic(path, new)
