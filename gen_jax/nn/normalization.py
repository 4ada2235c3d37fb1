"""Conditional batch normalisation: batch norm whose scale and shift depend on a condition.

The normalisation is ``flax.linen.BatchNorm``'s own (statistics, running averages in the
``"batch_stats"`` collection, ``train`` choosing between them), run without its affine part;
this module adds only the per-example scale ``gamma(y)`` and shift ``beta(y)``:

* class labels (``num_classes`` set): ``gamma`` and ``beta`` are rows of two learned tables
  indexed by the label (de Vries et al. 2017; Dumoulin et al. 2017's conditional instance
  norm does the same per style), the conditional generators of cGAN / AC-GAN / SN-GAN;
* a continuous vector (``num_classes=None``): ``gamma`` and ``beta`` are Dense projections
  of it, so text embeddings, InfoGAN codes or a one-hot label work unchanged.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import dtypes

__all__ = ["ConditionalBatchNorm"]

Dtype = Any
Initializer = Any


class ConditionalBatchNorm(nn.Module):
    """Batch norm with per-example scale and shift from a label or a conditioning vector.

    ``out = gamma(y) * (x - mean) / sqrt(var + epsilon) + beta(y)``, with ``mean`` and
    ``var`` per channel (the last axis) over all other axes: the batch's when
    ``train=True`` (and the running averages are updated), the running averages when
    ``train=False``. Then

    * ``num_classes`` set: ``gamma(y) = G[y]``, ``beta(y) = B[y]`` for integer labels
      ``y``, with tables ``G, B`` of shape ``[num_classes, channels]``;
    * ``num_classes=None``: ``gamma(y) = y W_g + b_g``, ``beta(y) = y W_b + b_b`` for a
      float vector ``y``.

    At initialisation ``G`` and ``b_g`` are ones, ``B`` and ``b_b`` zeros and ``W_g``,
    ``W_b`` zeros, so the layer starts as a plain batch norm for every condition and
    learns how the condition moves it (de Vries et al. initialise the predicted
    ``delta gamma``, ``delta beta`` at zero for the same reason).

    Attributes:
      num_classes: number of classes of integer labels; None for a continuous condition.
      momentum: decay of the running averages (0.9: PyTorch's momentum 0.1, as in
        ``models.dcgan``; flax's BatchNorm default is 0.99).
      epsilon: added to the variance.
      scale_init: initialiser of ``G`` (labels) or ``b_g`` (vector).
      bias_init: initialiser of ``B`` (labels) or ``b_b`` (vector).
      kernel_init: initialiser of ``W_g`` and ``W_b`` (vector only).
      dtype: dtype of the computation and the result (None: inferred from the input and
        the parameters, as flax's BatchNorm does).
      param_dtype: dtype of the parameters.

    Variables: ``params``: ``scale``, ``bias`` (an ``embedding`` each for labels, a Dense
    ``kernel``/``bias`` each for a vector); ``batch_stats``: ``norm/mean``, ``norm/var``
    (shape ``[channels]``).

    References:
      de Vries et al., Modulating early visual processing by language, 2017
      (arXiv:1707.00683); Dumoulin et al., A Learned Representation For Artistic Style,
      2017 (arXiv:1610.07629).
    """

    num_classes: int | None = None
    momentum: float = 0.9
    epsilon: float = 1e-5
    scale_init: Initializer = nn.initializers.ones
    bias_init: Initializer = nn.initializers.zeros
    kernel_init: Initializer = nn.initializers.zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array, *, train: bool) -> jax.Array:
        """Normalises ``x`` and applies the condition's scale and shift.

        Args:
          x: activations ``[B, C]`` or ``[B, H, W, C]`` (any rank >= 2, channels last).
          condition: integer labels ``[B]`` in ``[0, num_classes)`` when ``num_classes``
            is set (labels out of range give NaN outputs, as ``jnp.take`` fills; they
            cannot be checked under ``jit``), else a float vector ``[B, K]``.
          train: normalise with the batch's statistics and update the running averages
            (apply with ``mutable=["batch_stats"]``); False uses the running averages.

        Returns:
          The conditionally normalised ``x``, same shape.
        """
        x = jnp.asarray(x)
        condition = jnp.asarray(condition)
        self._check_inputs(x, condition)
        features = x.shape[-1]

        normalised = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.momentum,
            epsilon=self.epsilon,
            use_bias=False,
            use_scale=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="norm",
        )(x)

        if self.num_classes is not None:

            def table(init, name):
                return nn.Embed(
                    self.num_classes,
                    features,
                    embedding_init=init,
                    param_dtype=self.param_dtype,
                    name=name,
                )(condition)

        else:

            def table(init, name):
                return nn.Dense(
                    features,
                    kernel_init=self.kernel_init,
                    bias_init=init,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=name,
                )(condition)

        gamma = table(self.scale_init, "scale")  # [B, C]
        beta = table(self.bias_init, "bias")
        dtype = dtypes.canonicalize_dtype(normalised, gamma, beta, dtype=self.dtype)
        # [B, C] -> [B, 1, ..., 1, C]: one scale and shift per example, over all positions.
        per_example = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
        gamma, beta = gamma.reshape(per_example), beta.reshape(per_example)
        normalised, gamma, beta = (jnp.asarray(a, dtype) for a in (normalised, gamma, beta))
        return normalised * gamma + beta

    def _check_inputs(self, x: jax.Array, condition: jax.Array) -> None:
        """Raises a ValueError naming the input that does not fit the module's settings."""
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None; got {self.num_classes}.")
        if x.ndim < 2:
            raise ValueError(
                f"x must have shape [batch, ..., channels] (rank >= 2); got shape {x.shape}."
            )
        batch = x.shape[0]
        if self.num_classes is not None:
            if condition.shape != (batch,) or not jnp.issubdtype(condition.dtype, jnp.integer):
                raise ValueError(
                    f"ConditionalBatchNorm(num_classes={self.num_classes}) expects integer "
                    f"labels of shape [batch] = ({batch},); got condition of shape "
                    f"{condition.shape} and dtype {condition.dtype}. For a continuous or "
                    "one-hot condition, set num_classes=None."
                )
        elif (
            condition.ndim != 2
            or condition.shape[0] != batch
            or not jnp.issubdtype(condition.dtype, jnp.floating)
        ):
            raise ValueError(
                "ConditionalBatchNorm(num_classes=None) expects a float condition of shape "
                f"[batch, dim] with batch = {batch}; got condition of shape "
                f"{condition.shape} and dtype {condition.dtype}. For integer class labels, "
                "set num_classes."
            )
