"""benchmarks.runner: warm-up then timed repeats, medians, and the interleaving of runners,
with a fake clock and fake work (no timing of real code)."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks import runner


class FakeClock:
    """A clock that advances only when the fake work says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


def test_seconds_times_the_call_and_waits_for_its_result():
    clock, events = FakeClock(), []

    def fn(a, b):
        clock.work(a + b)
        events.append("call")
        return "result"

    def ready(result):
        clock.work(0.5)  # waiting for the device counts
        events.append(f"ready {result}")

    elapsed, result = runner.seconds(fn, 1.0, 2.0, ready=ready, clock=clock)
    assert (elapsed, result) == (3.5, "result")
    assert events == ["call", "ready result"]


def test_repeats_follow_an_untimed_warmup_and_the_median_is_taken():
    clock, durations = FakeClock(), iter([100.0, 100.0, 3.0, 1.0, 2.0, 50.0])
    calls = []

    def fn(x):
        calls.append(x)
        clock.work(next(durations))
        return jnp.asarray(x)

    # The two warm-up calls (the compiling ones) cost 100 s each and are not counted.
    assert runner.repeat_seconds(fn, 7, repeats=4, warmup=2, clock=clock) == [3.0, 1.0, 2.0, 50.0]
    assert calls == [7] * 6
    durations = iter([100.0, 3.0, 1.0, 2.0])
    assert runner.median_seconds(fn, 7, repeats=3, clock=clock) == 2.0
    with pytest.raises(ValueError, match="repeats"):
        runner.median_seconds(fn, 7, repeats=0)


class FakeRunner:
    """Records the order of its calls in a shared log; each repeat lasts its next duration."""

    def __init__(self, key, durations, order):
        self.key, self.durations, self.order = key, iter(durations), order
        self.info = {}

    def setup(self, log):
        self.order.append(f"setup {self.key}")
        log(f"{self.key} ready")

    def run(self):
        self.order.append(f"run {self.key}")
        return next(self.durations)


def test_interleave_sets_up_every_runner_then_alternates_repeats():
    order, logged, repeats_seen = [], [], []
    runners = [
        FakeRunner("jax", [3.0, 1.0, 2.0], order),
        FakeRunner("torch", [9.0, 8.0, 7.0], order),
    ]
    timed = runner.interleave(
        runners,
        3,
        log=logged.append,
        on_repeat=lambda r, rep, s: repeats_seen.append((r.key, rep, s)),
    )
    assert order == ["setup jax", "setup torch"] + ["run jax", "run torch"] * 3
    assert timed == {"jax": [3.0, 1.0, 2.0], "torch": [9.0, 8.0, 7.0]}
    assert logged == ["jax ready", "torch ready"]
    assert repeats_seen[:3] == [("jax", 0, 3.0), ("torch", 0, 9.0), ("jax", 1, 1.0)]


def test_interleave_refuses_runners_with_the_same_key():
    with pytest.raises(ValueError, match="distinct keys"):
        runner.interleave([FakeRunner("a", [], []), FakeRunner("a", [], [])], 1)


def test_compile_seconds_sees_a_compilation_and_not_a_cached_call():
    fn = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.25)  # a program of this test's own
    x = jnp.arange(5.0)
    with runner.compile_seconds() as first:
        fn(x).block_until_ready()
    with runner.compile_seconds() as second:
        fn(x).block_until_ready()
    assert first["events"] > 0 and first["seconds"] > 0
    assert second == {"seconds": 0.0, "events": 0}


def test_compile_timed_returns_the_compiled_program():
    clock = FakeClock()
    fn = jax.jit(lambda x: x * 2.0)

    class Timed:
        def lower(self, *args):
            clock.work(4.0)
            return fn.lower(*args)

    compiled, elapsed = runner.compile_timed(Timed(), jnp.ones(3), clock=clock)
    assert elapsed == 4.0
    assert compiled(jnp.ones(3)).tolist() == [2.0, 2.0, 2.0]
