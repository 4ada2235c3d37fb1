"""Training: state pytrees, the engine of phases and terms, step builders and the host loop.

state      Player, GANState (named players + objective state), TrainState (one player)
engine     Phase, Nets, make_gan_step: players updated in phases by sums of loss terms
terms      the standard GAN pieces: latents, the generated batch, adversarial terms, R1
steps      make_train_step (one player), make_train_chunk (K steps in one program)
precision  the compute dtypes of mixed precision (bfloat16 compute, float32 parameters)
loop       run_training, run_synthesis, fit, RunLog: the host loop every experiment calls
"""

from gen_jax.train.engine import Nets, Phase, PhaseOutcome, make_gan_step, run_phase
from gen_jax.train.loop import (
    RunLog,
    SynthesisRun,
    check_synthesis_resumable,
    fit,
    run_synthesis,
    run_training,
)
from gen_jax.train.precision import COMPUTE_DTYPES, compute_dtype
from gen_jax.train.state import (
    GANState,
    Player,
    PlayerSpec,
    TrainState,
    create_gan_state,
    create_player,
    create_train_state,
    stream_keys,
)
from gen_jax.train.steps import make_train_chunk, make_train_step
from gen_jax.train.terms import (
    discriminator_term,
    gan_phases,
    generator_term,
    normal_latent,
    r1_term,
    sample_fake,
)

__all__ = [
    "COMPUTE_DTYPES",
    "GANState",
    "Nets",
    "Phase",
    "PhaseOutcome",
    "Player",
    "PlayerSpec",
    "RunLog",
    "SynthesisRun",
    "TrainState",
    "check_synthesis_resumable",
    "compute_dtype",
    "create_gan_state",
    "create_player",
    "create_train_state",
    "discriminator_term",
    "fit",
    "gan_phases",
    "generator_term",
    "make_gan_step",
    "make_train_chunk",
    "make_train_step",
    "normal_latent",
    "r1_term",
    "run_phase",
    "run_synthesis",
    "run_training",
    "sample_fake",
    "stream_keys",
]
