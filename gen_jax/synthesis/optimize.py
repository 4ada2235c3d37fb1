"""Optimising an image under a loss, the whole optimisation compiled into one XLA program.

`optimize_image(loss_fn, init, *args, optimizer=..., steps=...)` minimises
``loss_fn(image, *args)`` over the image with optax's L-BFGS (with its zoom line search,
the optimiser of Gatys et al.) or Adam. The iterations run inside ``lax.scan`` under one
``jax.jit``: nothing returns to Python between iterations. Setting ``chunk_steps`` splits
the run into chunks of that many iterations (one compiled program, called repeatedly, the
optimiser state carried across) so that the host can report progress between chunks; the
iterates are the same as in one unchunked run.

Compilation is cached on ``(loss_fn, optimizer settings, chunk length)`` and the shapes of
``init`` and ``args``: pass the data that changes between calls (targets, network
parameters) through ``args`` and keep ``loss_fn`` the same object (a module-level function
or a frozen dataclass with ``__call__``, which compares by value), and a second call with
the same shapes reuses the compiled program. A fresh closure or ``lambda`` per call
recompiles every time.

A ``loss_fn`` with a ``prepare(image, *args) -> args`` method (`PerceptualLoss` and
`InversionLoss` have one) gets its arguments through it once per `optimize_image` call,
in a program of its own before the first chunk: work that depends only on ``args`` goes
there. XLA does not hoist it out of L-BFGS's nested loops (a line search inside a
conditional inside a scan) by itself, and a chunked run would otherwise redo it in every
chunk.

Parametrisation (``parametrization``):

* ``"pixels"`` (default): L-BFGS works on the raw pixel values, unconstrained, as in
  Gatys et al. (clipping inside the loop would break the line search's model of the
  function); the returned image is clipped to [0, 1] once at the end (``clip=True``).
  The recorded losses are those of the unclipped iterates.
* ``"sigmoid"``: the image is ``sigmoid(u)`` and ``u`` is optimised, so every iterate is
  a valid image; saturated pixels learn slowly, which costs iterations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

__all__ = [
    "OPTIMIZERS",
    "PARAMETRIZATIONS",
    "OptimizeResult",
    "as_unit_image",
    "optimize_image",
    "optimize_with_terms",
    "precision_scope",
]

OPTIMIZERS = ("lbfgs", "adam")
PARAMETRIZATIONS = ("pixels", "sigmoid")

# The sigmoid parametrisation starts from logit(x); pixels at exactly 0 or 1 would be -inf
# or +inf, so the start is pulled this far inside the open interval.
_SIGMOID_MARGIN = 1e-3


def as_unit_image(x: ArrayLike, name: str, channels: int | None = None) -> jax.Array:
    """Validates an image [H, W, C] of floats in [0, 1] (C = `channels` when given).

    Raises:
      ValueError: naming `name`, for another rank or channel count, an integer dtype, or
        values outside [0, 1] (beyond a 1e-3 tolerance).
    """
    a = np.asarray(x)
    if a.ndim != 3 or (channels is not None and a.shape[-1] != channels):
        kind = "an RGB image" if channels == 3 else "an image"
        shape = "[H, W, C]" if channels is None else f"[H, W, {channels}]"
        raise ValueError(f"{name} must be {kind} of shape {shape}; got shape {a.shape}.")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1]; got dtype {a.dtype}.")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"{name} must have values in [0, 1]; got range [{lo:.3g}, {hi:.3g}].")
    return jnp.asarray(a, jnp.float32)


class OptimizeResult(NamedTuple):
    """What `optimize_image` returns.

    Attributes:
      image: the optimised image, the shape of ``init`` (clipped to [0, 1] when asked).
      losses: ``[steps + 1]``; ``losses[k]`` is the loss after ``k`` iterations (so
        ``losses[0]`` is at ``init`` and ``losses[-1]`` at the final, unclipped iterate).
      evaluations: ``[steps]`` int; loss-and-gradient evaluations the line search spent in
        each iteration (L-BFGS), or 1 per iteration (Adam).
    """

    image: jax.Array
    losses: jax.Array
    evaluations: jax.Array


@dataclasses.dataclass(frozen=True)
class _Solver:
    """Hashable optimiser settings: the static key of the compiled programs."""

    name: str
    learning_rate: float | None
    memory_size: int
    max_linesearch_steps: int
    parametrization: str
    tol: float

    def transformation(self) -> optax.GradientTransformation:
        if self.name == "lbfgs":
            return optax.lbfgs(
                learning_rate=self.learning_rate,
                memory_size=self.memory_size,
                # Each search starts from the quasi-Newton step 1 (optax's default for
                # L-BFGS), not from the previous step size.
                linesearch=optax.scale_by_zoom_linesearch(
                    max_linesearch_steps=self.max_linesearch_steps, initial_guess_strategy="one"
                ),
            )
        return optax.adam(self.learning_rate)

    def to_image(self, u: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(u) if self.parametrization == "sigmoid" else u

    def from_image(self, x: jax.Array) -> jax.Array:
        if self.parametrization == "sigmoid":
            x = jnp.clip(x, _SIGMOID_MARGIN, 1.0 - _SIGMOID_MARGIN)
            return jnp.log(x) - jnp.log1p(-x)
        return x


def _objective(loss_fn: Callable, solver: _Solver, args: tuple) -> Callable:
    """The scalar function of the optimised variable `u`."""

    def f(u):
        loss = jnp.asarray(loss_fn(solver.to_image(u), *args))
        if loss.size != 1:
            raise ValueError(
                f"loss_fn must return a scalar (reduce the per-example losses); got shape "
                f"{loss.shape}."
            )
        return loss.reshape(()).astype(u.dtype)

    return f


@functools.partial(jax.jit, static_argnames=("solver",))
def _init(init, *, solver):
    x = jnp.asarray(init)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    u = solver.from_image(x)
    return u, solver.transformation().init(u)


@functools.partial(jax.jit, static_argnames=("loss_fn", "solver"))
def _prepare(u, args, *, loss_fn, solver):
    """``loss_fn.prepare``'s arguments: the work that depends only on them, done once."""
    return tuple(loss_fn.prepare(solver.to_image(u), *args))


@functools.partial(jax.jit, static_argnames=("loss_fn", "solver", "num_steps"))
def _run_chunk(u, opt_state, args, *, loss_fn, solver, num_steps):
    """`num_steps` iterations in one `lax.scan`; returns the loss before each iteration."""
    f = _objective(loss_fn, solver, args)
    tx = solver.transformation()
    is_lbfgs = solver.name == "lbfgs"
    value_and_grad = optax.value_and_grad_from_state(f) if is_lbfgs else jax.value_and_grad(f)

    def step(carry, _):
        u, opt_state = carry
        if is_lbfgs:
            # Reuses the value and gradient the line search computed at this point.
            value, grad = value_and_grad(u, state=opt_state)
        else:
            value, grad = value_and_grad(u)

        def update(carry):
            u, opt_state = carry
            if is_lbfgs:
                updates, opt_state = tx.update(
                    grad, opt_state, u, value=value, grad=grad, value_fn=f
                )
                evals = optax.tree.get(opt_state, "num_linesearch_steps")
            else:
                updates, opt_state = tx.update(grad, opt_state, u)
                evals = jnp.asarray(1)
            return (optax.apply_updates(u, updates), opt_state), jnp.asarray(evals, jnp.int32)

        def stay(carry):
            # A (numerically) stationary point: L-BFGS would divide 0 by 0 here.
            return carry, jnp.asarray(0, jnp.int32)

        converged = optax.tree.norm(grad) <= solver.tol
        carry, evals = lax.cond(converged, stay, update, (u, opt_state))
        return carry, (value, evals)

    (u, opt_state), (values, evals) = lax.scan(step, (u, opt_state), None, length=num_steps)
    if is_lbfgs:
        # The line search stored the loss at the new iterate (inf if it never ran).
        stored = optax.tree.get(opt_state, "value")
        last = lax.cond(jnp.isfinite(stored), lambda: stored, lambda: f(u))
    else:
        last = f(u)
    return u, opt_state, values, evals, last


@functools.partial(jax.jit, static_argnames=("solver", "clip"))
def _finish(u, *, solver, clip):
    image = solver.to_image(u)
    return jnp.clip(image, 0.0, 1.0) if clip else image


def precision_scope(precision: str | None):
    """A context compiling the jitted calls inside it at ``precision`` (see `optimize_image`).

    `jax.default_matmul_precision` is part of the trace context, hence of every compilation
    cache's key: a program compiled at one precision is not reused at another. ``None``
    changes nothing.

    Raises:
      ValueError: naming ``precision`` when JAX does not know the value.
    """
    if precision is None:
        return contextlib.nullcontext()
    try:
        return jax.default_matmul_precision(precision)
    except ValueError as e:
        raise ValueError(f"precision: {e}") from None


def optimize_image(
    loss_fn: Callable[..., ArrayLike],
    init: ArrayLike,
    *args: Any,
    optimizer: str = "lbfgs",
    steps: int = 100,
    learning_rate: float | None = None,
    memory_size: int = 10,
    max_linesearch_steps: int = 20,
    parametrization: str = "pixels",
    clip: bool = True,
    tol: float = 0.0,
    chunk_steps: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    precision: str | None = "highest",
) -> OptimizeResult:
    """Minimises ``loss_fn(image, *args)`` over the image, compiled as one program.

    ``x* = argmin_x loss_fn(x, *args)`` from ``x = init`` by ``steps`` iterations of
    L-BFGS (Liu & Nocedal 1989) with a zoom line search satisfying the strong Wolfe
    conditions (each iteration may evaluate the loss several times; see
    ``OptimizeResult.evaluations``), or of Adam (Kingma & Ba 2014, arXiv:1412.6980).

    Args:
      loss_fn: ``loss_fn(image, *args) -> scalar`` (a one-element array is accepted),
        differentiable in ``image``; hashable (see the module docstring on caching).
      init: the starting image, any shape (typically ``[H, W, 3]`` or ``[B, H, W, 3]``),
        values in [0, 1] for the sigmoid parametrisation.
      *args: arrays (any pytree) passed to ``loss_fn``; traced, so new values reuse the
        compiled program.
      optimizer: ``"lbfgs"`` or ``"adam"``.
      steps: number of iterations, ``>= 1``.
      learning_rate: Adam's step size (default 0.02, for pixels in [0, 1]); for L-BFGS a
        scale on the direction before the line search (default ``None``: none).
      memory_size: L-BFGS history length.
      max_linesearch_steps: L-BFGS line-search budget per iteration.
      parametrization: ``"pixels"`` or ``"sigmoid"`` (module docstring).
      clip: clip the returned image to [0, 1].
      tol: an iteration whose gradient norm is ``<= tol`` changes nothing (the trace stays
        flat from there); 0 stops only at an exact stationary point.
      chunk_steps: iterations per compiled chunk (``None``: all ``steps`` in one program);
        ``callback`` runs on the host after each chunk.
      callback: ``callback(iterations_done, loss)``, e.g. to print progress.
      precision: the matmul and convolution precision the loss is compiled under
        (`jax.default_matmul_precision`; operations that name their own keep it).
        ``"highest"`` (default) is float32 on every platform. ``None`` keeps what is in
        force: a caller's own `jax.default_matmul_precision`, else the platform's
        default, which on GPUs is TF32 (10-bit mantissas). At TF32 on an H200, L-BFGS's
        line search on a VGG19 style loss needed 2 to 5 evaluations per iteration instead
        of 1 (``docs/bench/synthesis_gpu_h200_tf32.md``). On the CPU both settings are
        float32 (same losses, same speed within noise).

    Returns:
      An `OptimizeResult` (image, losses ``[steps + 1]``, evaluations ``[steps]``).

    Raises:
      ValueError: on an unknown optimizer, parametrisation or precision, or non-positive
        step counts.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}.")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"parametrization must be one of {PARAMETRIZATIONS}; got {parametrization!r}."
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    if chunk_steps is not None and chunk_steps < 1:
        raise ValueError(f"chunk_steps must be >= 1 or None; got {chunk_steps}.")
    if optimizer == "adam" and learning_rate is None:
        learning_rate = 0.02
    solver = _Solver(
        name=optimizer,
        learning_rate=None if learning_rate is None else float(learning_rate),
        memory_size=int(memory_size),
        max_linesearch_steps=int(max_linesearch_steps),
        parametrization=parametrization,
        tol=float(tol),
    )
    chunk = steps if chunk_steps is None else min(chunk_steps, steps)
    with precision_scope(precision):
        u, opt_state = _init(init, solver=solver)
        if callable(getattr(loss_fn, "prepare", None)):
            args = _prepare(u, args, loss_fn=loss_fn, solver=solver)
        values, evals, done = [], [], 0
        while done < steps:
            # The last chunk may be shorter: one more compilation, only when steps % chunk != 0.
            n = min(chunk, steps - done)
            u, opt_state, v, e, last = _run_chunk(
                u, opt_state, args, loss_fn=loss_fn, solver=solver, num_steps=n
            )
            values.append(v)
            evals.append(e)
            done += n
            if callback is not None:
                callback(done, float(last))
        image = _finish(u, solver=solver, clip=clip)
        losses = jnp.concatenate([*values, last[None]])
    return OptimizeResult(image=image, losses=losses, evaluations=jnp.concatenate(evals))


def optimize_with_terms(
    loss_fn: Callable[..., ArrayLike],
    init: ArrayLike,
    *args: Any,
    terms: Callable[..., dict[str, float]],
    precision: str | None = "highest",
    **options: Any,
) -> tuple[dict[str, float], OptimizeResult, dict[str, float]]:
    """`optimize_image` with ``terms(image, *args)`` (a loss's parts, as floats) evaluated
    at the start image and at the result, everything compiled at ``precision``.

    Returns:
      (terms at ``init``, the `OptimizeResult`, terms at its image).
    """
    with precision_scope(precision):
        start = terms(init, *args)
        result = optimize_image(loss_fn, init, *args, precision=precision, **options)
        end = terms(result.image, *args)
    return start, result, end
