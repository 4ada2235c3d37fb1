"""The feature networks' `prepare` hook: input-independent work done once, ahead of a loop.

A feature network may define a method ``prepare(params, example_input, outputs) ->
variables``: Flax variables (``params`` plus collections of its own) that give the same
``apply`` result as ``{"params": params}`` with some work that depends only on the
parameters and the input's shape done already. `VGG.prepare` computes its Winograd
kernel transforms there: inside L-BFGS's nested loops XLA does not hoist them out by
itself. Callers never name those collections; they call `prepare` here, which works for
every network (one without the method gets ``{"params": params}``), and hand the result
to `as_variables` wherever plain parameters would also do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax

__all__ = ["PreparedVariables", "as_variables", "prepare"]


class PreparedVariables(dict):
    """The Flax variables `prepare` returns: a dict, to pass to ``module.apply`` as it is,
    typed so that `as_variables` tells it from plain parameters. A pytree (it goes through
    `jax.jit` and comes back of this type)."""


def _flatten_with_keys(variables: PreparedVariables):
    keys = sorted(variables)
    return [(jax.tree_util.DictKey(k), variables[k]) for k in keys], tuple(keys)


jax.tree_util.register_pytree_with_keys(
    PreparedVariables,
    _flatten_with_keys,
    lambda keys, values: PreparedVariables(zip(keys, values)),
    lambda variables: ([variables[k] for k in sorted(variables)], tuple(sorted(variables))),
)


def prepare(
    module: Any,
    params: Any,
    example_input: jax.Array,
    outputs: str | Sequence[str] | None = None,
) -> PreparedVariables:
    """Variables for ``module.apply`` with the module's input-independent work done once.

    ``module.prepare(params, example_input, outputs)`` when the module has that method,
    else ``{"params": params}``; the ``apply`` result is the same either way (to float
    rounding). Call it once, outside the loop that applies the module many times (inside
    the same `jax.jit` or not), on an input of the shape the loop will feed.

    Args:
      module: a feature network (`get_feature_net`'s, or any Flax module).
      params: its parameters (or an earlier `prepare`'s result, whose parameters are used).
      example_input: an array of the shape and dtype ``module.apply`` will be given.
      outputs: the layers that will be requested (None: all).

    Returns:
      `PreparedVariables`, the variables to apply the module with.

    Raises:
      TypeError: a module whose ``prepare`` returns no ``"params"``.
    """
    if isinstance(params, PreparedVariables):
        params = params["params"]
    hook = getattr(module, "prepare", None)
    variables = hook(params, example_input, outputs) if callable(hook) else {"params": params}
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise TypeError(
            f"{type(module).__name__}.prepare must return Flax variables with 'params'; got "
            f"{type(variables).__name__}."
        )
    return PreparedVariables(variables)


def as_variables(params_or_prepared: Any) -> Mapping:
    """Flax variables from a network's plain parameters or from `prepare`'s result.

    Args:
      params_or_prepared: ``params`` (then ``{"params": params}``) or `PreparedVariables`
        (returned as they are).

    Returns:
      Variables for ``module.apply``.
    """
    if isinstance(params_or_prepared, PreparedVariables):
        return params_or_prepared
    return {"params": params_or_prepared}
