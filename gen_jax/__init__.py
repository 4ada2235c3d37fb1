"""gen_jax: the classic generative models in JAX/Flax."""
