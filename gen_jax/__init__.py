"""gen_jax: the classic generative models in JAX/Flax, trained and measured.

The public API, re-exported here; submodules hold the rest:

  gen_jax.losses      pure adversarial losses and the R1 penalty (per-example values)
  gen_jax.data        IDX/Fashion-MNIST sources, 2-D mixtures, on-device batching
  gen_jax.models      Flax modules (MLP GAN, DCGAN)
  gen_jax.nn          reusable layers
  gen_jax.train       state pytrees, the engine (phases of loss terms), steps, the host loop
  gen_jax.metrics     evaluation (mode counting)
  gen_jax.parallel    mesh and shardings
  gen_jax.checkpoint  orbax checkpoints of whole states
  gen_jax.viz         PNG grids, curves, scatters
"""

from gen_jax import losses
from gen_jax.checkpoint import Checkpointer
from gen_jax.parallel import make_mesh, replicate, shard_batch
from gen_jax.train import (
    GANState,
    Phase,
    PlayerSpec,
    TrainState,
    create_gan_state,
    create_train_state,
    fit,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    make_train_step,
    normal_latent,
    r1_term,
    run_training,
)

__all__ = [
    "Checkpointer",
    "GANState",
    "Phase",
    "PlayerSpec",
    "TrainState",
    "create_gan_state",
    "create_train_state",
    "fit",
    "gan_phases",
    "losses",
    "make_gan_step",
    "make_mesh",
    "make_train_chunk",
    "make_train_step",
    "normal_latent",
    "r1_term",
    "replicate",
    "run_training",
    "shard_batch",
]
__version__ = "0.1.0"
