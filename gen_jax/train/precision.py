"""Mixed precision: the compute dtypes an experiment's ``--dtype`` option accepts.

The policy (Micikevicius et al. 2018, arXiv:1710.03740, with bfloat16's float32 exponent
range, so no loss scaling): modules compute in ``dtype`` (their activations and matrix
products) and keep ``param_dtype=float32`` parameters, so gradients, optimizer states and
the EMA are float32 and updates are not lost to bfloat16's 8-bit mantissa; outputs that a
loss or a metric reads (logits, samples) are cast to float32 by the models, and the loss
terms compute in float32.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["COMPUTE_DTYPES", "compute_dtype"]

COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(name: str, option: str = "dtype"):
    """The jnp dtype for a ``--dtype`` value.

    Raises:
      ValueError: a name outside `COMPUTE_DTYPES`, naming the option.
    """
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"--{option}: expected one of {list(COMPUTE_DTYPES)}, found {name!r}")
    return jnp.dtype(name)
