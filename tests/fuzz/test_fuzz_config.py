"""Fuzzed command lines and run folders: parse_args returns a config whose values have their
field's type and range, or exits through argparse (status 2, naming the option; 0 for
--help); layer_weights and prepare_workdir raise ValueError naming the option or file."""

import contextlib
import dataclasses
import io
import json
import math

import hypothesis.strategies as st
import pytest
from fuzz_inputs import FUZZ, damaged, names_path
from hypothesis import given

from experiments import gan_mixture, train_classifier
from gen_jax.config import OPTION_RANGES, layer_weights, parse_args, prepare_workdir


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "ring"
    hidden: tuple[int, ...] = (400, 400)
    scales: tuple[float, ...] = (0.5,)
    lr: float = 1e-4
    use_ema: bool = True
    steps: int = 1000
    chunk_steps: int = 100
    ema_decay: float = 0.999
    eval_samples: int = 0
    seeds: tuple[int, ...] = ()


EXPERIMENTS = {
    "test": (Config, lambda: Config(steps=5, chunk_steps=5)),
    "gan_mixture": (gan_mixture.get_config, gan_mixture.get_smoke_config),
    "train_classifier": (train_classifier.get_config, train_classifier.get_smoke_config),
}
VALUES = st.one_of(
    st.sampled_from(["0", "-5", "1", "3", "1.5", "nan", "inf", "-inf", "1e400", "true", "no"]),
    st.sampled_from(["", ",", "1,2", "1,,x", "0.5,nan", "--steps", "-1e-3", "9" * 5000]),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True).map(repr),
    st.text(max_size=12),
)


def _argv(fields):
    options = st.sampled_from(
        [f"--{f}" for f in fields] + ["--smoke", "--debug", "--workdir", "--nope", "--st", "-h"]
    )
    token = st.one_of(
        st.tuples(options, VALUES).map(list),
        st.tuples(options, VALUES).map(lambda t: [f"{t[0]}={t[1]}"]),
        options.map(lambda o: [o]),
        VALUES.map(lambda v: [v]),
    )
    return st.lists(token, max_size=5).map(lambda parts: [t for p in parts for t in p])


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(EXPERIMENTS)), with_workdir=st.booleans())
def test_any_command_line(data, name, with_workdir):
    get_config, get_smoke_config = EXPERIMENTS[name]
    fields = [f.name for f in dataclasses.fields(get_config())]
    argv = data.draw(_argv(fields))
    if with_workdir:
        argv = ["--workdir", "out", *argv]
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            config, workdir = parse_args(get_config, get_smoke_config, argv)
        except SystemExit as e:
            if e.code == 0:  # --help
                assert "--workdir" in out.getvalue()
                return
            assert e.code == 2
            message = err.getvalue().rpartition("error:")[2]  # (a value may hold line breaks)
            assert message and ("--" in message or "argument" in message), err.getvalue()
            return
    assert isinstance(workdir, str)
    own = [dataclasses.asdict(get_config()), dataclasses.asdict(get_smoke_config())]
    for field in dataclasses.fields(config):
        value, default = getattr(config, field.name), own[0][field.name]
        assert type(value) is type(default), field.name
        if any(value == d[field.name] for d in own):
            continue
        items = value if isinstance(value, tuple) else (value,)
        assert all(math.isfinite(v) for v in items if isinstance(v, float)), field.name
        if field.name in OPTION_RANGES and not isinstance(value, bool):
            lo, hi = OPTION_RANGES[field.name]
            assert (lo is None or value >= lo) and (hi is None or value <= hi), field.name


@FUZZ
@given(
    name=st.sampled_from(sorted(EXPERIMENTS)),
    data=st.data(),
    number=st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_any_number_for_a_numeric_option(name, data, number):
    # Accepted exactly when in the option's range (finite for floats) or the experiment's
    # own default; otherwise exit 2 naming the option, before anything is returned.
    get_config, get_smoke_config = EXPERIMENTS[name]
    defaults = dataclasses.asdict(get_config())
    numeric = sorted(k for k, v in defaults.items() if type(v) in (int, float))
    field = data.draw(st.sampled_from(numeric))
    kind = type(defaults[field])
    if kind is int and not isinstance(number, int):
        number = int(number) if math.isfinite(number) else 0
    value = kind(number)
    text = repr(value) if kind is float else str(value)
    lo, hi = OPTION_RANGES.get(field, (None, None))
    own = {defaults[field], dataclasses.asdict(get_smoke_config())[field]}
    ok = value in own or (
        math.isfinite(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            config, _ = parse_args(
                get_config, get_smoke_config, ["--workdir", "o", f"--{field}", text]
            )
        except SystemExit as e:
            assert not ok and e.code == 2, (field, value, err.getvalue())
            assert f"argument --{field}:" in err.getvalue()
            return
    assert ok, (field, value)
    assert getattr(config, field) == value


@FUZZ
@given(
    weights=st.lists(st.one_of(st.text(max_size=6), st.floats().map(repr)), max_size=4),
    layers=st.lists(st.sampled_from(["relu1_1", "relu2_1", "relu3_1"]), max_size=4),
)
def test_any_layer_weights(weights, layers):
    try:
        values = layer_weights(weights, layers, "style_layer_weights")
    except ValueError as e:
        assert "--style_layer_weights" in str(e)
        return
    assert values is None or (len(values) == len(layers) and all(type(v) is float for v in values))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@FUZZ
@given(
    saved=st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"[]", b"null", b"1", b'"x"', b"{}", b'{"steps": 3}', b"\xff\xfe"]),
        damaged(json.dumps(dataclasses.asdict(Config())).encode()),
    )
)
def test_any_saved_config_json(runs, saved):
    # A run folder whose config.json is damaged: a ValueError naming the file, and the
    # folder left as it was; or, for JSON that is a config, the usual resume check.
    workdir = runs / "run"
    workdir.mkdir(exist_ok=True)
    (workdir / "config.json").write_bytes(saved)
    try:
        prepare_workdir(str(workdir), Config())
    except ValueError as e:
        assert names_path(e, workdir), str(e)
        assert (workdir / "config.json").read_bytes() == saved
    else:
        assert json.loads((workdir / "config.json").read_text()) == json.loads(
            json.dumps(dataclasses.asdict(Config()))
        )
