"""The shared command line (parse_args) and the output folder's config check (prepare_workdir)."""

import dataclasses
import json
import re
from typing import ClassVar

import pytest

from gen_jax.config import (
    OPTION_RANGES,
    RESUMABLE_FIELDS,
    USER_ERRORS,
    main_guard,
    parse_args,
    prepare_workdir,
)


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "ring"
    hidden: tuple[int, ...] = (400, 400)
    scales: tuple[float, ...] = (0.5,)
    lr: float = 1e-4
    use_ema: bool = True
    steps: int = 1000
    chunk_steps: int = 100
    seed: int = 0
    seeds: tuple[int, ...] = ()  # empty: the items' type comes from the annotation
    layers: tuple[str, ...] = ()


def get_config():
    return Config()


def get_smoke_config():
    return Config(hidden=(8,), steps=5, chunk_steps=5)


def _parse(*argv):
    return parse_args(get_config, get_smoke_config, ["--workdir", "out", *argv])


def test_defaults_and_workdir():
    config, workdir = _parse()
    assert config == Config() and workdir == "out"


def test_values_are_parsed_by_the_type_of_their_default():
    config, _ = _parse(
        "--steps",
        "7",
        "--lr",
        "3e-3",
        "--hidden",
        "256,256",
        "--scales",
        "1,2.5",
        "--name",
        "grid",
        "--seed",
        "-2",
    )
    assert config.steps == 7 and type(config.steps) is int
    assert config.lr == 3e-3 and type(config.lr) is float
    assert config.hidden == (256, 256) and all(type(h) is int for h in config.hidden)
    assert config.scales == (1.0, 2.5)
    assert config.name == "grid"
    assert config.seed == -2


def test_single_item_tuple():
    assert _parse("--hidden", "32")[0].hidden == (32,)


def test_empty_tuple_default_parses_items_by_the_annotation():
    config, _ = _parse("--seeds", "0,1,2", "--layers", "relu1_1,relu2_1")
    assert config.seeds == (0, 1, 2)
    assert config.layers == ("relu1_1", "relu2_1")
    with pytest.raises(SystemExit):
        _parse("--seeds", "a,b")


@pytest.mark.parametrize(
    "text, value",
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
    ],
)
def test_bool_values(text, value):
    config, _ = _parse("--use_ema", text)
    assert config.use_ema is value


def test_smoke_selects_the_smoke_config_and_overrides_apply_on_top():
    config, _ = _parse("--smoke")
    assert config == get_smoke_config()
    config, _ = _parse("--smoke", "--steps", "9")
    assert config == dataclasses.replace(get_smoke_config(), steps=9)


@pytest.mark.parametrize(
    "argv",
    [
        ["--no_such_option", "1"],
        ["--steps", "ten"],
        ["--steps", "1.5"],
        ["--lr", "fast"],
        ["--use_ema", "maybe"],
        ["--hidden", "1,x"],
    ],
)
def test_bad_options_exit_naming_the_option(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(*argv)
    assert e.value.code != 0
    assert argv[0] in capsys.readouterr().err


def test_workdir_is_required(capsys):
    with pytest.raises(SystemExit):
        parse_args(get_config, get_smoke_config, ["--smoke"])
    assert "--workdir" in capsys.readouterr().err


# --- prepare_workdir ---------------------------------------------------------------------------


def test_prepare_workdir_creates_the_folder_and_writes_the_config(tmp_path):
    workdir = tmp_path / "a" / "b"
    prepare_workdir(str(workdir), Config())
    saved = json.loads((workdir / "config.json").read_text())
    assert saved == json.loads(json.dumps(dataclasses.asdict(Config())))
    assert saved["hidden"] == [400, 400]


def test_same_config_resumes(tmp_path):
    prepare_workdir(str(tmp_path), Config())
    prepare_workdir(str(tmp_path), Config())


def test_changed_resumable_field_is_accepted_and_recorded(tmp_path):
    assert {"steps", "chunk_steps"} <= RESUMABLE_FIELDS
    prepare_workdir(str(tmp_path), Config())
    prepare_workdir(str(tmp_path), Config(steps=5000, chunk_steps=10))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["steps"] == 5000 and saved["chunk_steps"] == 10


@pytest.mark.parametrize(
    "changed, field",
    [
        (Config(hidden=(8,)), "hidden"),
        (Config(lr=1.0), "lr"),
        (Config(use_ema=False), "use_ema"),
        (Config(seed=1, steps=5), "seed"),
    ],
)
def test_changed_model_field_is_refused_and_nothing_is_touched(tmp_path, changed, field):
    prepare_workdir(str(tmp_path), Config())
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=field):
        prepare_workdir(str(tmp_path), changed)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_refusal_names_only_the_non_resumable_fields(tmp_path):
    prepare_workdir(str(tmp_path), Config())
    with pytest.raises(ValueError) as e:
        prepare_workdir(str(tmp_path), Config(seed=3, steps=1))
    assert "seed" in str(e.value) and "steps" not in str(e.value)


def test_a_field_added_since_the_saved_run_counts_as_its_default(tmp_path):
    # A run saved before `use_ema` existed: resuming with the default is the same experiment,
    # resuming with another value is not.
    saved = json.loads(json.dumps(dataclasses.asdict(Config())))
    del saved["use_ema"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="use_ema"):
        prepare_workdir(str(tmp_path), Config(use_ema=False))
    prepare_workdir(str(tmp_path), Config())
    assert json.loads((tmp_path / "config.json").read_text())["use_ema"] is True


@dataclasses.dataclass(frozen=True)
class _ConfigWithLegacy(Config):
    # Added later with a default that is not what the old code did.
    penalty: float = 0.1
    LEGACY_DEFAULTS: ClassVar[dict] = {"penalty": 0.0}


def test_a_field_with_a_legacy_default_counts_as_that_value(tmp_path):
    saved = json.loads(json.dumps(dataclasses.asdict(Config())))  # no `penalty`
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"penalty: 0.0 -> 0.1"):
        prepare_workdir(str(tmp_path), _ConfigWithLegacy())
    prepare_workdir(str(tmp_path), _ConfigWithLegacy(penalty=0.0))
    assert json.loads((tmp_path / "config.json").read_text())["penalty"] == 0.0


def test_workdir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="file"):
        prepare_workdir(str(path), Config())
    assert path.read_text() == "not a folder"


def test_write_json_atomic_writes_strict_json_with_null_for_non_finite(tmp_path):
    import json

    from gen_jax.config import write_json_atomic

    path = tmp_path / "results.json"
    write_json_atomic(str(path), {"kl": float("inf"), "rows": [1.0, float("nan")], "ok": 2.5})
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"kl": None, "rows": [1.0, None], "ok": 2.5}
    assert not (tmp_path / "results.json.tmp").exists()


def test_damaged_config_json_is_refused_naming_it(tmp_path):
    # Found by fuzzing: a config.json that is not JSON raised a JSONDecodeError without the
    # path, and one holding a list or a number an AttributeError.
    for saved in (b"{not json", b"[1, 2]", b"3", b"\xff\xfe"):
        (tmp_path / "config.json").write_bytes(saved)
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "config.json"))):
            prepare_workdir(str(tmp_path), Config())
        assert (tmp_path / "config.json").read_bytes() == saved


# --- Ranges of the shared numeric options ------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--steps", "-5"], "argument --steps: expected a value >= 1, got -5"),
        (["--chunk_steps", "0"], "argument --chunk_steps: expected a value >= 1, got 0"),
        (["--lr", "nan"], "argument --lr: expected finite numbers, got nan"),
        (["--scales", "0.5,inf"], "argument --scales: expected finite numbers, got (0.5, inf)"),
    ],
)
def test_out_of_range_values_exit_2_naming_option_and_range(argv, expected, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(*argv)
    assert e.value.code == 2
    assert expected in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class _AutoStepsConfig:
    steps: int = 0  # 0: chosen by the experiment (like train_classifier's)
    batch_size: int = 8
    pieces: int = 2
    OPTION_RANGES: ClassVar[dict] = {"pieces": (1, 4)}


def _parse_auto(*argv):
    return parse_args(_AutoStepsConfig, _AutoStepsConfig, ["--workdir", "o", *argv])[0]


def test_an_experiments_own_default_is_accepted_outside_the_range(capsys):
    assert _parse_auto("--steps", "0").steps == 0
    assert _parse_auto("--steps", "7").steps == 7
    with pytest.raises(SystemExit):
        _parse_auto("--steps", "-1")
    assert "expected a value >= 1 (or 0, this experiment's default), got -1" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        _parse_auto("--batch_size", "0")


def test_a_config_class_may_add_ranges(capsys):
    assert _parse_auto("--pieces", "4").pieces == 4
    with pytest.raises(SystemExit):
        _parse_auto("--pieces", "5")
    assert "argument --pieces: expected a value in [1, 4], got 5" in capsys.readouterr().err
    assert OPTION_RANGES["chunk_steps"] == (1, None)


def test_negative_values_in_any_notation_are_values():
    # Found by fuzzing: argparse (before Python 3.13) took "-1e-3" and "-0.5,1" for option
    # names and answered "expected one argument".
    config = _parse("--lr", "-1e-3", "--scales", "-0.5,1", "--seed", "-2", "--seeds", "-1,-2")
    assert config[0].lr == -1e-3 and config[0].scales == (-0.5, 1.0)
    assert config[0].seed == -2 and config[0].seeds == (-1, -2)


def test_help_keeps_the_descriptions_line_breaks(capsys):
    description = (
        "Trains a thing.\n\n    python -m x --workdir a\n    python -m x --workdir b --smoke\n"
    )
    with pytest.raises(SystemExit) as e:
        parse_args(get_config, get_smoke_config, ["--help"], description)
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "    python -m x --workdir a" in lines
    assert "    python -m x --workdir b --smoke" in lines
    assert any("--debug" in line for line in lines)


# --- main_guard ---------------------------------------------------------------------------------


def _failing(error):
    def main(argv):
        main.argv = argv
        raise error

    return main


def test_main_guard_prints_a_user_error_as_one_line_and_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("GEN_JAX_DEBUG", raising=False)
    for error in (
        ValueError("--image x.png: not a readable image file"),
        FileNotFoundError("no such file: x"),
        NotADirectoryError("--workdir f exists and is not a directory"),
    ):
        with pytest.raises(SystemExit) as e:
            main_guard(_failing(error), ["--smoke"])
        assert e.value.code == 2
        assert capsys.readouterr().err == f"error: {error}\n"


def test_main_guard_shows_the_traceback_when_asked(monkeypatch):
    monkeypatch.delenv("GEN_JAX_DEBUG", raising=False)
    main = _failing(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        main_guard(main, ["--smoke", "--debug"])
    assert main.argv == ["--smoke"]  # --debug is main_guard's, not the experiment's
    monkeypatch.setenv("GEN_JAX_DEBUG", "1")
    with pytest.raises(ValueError, match="bad"):
        main_guard(main, [])
    monkeypatch.setenv("GEN_JAX_DEBUG", "0")
    with pytest.raises(SystemExit):
        main_guard(main, [])


@pytest.mark.parametrize("bug", [TypeError("x"), KeyError("x"), AttributeError("x")])
def test_main_guard_never_hides_bugs(bug, monkeypatch):
    monkeypatch.delenv("GEN_JAX_DEBUG", raising=False)
    with pytest.raises(type(bug)):
        main_guard(_failing(bug), [])
    assert not isinstance(bug, USER_ERRORS)


def test_main_guard_returns_what_main_returns_and_passes_exits_through():
    assert main_guard(lambda argv: {"argv": argv}, ["--a", "1"]) == {"argv": ["--a", "1"]}
    with pytest.raises(SystemExit) as e:
        main_guard(_failing(SystemExit(3)), [])
    assert e.value.code == 3
