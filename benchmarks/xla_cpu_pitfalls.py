"""Measures the two XLA:CPU slow paths that shaped gen_jax's DCGAN code.

    python -m benchmarks.xla_cpu_pitfalls

1. The kernel gradient of a 4x4/stride-2 transposed conv: `flax.linen.ConvTranspose`
   (an lhs-dilated convolution) against `gen_jax.nn.PhaseConvTranspose` (four 2x2 convs),
   at batch 64, 16x16x256 -> 32x32x128.
2. A 28x28 DCGAN train step (batch 64) dispatched alone, and inside a K=4 `lax.scan`
   rolled (unroll=1) and fully unrolled.
3. The input and kernel gradients of one 3x3 stride-1 convolution (1x128x128x64 -> 64),
   at top level and inside a 3-step `lax.scan`, with JAX's own transpose rule
   (`lax.conv_general_dilated`) and with `gen_jax.nn.xla_cpu.conv_general_dilated`.

Each time is the median of `REPEATS` calls after a compiling one (`benchmarks.runner`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from benchmarks.runner import median_seconds
from gen_jax import losses
from gen_jax.models.dcgan import DCGANDiscriminator28, DCGANGenerator28
from gen_jax.nn.conv_transpose import PhaseConvTranspose
from gen_jax.nn.xla_cpu import conv_general_dilated
from gen_jax.train import (
    PlayerSpec,
    create_gan_state,
    gan_phases,
    make_gan_step,
    make_train_chunk,
    normal_latent,
)

REPEATS = 3


def conv_transpose_kernel_grad() -> dict[str, float]:
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 16, 16, 256))
    out = {}
    for name, layer in [
        ("flax ConvTranspose", nn.ConvTranspose(128, (4, 4), (2, 2), padding=((2, 2), (2, 2)))),
        ("PhaseConvTranspose", PhaseConvTranspose(128)),
    ]:
        params = layer.init(jax.random.PRNGKey(1), x)
        grad = jax.jit(jax.grad(lambda p, x, layer=layer: jnp.sum(layer.apply(p, x) ** 2)))
        out[name] = median_seconds(grad, params, x, repeats=REPEATS)
    return out


def scan_unrolling(k: int = 4) -> dict[str, float]:
    b, tx = 64, optax.adam(2e-4, b1=0.5)
    state = create_gan_state(
        jax.random.PRNGKey(0),
        {
            "g": PlayerSpec(DCGANGenerator28(), tx, (jnp.zeros((b, 100)),)),
            "d": PlayerSpec(DCGANDiscriminator28(), tx, (jnp.zeros((b, 28, 28, 1)),)),
        },
    )
    train_step = make_gan_step(
        gan_phases(
            losses.non_saturating_generator_loss,
            losses.minimax_discriminator_loss,
            normal_latent(100),
        )
    )
    real = jnp.zeros((1, b, 28, 28, 1))
    single = median_seconds(jax.jit(train_step), state, {"real": real}, repeats=REPEATS)
    out = {"single step per dispatch": single}
    for name, unroll in [("scan, rolled", 1), ("scan, unrolled", True)]:
        chunk = make_train_chunk(train_step, lambda d, key, step: {"real": d}, k, unroll=unroll)
        # A fresh copy per call: the chunk donates its state argument.
        run = lambda s, d, chunk=chunk: chunk(jax.tree.map(jnp.copy, s), d)
        out[name] = median_seconds(run, state, real, repeats=REPEATS) / k
    return out


def conv_gradients_in_loops(size: int = 128, channels: int = 64) -> dict[str, float]:
    """Seconds per gradient of one 3x3 conv, at top level and per iteration of a scan."""
    x = jax.random.normal(jax.random.PRNGKey(0), (1, size, size, channels))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, channels, channels)) * 0.05
    out = {}
    for impl, conv in [("lax", jax.lax.conv_general_dilated), ("gen_jax", conv_general_dilated)]:

        def loss(x, w, conv=conv):
            y = conv(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jnp.sum(jnp.sin(y))

        for wrt, argnum in [("input", 0), ("kernel", 1)]:
            grad = jax.grad(loss, argnums=argnum)
            top = median_seconds(jax.jit(grad), x, w, repeats=REPEATS)
            out[f"{wrt} gradient, {impl}, top level"] = top

            def descend(x, w, grad=grad, argnum=argnum):
                def body(p, _):
                    g = grad(*p)
                    return (p[0] - 1e-3 * g, p[1]) if argnum == 0 else (p[0], p[1] - 1e-3 * g), None

                return jax.lax.scan(body, (x, w), None, length=3)[0]

            in_scan = median_seconds(jax.jit(descend), x, w, repeats=REPEATS) / 3
            out[f"{wrt} gradient, {impl}, in a scan"] = in_scan
    return out


def main() -> None:
    print(f"device: {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
    for name, sec in conv_transpose_kernel_grad().items():
        print(f"kernel gradient, {name:28s} {sec:8.3f} s")
    for name, sec in scan_unrolling().items():
        print(f"28x28 DCGAN step, {name:26s} {sec:8.3f} s/step")
    for name, sec in conv_gradients_in_loops().items():
        print(f"3x3 conv, {name:34s} {sec:8.4f} s")


if __name__ == "__main__":
    main()
