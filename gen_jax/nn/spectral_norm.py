"""Spectral normalisation of a layer's weights (Miyato et al. 2018), with the project's `train`.

Built on ``flax.linen.SpectralNorm``, which already does the job: it wraps any layer, divides
every weight of rank >= 2 (a Dense or Conv kernel; biases are left alone) by an estimate of
its largest singular value, and keeps the power-iteration vector ``u`` (and the last
``sigma``) in the ``"batch_stats"`` collection. The only thing added here is the calling
convention of this project's modules: ``train`` as a keyword (flax's is
``update_stats``), so a discriminator passes its own ``train`` through. The train steps of
``gen_jax.train`` keep every collection a module's ``init`` creates and apply it with
``train=True`` and those collections mutable, so they carry ``u`` from step to step with
the batch statistics, as Miyato et al. do (one power iteration per update); nothing in the
step is specific to spectral norm. The variables have exactly flax's names and shapes, so
parameters and statistics move between the two unchanged.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

__all__ = ["SpectralNorm"]


class SpectralNorm(nn.SpectralNorm):
    """Wraps a layer so that it uses ``W / sigma(W)``, ``sigma`` the largest singular value.

    Each weight of rank >= 2 is viewed as a matrix ``W`` of shape ``[fan_in, out]`` (a conv
    kernel ``[kh, kw, cin, cout]`` as ``[kh*kw*cin, cout]``, Miyato et al.'s reshape).
    With ``u`` (``[1, out]``) the stored vector, each of ``n_steps`` power iterations does

        v = normalise(u W^T),   u = normalise(v W);   then  sigma = v W u^T,

    and the layer runs with ``W / sigma``. ``u`` and ``v`` are held constant in the gradient
    (``stop_gradient``), so the gradient flows through ``sigma`` as in the paper's
    algorithm.

    ``train=True`` stores the new ``u`` and ``sigma`` in ``"batch_stats"`` (apply with
    ``mutable=["batch_stats"]``); ``train=False`` leaves them as they are. Either way the
    ``n_steps`` iterations start from the stored ``u`` (flax's behaviour), so evaluation is
    deterministic given the variables and tracks the weights. At ``init``, ``u`` is drawn
    from N(0, I) with the ``"params"`` key.

    Attributes (all flax's):
      layer_instance: the wrapped module, e.g. ``nn.Conv(64, (3, 3))``; its parameters keep
        their usual names, in the scope the layer was created in.
      n_steps: power iterations per call (1, as in the paper, when ``u`` is carried across
        training steps).
      epsilon: added in the normalisations, against division by zero.
      dtype: dtype of the normalised weights (None: inferred from the weights and ``u``).
      param_dtype: dtype of ``u`` and ``sigma``.
      error_on_non_matrix: raise on weights of rank > 2 instead of flattening them.
      collection_name: where ``u`` and ``sigma`` live; keep ``"batch_stats"``, the only
        mutable collection the train steps carry.

    Example::

      y = SpectralNorm(nn.Conv(64, (4, 4), (2, 2)))(x, train=train)

    References:
      Miyato et al., Spectral Normalization for Generative Adversarial Networks, 2018
      (arXiv:1802.05957).
    """

    def __call__(self, *args: Any, train: bool, **kwargs: Any) -> Any:
        """Runs the wrapped layer with spectrally normalised weights.

        Args:
          *args: the wrapped layer's positional inputs, e.g. ``x`` of shape
            ``[B, H, W, C]`` for a conv or ``[B, D]`` for a Dense.
          train: store the updated ``u`` and ``sigma`` (needs ``"batch_stats"`` mutable).
          **kwargs: the wrapped layer's keyword inputs (``train`` is consumed here).

        Returns:
          The wrapped layer's output.
        """
        return super().__call__(*args, update_stats=train, **kwargs)
