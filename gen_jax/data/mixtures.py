"""The 2-D Gaussian mixtures of the PacGAN mode-collapse benchmark.

Lin, Khetan, Fanti & Oh, "PacGAN: The power of two samples in generative adversarial
networks", NeurIPS 2018, arXiv:1712.04086 (section 5.1, after VEEGAN, arXiv:1705.07761):

  ring: 8 modes, means (cos(2*pi*i/8), sin(2*pi*i/8)) for i in 0..7, std 0.01;
  grid: 25 modes, means (2i - 4, 2j - 4) for i, j in 0..4, std 0.05.

Every mode has the same weight and an isotropic covariance sigma^2 * I.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Mixture", "get_mixture", "grid_mixture", "ring_mixture", "sample_mixture"]


@dataclasses.dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic 2-D Gaussians.

    Attributes:
      means: the K mode centres, stored as a tuple of (x, y) tuples so that a Mixture is
        hashable and can be a static argument of `jax.jit`; `np.asarray(m.means)` is the
        [K, 2] array. Any [K, 2] array-like is accepted on construction.
      sigma: the standard deviation of every mode along each axis.
    """

    means: tuple[tuple[float, float], ...]
    sigma: float

    def __post_init__(self):
        means = np.asarray(self.means, dtype=np.float64)
        if means.ndim != 2 or means.shape[1] != 2 or means.shape[0] < 1:
            raise ValueError(f"Mixture.means: expected shape [K >= 1, 2], found {means.shape}")
        if not self.sigma > 0:
            raise ValueError(f"Mixture.sigma: expected > 0, found {self.sigma}")
        # Frozen, so assignment goes through object.__setattr__.
        object.__setattr__(self, "means", tuple((float(x), float(y)) for x, y in means))
        object.__setattr__(self, "sigma", float(self.sigma))

    @property
    def num_modes(self) -> int:
        """K, the number of modes."""
        return len(self.means)


def ring_mixture() -> Mixture:
    """The PacGAN 2D-ring: 8 modes on the unit circle, sigma 0.01 (arXiv:1712.04086).

    Returns:
      A Mixture whose mode i has mean (cos(2*pi*i/8), sin(2*pi*i/8)), i = 0..7.
    """
    angles = [2 * math.pi * i / 8 for i in range(8)]
    return Mixture(means=tuple((math.cos(a), math.sin(a)) for a in angles), sigma=0.01)


def grid_mixture() -> Mixture:
    """The PacGAN 2D-grid: 25 modes on {-4, -2, 0, 2, 4}^2, sigma 0.05 (arXiv:1712.04086).

    Returns:
      A Mixture whose mode 5*i + j has mean (2i - 4, 2j - 4), i, j = 0..4.
    """
    return Mixture(
        means=tuple((2.0 * i - 4, 2.0 * j - 4) for i in range(5) for j in range(5)),
        sigma=0.05,
    )


_MIXTURES = {"ring": ring_mixture, "grid": grid_mixture}


def get_mixture(name: str) -> Mixture:
    """Returns the named PacGAN mixture (arXiv:1712.04086).

    Args:
      name: "ring" or "grid".

    Returns:
      `ring_mixture()` or `grid_mixture()`.

    Raises:
      ValueError: `name` is not one of the above.
    """
    if name not in _MIXTURES:
        raise ValueError(f"mixture name: expected one of {sorted(_MIXTURES)}, found {name!r}")
    return _MIXTURES[name]()


def sample_mixture(key: jax.Array, mixture: Mixture, num_samples: int) -> jax.Array:
    """Draws samples from a mixture, each mode with probability 1/K.

        x = means[k] + sigma * eps,  k ~ Uniform{0..K-1},  eps ~ N(0, I_2)

    Jittable with `mixture` and `num_samples` static, e.g.
    `jax.jit(sample_mixture, static_argnums=(1, 2))`.

    Args:
      key: a PRNG key.
      mixture: the mixture (hashable; its means become a constant of the trace).
      num_samples: N, a Python int.

    Returns:
      float32 [N, 2] samples.
    """
    means = jnp.asarray(mixture.means, dtype=jnp.float32)
    mode_key, noise_key = jax.random.split(key)
    modes = jax.random.randint(mode_key, (num_samples,), 0, mixture.num_modes)
    noise = jax.random.normal(noise_key, (num_samples, 2), dtype=jnp.float32)
    return means[modes] + jnp.float32(mixture.sigma) * noise
