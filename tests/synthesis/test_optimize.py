"""optimize_image: L-BFGS on a quadratic and on Rosenbrock, Adam, traces, chunks, caching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.synthesis.optimize import optimize_image

A = jnp.array([1.0, 10.0, 100.0, 3.0])  # an ill-conditioned diagonal quadratic
C = jnp.array([0.3, -1.0, 2.0, 0.5])  # its minimiser, partly outside [0, 1]


def quadratic(x, a, c):
    return jnp.sum(a * jnp.square(x - c))


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_lbfgs_solves_a_quadratic_within_20_iterations():
    r = optimize_image(quadratic, jnp.zeros(4), A, C, steps=20, clip=False)
    np.testing.assert_allclose(r.image, C, atol=1e-6)
    assert float(r.losses[-1]) < 1e-10
    assert float(r.losses[0]) == pytest.approx(float(quadratic(jnp.zeros(4), A, C)))


def test_lbfgs_solves_rosenbrock():
    r = optimize_image(rosenbrock, jnp.array([-1.2, 1.0]), steps=60, clip=False)
    np.testing.assert_allclose(r.image, [1.0, 1.0], atol=1e-3)
    assert float(r.losses[-1]) < 1e-6
    assert np.all(np.asarray(r.evaluations) <= 20)


def test_final_clip_applies_only_to_the_returned_image():
    r = optimize_image(quadratic, jnp.zeros(4), A, C, steps=20)
    np.testing.assert_allclose(r.image, jnp.clip(C, 0.0, 1.0), atol=1e-6)
    assert float(r.losses[-1]) < 1e-10  # the trace is of the unclipped iterates


def test_adam_decreases_the_loss():
    r = optimize_image(
        quadratic, jnp.zeros(4), A, C, optimizer="adam", learning_rate=0.1, steps=50, clip=False
    )
    losses = np.asarray(r.losses)
    assert losses[-1] < 0.1 * losses[0]
    assert np.all(np.asarray(r.evaluations) == 1)


def test_one_trace_entry_per_iteration():
    r = optimize_image(quadratic, jnp.zeros(4), A, C, steps=7, optimizer="adam")
    assert r.losses.shape == (8,) and r.evaluations.shape == (7,)
    assert r.image.shape == (4,)


def test_chunks_give_the_same_iterates_and_report_progress():
    seen = []
    whole = optimize_image(rosenbrock, jnp.array([-1.2, 1.0]), steps=12, clip=False)
    chunked = optimize_image(
        rosenbrock,
        jnp.array([-1.2, 1.0]),
        steps=12,
        clip=False,
        chunk_steps=5,
        callback=lambda i, loss: seen.append((i, loss)),
    )
    np.testing.assert_allclose(chunked.image, whole.image, rtol=1e-6)
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-6)
    assert [i for i, _ in seen] == [5, 10, 12]
    assert seen[-1][1] == pytest.approx(float(whole.losses[-1]), rel=1e-6)
    assert seen[0][1] == pytest.approx(float(whole.losses[5]), rel=1e-6)


def test_no_retrace_on_a_second_call_with_new_data():
    traces = []

    def counted(x, a, c):
        traces.append(1)  # Python runs only while JAX traces.
        return quadratic(x, a, c)

    optimize_image(counted, jnp.zeros(4), A, C, steps=3)
    first = len(traces)
    assert first > 0
    r = optimize_image(counted, jnp.ones(4), 2.0 * A, -C, steps=3)
    assert len(traces) == first
    assert float(r.losses[-1]) < float(r.losses[0])


def test_sigmoid_parametrization_keeps_every_iterate_in_range():
    r = optimize_image(
        quadratic, jnp.full(4, 0.5), A, C, steps=30, parametrization="sigmoid", clip=False
    )
    img = np.asarray(r.image)
    assert np.all((img >= 0.0) & (img <= 1.0))
    # The best valid image is clip(C); the corners are approached but never reached.
    np.testing.assert_allclose(img[[0, 3]], [0.3, 0.5], atol=1e-3)
    assert float(r.losses[-1]) < float(r.losses[0])


def test_the_loss_is_compiled_at_the_requested_precision():
    seen = []

    def recorded(x, a, c):
        seen.append(jax.config.jax_default_matmul_precision)  # runs only while tracing
        return quadratic(x, a, c)

    optimize_image(recorded, jnp.zeros(4), A, C, steps=2)
    assert seen and set(seen) == {"highest"}
    # None keeps the caller's setting, and the compiled "highest" program is not reused.
    seen.clear()
    with jax.default_matmul_precision("tensorfloat32"):
        optimize_image(recorded, jnp.zeros(4), A, C, steps=2, precision=None)
    assert seen and set(seen) == {"tensorfloat32"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"precision": "float31"}, "precision"),
        ({"parametrization": "tanh"}, "parametrization"),
        ({"steps": 0}, "steps"),
        ({"chunk_steps": 0}, "chunk_steps"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimize_image(quadratic, jnp.zeros(4), A, C, **kwargs)


def test_non_scalar_loss_is_refused():
    with pytest.raises(ValueError, match="scalar"):
        optimize_image(lambda x: x**2, jnp.zeros(3), steps=2)


class _ShiftedQuadratic:
    """A loss whose `prepare` turns its argument into the minimiser: used once, ahead."""

    calls = 0  # traces of `prepare`
    runs = 0  # executions of the compiled `prepare`

    def __call__(self, x, c):
        return jnp.sum(jnp.square(x - c))

    def prepare(self, image, c):
        type(self).calls += 1
        assert image.shape == (4,)
        jax.debug.callback(self._ran)
        return (c + 1.0,)

    @classmethod
    def _ran(cls):
        cls.runs += 1

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, _ShiftedQuadratic)


@pytest.mark.parametrize("chunk_steps", [None, 3])
def test_prepare_is_applied_to_the_arguments_once_before_the_loop(chunk_steps, monkeypatch):
    monkeypatch.setattr(_ShiftedQuadratic, "calls", 0)
    monkeypatch.setattr(_ShiftedQuadratic, "runs", 0)
    loss = _ShiftedQuadratic()
    r = optimize_image(loss, jnp.zeros(4), C, steps=10, clip=False, chunk_steps=chunk_steps)
    np.testing.assert_allclose(r.image, C + 1.0, atol=1e-5)
    jax.effects_barrier()
    # Once per call, not per evaluation nor per chunk (3 + 3 + 3 + 1 steps).
    assert _ShiftedQuadratic.runs == 1
    assert _ShiftedQuadratic.calls <= 1  # a second call with these shapes reuses the trace
