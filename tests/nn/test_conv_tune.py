"""gen_jax.nn.conv_tune: the measured per-shape choice behind ``algorithm="tune"``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gen_jax.models.vgg import VGG, prepare_variables
from gen_jax.nn import conv_tune
from gen_jax.nn.conv import conv_general_dilated, winograd_plan
from gen_jax.nn.conv_tune import Choice

DN = ("NHWC", "HWIO", "NHWC")
SAME = ((1, 1), (1, 1))


@pytest.fixture(autouse=True)
def _fresh_tuning():
    conv_tune.clear_tuning()
    yield
    conv_tune.clear_tuning()
    conv_tune.set_tuning_budget(None)


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

    monkeypatch.setattr(conv_tune, "_time_candidate", fake)
    return timed, speeds


def test_candidates_leave_out_tiles_larger_than_the_output():
    names = [c.name for c in conv_tune.candidates(16)]
    assert names == [
        "direct",
        "winograd2, data first",
        "winograd2, kernel first",
        "winograd4, data first",
        "winograd4, kernel first",
    ]
    assert [c.name for c in conv_tune.candidates(3)] == [
        "direct",
        "winograd2, data first",
        "winograd2, kernel first",
    ]
    assert conv_tune.candidates(1) == [Choice(None, None)]
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
    (record,) = conv_tune.tuning_records()
    assert record["choice"] == plan and record["lhs_shape"] == (1, 16, 16, 8)
    assert record["seconds"]["direct"] == 3.0 and len(record["seconds"]) == 5
    # Another shape, or the same under another default precision, is measured again.
    winograd_plan((1, 16, 16, 8), (3, 3, 8, 16), (1, 1), SAME, jnp.float32, "tune")
    with jax.default_matmul_precision("highest"):
        winograd_plan((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), SAME, jnp.float32, "tune")
    assert len(timed) == 15 and len(conv_tune.tuning_records()) == 3
    conv_tune.clear_tuning()
    assert conv_tune.tuning_records() == []


def test_a_candidate_that_fails_is_recorded_and_left_out(fake_timer):
    timed, speeds = fake_timer
    speeds.update(
        {
            "direct": 2.0,
            "winograd4, data first": RuntimeError("RESOURCE_EXHAUSTED: Out of memory " + "x" * 999),
            "winograd4, kernel first": 0.5,
        }
    )
    plan = conv_tune.tuned_choice((1, 16, 16, 8), (3, 3, 8, 8), SAME, jnp.float32)
    assert plan == Choice(4, True) and len(timed) == 5
    (record,) = conv_tune.tuning_records()
    assert "winograd4, data first" not in record["seconds"] and len(record["seconds"]) == 4
    error = record["failed"]["winograd4, data first"]
    assert error.startswith("RuntimeError: RESOURCE_EXHAUSTED: Out of memory")
    assert len(error) == conv_tune._ERROR_CHARS
    # The direct convolution is what everything falls back to: its failure is raised.
    conv_tune.clear_tuning()
    speeds["direct"] = ValueError("no direct convolution")
    with pytest.raises(ValueError, match="no direct convolution"):
        conv_tune.tuned_choice((1, 16, 16, 8), (3, 3, 8, 8), SAME, jnp.float32)
    assert conv_tune.tuning_records() == []


def test_past_the_budget_new_shapes_take_autos_rule_unmeasured(fake_timer, monkeypatch):
    timed, speeds = fake_timer
    speeds.update({"direct": 3.0, "winograd2, kernel first": 0.5})
    clock = iter(range(0, 1000, 10))  # every measurement takes 10 s
    monkeypatch.setattr(conv_tune, "_clock", lambda: float(next(clock)))
    conv_tune.set_tuning_budget(15)
    assert conv_tune.tuning_budget() == 15.0
    first = conv_tune.tuned_choice((1, 32, 32, 64), (3, 3, 64, 64), SAME, jnp.float32, None, "cpu")
    second = conv_tune.tuned_choice((1, 16, 16, 64), (3, 3, 64, 64), SAME, jnp.float32, None, "cpu")
    assert first == second == Choice(2, True) and len(timed) == 10  # 20 s spent: over
    third = conv_tune.tuned_choice((1, 32, 32, 64), (3, 3, 64, 128), SAME, jnp.float32, None, "cpu")
    # "auto"'s rule on the CPU: F(4x4) on a 32 px map, in the rule's product order.
    assert third == winograd_plan((1, 32, 32, 64), (3, 3, 64, 128), (1, 1), SAME, "float32")
    assert third == Choice(4, None) and len(timed) == 10
    record = conv_tune.tuning_records()[-1]
    assert "budget of 15 s was spent (20.0 s)" in record["skipped"]
    assert record["seconds"] == {} and record["measure_s"] == 0.0
    # Kept like a measured choice, so preparation and application agree.
    assert conv_tune.tuned_choice((1, 32, 32, 64), (3, 3, 64, 128), SAME, "float32") == third
    assert len(conv_tune.tuning_records()) == 3
    conv_tune.set_tuning_budget(None)
    conv_tune.tuned_choice((1, 8, 8, 64), (3, 3, 64, 64), SAME, jnp.float32, None, "cpu")
    assert len(timed) == 15
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            conv_tune.set_tuning_budget(bad)


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
        conv_tune.tuned_choice((1, 8, 8, 4), (3, 3, 5, 8), SAME, jnp.float32)
    with pytest.raises(ValueError, match="padding"):
        conv_tune.tuned_choice((1, 8, 8, 4), (3, 3, 4, 8), ((0, 3), (1, 1)), jnp.float32)


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
    (record,) = conv_tune.tuning_records()
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
    variables = prepare_variables(tuned, params, x, layers)
    # Every conv is prepared, conv1_1 (3 -> 64) included: its kernels for tile 2.
    assert variables["winograd"]["conv1_1"]["kernels"][0].shape == (16, 64, 3)
    got, got_grad = grad(variables, x, tuned)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(
        got_grad, want_grad, rtol=1e-4, atol=1e-5 * float(jnp.abs(want_grad).max())
    )
    # Kernels prepared for another choice (a later measurement picked tile 4) are refused.
    conv_tune.clear_tuning()
    speeds["winograd4, data first"] = 0.01
    retraced = jax.jit(jax.value_and_grad(loss, 1), static_argnums=2)
    with pytest.raises(ValueError, match="winograd_kernels"):
        retraced(variables, x, tuned)
