"""gen_jax.nn.xla_cpu's tuning table: the measured per-shape choice behind
``algorithm="tune"``, reused on every trace, saved and loaded.

Through the public door, except where a test must reach an internal: `_tuning.tuned_choice`'s
own argument checks, and the timing and the clock the tests substitute."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gen_jax.models.features import VGG, prepare
from gen_jax.nn import xla_cpu
from gen_jax.nn.xla_cpu import Choice, _tuning, conv_general_dilated, winograd_plan

DN = ("NHWC", "HWIO", "NHWC")
SAME = ((1, 1), (1, 1))


def _tune(lhs_shape, rhs_shape, dtype, backend=None):
    """The table's choice for a SAME 3x3 convolution, through the public door."""
    return winograd_plan(lhs_shape, rhs_shape, (1, 1), SAME, dtype, "tune", backend)


@pytest.fixture(autouse=True)
def _fresh_tuning():
    xla_cpu.clear_tuning()
    yield
    xla_cpu.clear_tuning()
    xla_cpu.set_tuning_budget(None)


@pytest.fixture
def fake_timer(monkeypatch):
    """Replaces the timing with fixed seconds per candidate; records what was timed."""
    timed = []
    speeds = {}

    def fake(choice, x, w, b, pads, precision, limit):
        timed.append((choice, x.shape, w.shape))
        seconds = speeds.get(choice.name, 1.0)
        if isinstance(seconds, Exception):
            raise seconds
        return [seconds], None

    monkeypatch.setattr(_tuning, "_time_candidate", fake)
    return timed, speeds


def test_candidates_leave_out_tiles_larger_than_the_output():
    names = [c.name for c in xla_cpu.candidates(16)]
    assert names == [
        "direct",
        "winograd2, data first",
        "winograd2, kernel first",
        "winograd4, data first",
        "winograd4, kernel first",
    ]
    assert [c.name for c in xla_cpu.candidates(3)] == [
        "direct",
        "winograd2, data first",
        "winograd2, kernel first",
    ]
    assert xla_cpu.candidates(1) == [Choice(None, None)]
    assert Choice(4, None).name == "winograd4"


def test_the_fastest_candidate_is_kept_and_measured_once(fake_timer):
    timed, speeds = fake_timer
    speeds.update({"direct": 3.0, "winograd4, kernel first": 0.5, "winograd2, data first": 0.7})
    plan = winograd_plan((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), SAME, jnp.float32, "tune", "cpu")
    assert plan == Choice(4, True)
    assert len(timed) == 5
    # The same key again: no new measurement; the record keeps every candidate's time.
    assert winograd_plan((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), SAME, "float32", "tune") == plan
    assert len(timed) == 5
    (record,) = xla_cpu.tuning_records()
    assert record["choice"] == plan and record["lhs_shape"] == (1, 16, 16, 8)
    assert record["seconds"]["direct"] == 3.0 and len(record["seconds"]) == 5
    # Another shape, or the same under another default precision, is measured again.
    winograd_plan((1, 16, 16, 8), (3, 3, 8, 16), (1, 1), SAME, jnp.float32, "tune")
    with jax.default_matmul_precision("highest"):
        winograd_plan((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), SAME, jnp.float32, "tune")
    assert len(timed) == 15 and len(xla_cpu.tuning_records()) == 3
    xla_cpu.clear_tuning()
    assert xla_cpu.tuning_records() == []


def test_a_candidate_that_fails_is_recorded_and_left_out(fake_timer):
    timed, speeds = fake_timer
    speeds.update(
        {
            "direct": 2.0,
            "winograd4, data first": RuntimeError("RESOURCE_EXHAUSTED: Out of memory " + "x" * 999),
            "winograd4, kernel first": 0.5,
        }
    )
    plan = _tune((1, 16, 16, 8), (3, 3, 8, 8), jnp.float32)
    assert plan == Choice(4, True) and len(timed) == 5
    (record,) = xla_cpu.tuning_records()
    assert "winograd4, data first" not in record["seconds"] and len(record["seconds"]) == 4
    error = record["failed"]["winograd4, data first"]
    assert error.startswith("RuntimeError: RESOURCE_EXHAUSTED: Out of memory")
    assert len(error) == _tuning._ERROR_CHARS
    # The direct convolution is what everything falls back to: its failure is raised.
    xla_cpu.clear_tuning()
    speeds["direct"] = ValueError("no direct convolution")
    with pytest.raises(ValueError, match="no direct convolution"):
        _tune((1, 16, 16, 8), (3, 3, 8, 8), jnp.float32)
    assert xla_cpu.tuning_records() == []


def test_past_the_budget_new_shapes_take_autos_rule_unmeasured(fake_timer, monkeypatch):
    timed, speeds = fake_timer
    speeds.update({"direct": 3.0, "winograd2, kernel first": 0.5})
    clock = iter(range(0, 1000, 10))  # every measurement takes 10 s
    monkeypatch.setattr(_tuning, "_clock", lambda: float(next(clock)))
    xla_cpu.set_tuning_budget(15)
    assert xla_cpu.tuning_budget() == 15.0
    first = _tune((1, 32, 32, 64), (3, 3, 64, 64), jnp.float32, "cpu")
    second = _tune((1, 16, 16, 64), (3, 3, 64, 64), jnp.float32, "cpu")
    assert first == second == Choice(2, True) and len(timed) == 10  # 20 s spent: over
    third = _tune((1, 32, 32, 64), (3, 3, 64, 128), jnp.float32, "cpu")
    # "auto"'s rule on the CPU: F(4x4) on a 32 px map, in the rule's product order.
    assert third == winograd_plan((1, 32, 32, 64), (3, 3, 64, 128), (1, 1), SAME, "float32")
    assert third == Choice(4, None) and len(timed) == 10
    record = xla_cpu.tuning_records()[-1]
    assert "budget of 15 s was spent (20.0 s)" in record["skipped"]
    assert record["seconds"] == {} and record["measure_s"] == 0.0
    # Kept like a measured choice, so preparation and application agree.
    assert _tune((1, 32, 32, 64), (3, 3, 64, 128), "float32") == third
    assert len(xla_cpu.tuning_records()) == 3
    xla_cpu.set_tuning_budget(None)
    _tune((1, 8, 8, 64), (3, 3, 64, 64), jnp.float32, "cpu")
    assert len(timed) == 15
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            xla_cpu.set_tuning_budget(bad)


def test_what_winograd_cannot_compute_is_not_measured(fake_timer):
    timed, _ = fake_timer

    def plan(kernel=3, stride=1, dtype=jnp.float32, pads=SAME):
        return winograd_plan(
            (1, 16, 16, 8), (kernel, kernel, 8, 8), (stride, stride), pads, dtype, "tune"
        )

    assert plan(kernel=5).tile is None
    assert plan(stride=2).tile is None
    assert plan(pads=((3, 3), (1, 1))).tile is None
    # 16-bit floats stay direct, as under "auto".
    assert plan(dtype=jnp.bfloat16).tile is None
    assert timed == []


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\[3, 3, C, K\]"):
        _tune((1, 8, 8, 4), (3, 3, 5, 8), jnp.float32)
    with pytest.raises(ValueError, match="padding"):
        _tuning.tuned_choice((1, 8, 8, 4), (3, 3, 4, 8), ((0, 3), (1, 1)), jnp.float32)


def test_a_real_measurement_inside_jit_gives_the_direct_result():
    """Measured while the caller's program is traced: the tuned convolution's value and
    input gradient match the direct convolution's."""
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 12, 12, 8))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 8, 16)) / 8

    def loss(x, algorithm):
        if algorithm == "lax":
            y = lax.conv_general_dilated(x, w, (1, 1), SAME, dimension_numbers=DN)
        else:
            y = conv_general_dilated(x, w, (1, 1), SAME, dimension_numbers=DN, algorithm=algorithm)
        return jnp.sum(jnp.sin(y))

    with jax.default_matmul_precision("highest"):
        want, want_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)(x, "lax")
        got, got_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)(x, "tune")
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-5)
    (record,) = xla_cpu.tuning_records()
    assert record["backend"] == jax.default_backend() and record["dtype"] == "float32"
    assert len(record["seconds"]) == 5 and all(t > 0 for t in record["seconds"].values())
    assert record["seconds"][record["choice"].name] == min(record["seconds"].values())
    # Every Winograd candidate's output and input gradient against the direct ones.
    assert sorted(record["deviation"]) == sorted(set(record["seconds"]) - {"direct"})
    assert all(0 < d < 1e-5 for d in record["deviation"].values()), record["deviation"]


def test_vgg_runs_the_tuned_choice_with_prepared_kernels(fake_timer):
    """Each VGG layer takes the measured choice (here Winograd F(2x2) with the kernel first,
    which no fixed rule picks on the thin layers) and agrees with the direct network."""
    _, speeds = fake_timer
    speeds["winograd2, kernel first"] = 0.1
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, 24, 20, 3))
    net = VGG(depth=16, conv_algorithm="direct")
    params = net.init(jax.random.PRNGKey(3), x, outputs=("relu3_1",))["params"]
    layers = ("relu1_2", "relu3_1")

    def loss(variables, x, net):
        return sum(jnp.sum(f**2) for f in net.apply(variables, x, outputs=layers).values())

    grad = jax.jit(jax.value_and_grad(loss, 1), static_argnums=2)
    want, want_grad = grad({"params": params}, x, net)
    tuned = net.clone(conv_algorithm="tune")
    variables = prepare(tuned, params, x, layers)
    # Every conv is prepared, conv1_1 (3 -> 64) included: its kernels for tile 2.
    assert all(r["choice"] == Choice(2, True) for r in xla_cpu.tuning_records())
    assert (16, 64, 3) in [leaf.shape for leaf in jax.tree.leaves(variables)]
    got, got_grad = grad(variables, x, tuned)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(
        got_grad, want_grad, rtol=1e-4, atol=1e-5 * float(jnp.abs(want_grad).max())
    )
    # Kernels prepared for another choice (a later measurement picked tile 4) are refused.
    xla_cpu.clear_tuning()
    speeds["winograd4, data first"] = 0.01
    retraced = jax.jit(jax.value_and_grad(loss, 1), static_argnums=2)
    with pytest.raises(ValueError, match="winograd_kernels"):
        retraced(variables, x, tuned)


def _hlo(algorithm="tune"):
    """The program of a fresh function (so nothing is reused from an earlier trace)."""
    x = jnp.zeros((1, 16, 16, 8))
    w = jnp.zeros((3, 3, 8, 8))

    def f(x, w):
        y = conv_general_dilated(x, w, (1, 1), SAME, dimension_numbers=DN, algorithm=algorithm)
        return jnp.sum(y**2)

    return jax.jit(jax.grad(f)).lower(x, w).as_text()


def test_each_key_is_measured_once_and_every_trace_compiles_the_same_program(fake_timer):
    timed, speeds = fake_timer
    speeds["winograd2, kernel first"] = 0.1
    first = _hlo()
    assert len(timed) == 5
    # Other timings now would pick another candidate: the table's entry wins, unmeasured.
    speeds["direct"] = 0.01
    assert _hlo() == first and len(timed) == 5
    assert first != _hlo("direct")


def test_a_saved_table_loads_into_the_same_programs_without_measuring(
    fake_timer, tmp_path, monkeypatch
):
    """Tune a shape, save, clear, load, trace again: no measuring, the same choice and HLO."""
    _timed, speeds = fake_timer
    speeds["winograd2, kernel first"] = 0.1  # A choice no fixed rule makes.
    tuned = _hlo()
    records = xla_cpu.tuning_records()
    path = tmp_path / "tuning.json"
    assert xla_cpu.save_tuning(path) == 1
    saved = json.loads(path.read_text())
    assert saved["format"] == "gen_jax.nn.xla_cpu tuning" and saved["version"] == 1
    assert saved["entries"][0]["choice"] == {"tile": 2, "kernel_first": True}
    xla_cpu.clear_tuning()
    monkeypatch.setattr(_tuning, "_time_candidate", lambda *a: pytest.fail("measured"))
    assert xla_cpu.load_tuning(path) == 1
    assert _hlo() == tuned
    (loaded,) = xla_cpu.tuning_records()
    assert loaded["loaded_from"] == str(path)
    assert {k: v for k, v in loaded.items() if k != "loaded_from"} == records[0]
    # Loading the same file again agrees with the table; saving it again gives the same file.
    assert xla_cpu.load_tuning(path) == 1 and len(xla_cpu.tuning_records()) == 1
    again = tmp_path / "again.json"
    xla_cpu.save_tuning(again)
    assert json.loads(again.read_text())["entries"] == saved["entries"]


def test_loaded_entries_do_not_count_against_the_budget(fake_timer, tmp_path, monkeypatch):
    timed, _ = fake_timer
    clock = iter(range(0, 1000, 10))  # every measurement takes 10 s
    monkeypatch.setattr(_tuning, "_clock", lambda: float(next(clock)))
    _tune((1, 16, 16, 8), (3, 3, 8, 8), jnp.float32)
    xla_cpu.save_tuning(tmp_path / "t.json")
    xla_cpu.clear_tuning()
    xla_cpu.load_tuning(tmp_path / "t.json")
    xla_cpu.set_tuning_budget(5)
    _tune((1, 16, 16, 8), (3, 3, 8, 16), jnp.float32)  # 0 s spent here: measured
    assert len(timed) == 10 and "skipped" not in xla_cpu.tuning_records()[-1]


def _entry(**changes):
    entry = {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "lhs_shape": [1, 16, 16, 8],
        "rhs_shape": [3, 3, 8, 8],
        "pads": [[1, 1], [1, 1]],
        "dtype": "float32",
        "precision": ["None", "None"],
        "choice": {"tile": 4, "kernel_first": False},
    }
    entry.update(changes)
    return entry


def _file(tmp_path, entries=None, **fields):
    document = {"format": "gen_jax.nn.xla_cpu tuning", "version": 1, "entries": entries or []}
    document.update(fields)
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    "document, message",
    [
        ("{not json", "invalid JSON"),
        ("\xff\xfe\x00binary", "invalid JSON"),
        ('{"format": "something else", "version": 1, "entries": []}', "not a tuning file"),
        ("[1, 2]", "not a tuning file"),
        ('{"format": "gen_jax.nn.xla_cpu tuning", "version": 2, "entries": []}', "version 2"),
        ('{"format": "gen_jax.nn.xla_cpu tuning", "version": 1, "entries": {}}', "'entries'"),
    ],
)
def test_a_file_that_is_not_a_tuning_table_is_refused(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_bytes(document.encode("latin-1"))
    with pytest.raises(ValueError, match=message) as e:
        xla_cpu.load_tuning(path)
    assert str(path) in str(e.value)
    assert xla_cpu.tuning_records() == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"choice": {"tile": 3, "kernel_first": False}}, "choice"),
        ({"choice": {"tile": 4.0, "kernel_first": False}}, "integer"),
        ({"choice": {"tile": 4}}, "choice"),
        ({"rhs_shape": [5, 5, 8, 8]}, r"\[3, 3, C, K\]"),
        ({"rhs_shape": [3, 3, 4, 8]}, r"\[3, 3, C, K\]"),
        ({"lhs_shape": [1, 16, 16]}, "lhs_shape"),
        ({"pads": [[3, 1], [1, 1]]}, "pads"),
        ({"dtype": "bfloat16"}, "dtype"),
        ({"precision": "highest"}, "precision"),
        ({"seconds": {"direct": "fast"}}, "could not convert|float"),
    ],
)
def test_a_bad_entry_is_named_and_nothing_is_loaded(tmp_path, changes, message):
    path = _file(tmp_path, [_entry(choice={"tile": None, "kernel_first": None}), _entry(**changes)])
    with pytest.raises(ValueError, match=message) as e:
        xla_cpu.load_tuning(path)
    assert f"{path}: entry 1" in str(e.value)
    assert xla_cpu.tuning_records() == []
    missing = _entry()
    del missing["dtype"]
    with pytest.raises(ValueError, match="entry 0: missing field 'dtype'"):
        xla_cpu.load_tuning(_file(tmp_path, [missing]))


def test_a_file_for_other_devices_or_against_the_table_is_refused(tmp_path, fake_timer):
    other = _entry(backend="cpu", device_kind="some accelerator")
    with pytest.raises(ValueError, match="no entry would ever be used") as e:
        xla_cpu.load_tuning(_file(tmp_path, [other]))
    assert "some accelerator" in str(e.value)
    with pytest.raises(ValueError, match="no entry would ever be used"):
        xla_cpu.load_tuning(_file(tmp_path, [_entry(backend="no_such_backend")]))
    # Entries for other devices load beside ones for this machine (they never match here).
    assert xla_cpu.load_tuning(_file(tmp_path, [other, _entry()])) == 2
    assert _tune((1, 16, 16, 8), (3, 3, 8, 8), jnp.float32) == Choice(4, False)
    # A choice the process has made already is not replaced under traced programs.
    with pytest.raises(ValueError, match="clear_tuning"):
        xla_cpu.load_tuning(_file(tmp_path, [_entry(choice={"tile": None, "kernel_first": None})]))
    assert _tune((1, 16, 16, 8), (3, 3, 8, 8), jnp.float32) == Choice(4, False)
    with pytest.raises(FileNotFoundError):
        xla_cpu.load_tuning(tmp_path / "missing.json")
    assert fake_timer[0] == []
