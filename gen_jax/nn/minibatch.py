"""Layers that let a discriminator look across the minibatch, against mode collapse.

* ``MinibatchStdDev`` (Karras et al. 2018): appends the average standard deviation of the
  features over a group of examples as extra channels; no parameters.
* ``MinibatchDiscrimination`` (Salimans et al. 2016): appends, per learned kernel, how
  close each example is to the others in the batch, through a learned tensor ``T``.

Both compute the same thing in training and evaluation (they use whatever batch they are
given), so neither takes ``train``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import dtypes

__all__ = ["MinibatchDiscrimination", "MinibatchStdDev"]

Dtype = Any
Initializer = Any


class MinibatchStdDev(nn.Module):
    """Appends the group standard deviation of the features: [B, ..., C] -> [B, ..., C + n].

    The batch is split into ``B / G`` groups of ``G = min(group_size, B)`` examples, and the
    channels into ``n = num_channels`` contiguous blocks of ``C / n``. For each group and
    block,

        s = mean over positions and the block's channels of sqrt(Var_group[x] + epsilon),

    with ``Var_group`` the (biased) variance over the group's ``G`` examples, per position
    and channel. ``s`` is appended to each example of the group, constant across positions,
    as one channel per block. As in Karras et al.'s code, example ``b`` belongs to group
    ``b mod (B / G)`` (the batch is reshaped ``[G, B / G, ...]``), and the statistic is
    computed in at least float32 and returned in the input's dtype.

    A batch smaller than ``group_size`` forms one group (Karras's ``min(group_size, B)``,
    so a batch of 1 still runs and gets ``sqrt(epsilon)``); a batch larger than
    ``group_size`` and not divisible by it is rejected, as Karras's reshape would be.

    Attributes:
      group_size: examples per group (4 in the paper).
      num_channels: number of appended channels, one per block of ``C / n`` channels
        (1 in the paper); must divide ``C``.
      epsilon: added to the variance, so the square root's gradient stays finite at zero.

    No ``dtype``/``param_dtype`` fields: there are no parameters, and the output keeps the
    input's dtype.

    References:
      Karras et al., Progressive Growing of GANs for Improved Quality, Stability, and
      Variation, 2018 (arXiv:1710.10196), section 3.
    """

    group_size: int = 4
    num_channels: int = 1
    epsilon: float = 1e-8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Appends the minibatch standard deviation.

        Args:
          x: features ``[B, C]`` or images ``[B, H, W, C]`` (any rank >= 2, channels last).

        Returns:
          ``x`` with ``num_channels`` channels appended: shape ``[B, ..., C + n]``.
        """
        x = jnp.asarray(x)
        if self.group_size < 1 or self.num_channels < 1:
            raise ValueError(
                "MinibatchStdDev needs group_size >= 1 and num_channels >= 1; got "
                f"group_size={self.group_size}, num_channels={self.num_channels}."
            )
        if x.ndim < 2:
            raise ValueError(
                f"x must have shape [batch, ..., channels] (rank >= 2); got shape {x.shape}."
            )
        b, c, n = x.shape[0], x.shape[-1], self.num_channels
        g = min(self.group_size, b)
        if b % g:
            raise ValueError(
                f"MinibatchStdDev(group_size={self.group_size}) needs a batch divisible by "
                f"the group size (or smaller than it); got x of shape {x.shape}."
            )
        if c % n:
            raise ValueError(
                f"MinibatchStdDev(num_channels={n}) needs channels divisible by {n}; got x "
                f"of shape {x.shape}."
            )
        spatial = x.shape[1:-1]
        stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
        # [G, M, *spatial, n, C/n]: example g*M + m is member g of group m.
        y = x.astype(stat_dtype).reshape(g, b // g, *spatial, n, c // n)
        y = jnp.sqrt(jnp.var(y, axis=0) + self.epsilon)  # [M, *spatial, n, C/n]
        axes = tuple(range(1, len(spatial) + 1)) + (y.ndim - 1,)
        y = jnp.mean(y, axis=axes)  # [M, n]
        y = jnp.tile(y, (g, 1)).astype(x.dtype)  # [B, n]: row g*M + m is group m's.
        y = jnp.broadcast_to(y.reshape(b, *(1,) * len(spatial), n), (b, *spatial, n))
        return jnp.concatenate([x, y], axis=-1)


class MinibatchDiscrimination(nn.Module):
    """Appends minibatch features ``o(x_i)``: [B, A] -> [B, A + num_kernels].

    With ``T`` a learned tensor of shape ``[A, K, D]`` (``K = num_kernels``,
    ``D = kernel_dim``), ``M_i = x_i T`` (``[K, D]``) and, for each kernel ``k``,

        o(x_i)_k = sum_{j != i} exp(-||M_{i,k} - M_{j,k}||_1) + b_k,

    the L1 closeness of example ``i`` to the rest of the batch; ``[x_i, o(x_i)]`` is
    returned. The sum leaves out ``j = i`` as Salimans et al.'s code does (the paper's sum
    includes it, a constant ``exp(0) = 1``). Inputs of rank > 2 are flattened to
    ``[B, A]`` first, as there. The paper's data-dependent initialisation of ``T`` (weight
    normalisation) is not reproduced: ``T`` is drawn from N(0, 0.05^2), the code's scale,
    and ``b`` starts at zero.

    The intermediate ``|M_i - M_j|`` has ``B * B * K * D`` entries.

    Attributes:
      num_kernels: ``K``, the number of appended features (100 in Salimans et al.).
      kernel_dim: ``D``, the dimension of each kernel's projection (5 there).
      use_bias: add the learned ``b``.
      kernel_init: initialiser of ``T`` (``[A, K, D]``).
      bias_init: initialiser of ``b`` (``[K]``).
      dtype: dtype of the computation and the result (None: inferred from the input and
        the parameters).
      param_dtype: dtype of the parameters.

    References:
      Salimans et al., Improved Techniques for Training GANs, 2016 (arXiv:1606.03498),
      section 3.2.
    """

    num_kernels: int = 100
    kernel_dim: int = 5
    use_bias: bool = True
    kernel_init: Initializer = nn.initializers.normal(stddev=0.05)
    bias_init: Initializer = nn.initializers.zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Appends the minibatch features.

        Args:
          x: features ``[B, A]``; higher ranks ``[B, ...]`` are flattened to ``[B, A]``.

        Returns:
          ``[B, A + num_kernels]``: the (flattened) input, then ``o(x)``.
        """
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(
                f"x must have shape [batch, features] (or [batch, ...]); got shape {x.shape}."
            )
        x = x.reshape(x.shape[0], -1)
        kernel = self.param(
            "kernel",
            self.kernel_init,
            (x.shape[1], self.num_kernels, self.kernel_dim),
            self.param_dtype,
        )
        bias = (
            self.param("bias", self.bias_init, (self.num_kernels,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        m = jnp.einsum("ba,akd->bkd", x, kernel)  # [B, K, D]
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [B, B, K]
        # Drop j = i with a mask, not Salimans's +1e6 on the diagonal: exact, any dtype.
        others = ~jnp.eye(x.shape[0], dtype=bool)[:, :, None]
        o = jnp.sum(jnp.where(others, jnp.exp(-l1), 0.0), axis=1)  # [B, K]
        if bias is not None:
            o = o + bias
        return jnp.concatenate([x, o.astype(x.dtype)], axis=-1)
