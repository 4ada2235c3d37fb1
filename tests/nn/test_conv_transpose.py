"""PhaseConvTranspose is flax's 4x4, stride-2 transposed convolution with padding 2 per side."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.conv_transpose import PhaseConvTranspose

C_IN, FEATURES = 3, 5


def _reference(use_bias):
    return nn.ConvTranspose(FEATURES, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=use_bias)


def _normal(seed, shape):
    # Drawn flat and reshaped: jax 0.10's threefry compiles slowly for some 4-D shapes on CPU.
    return jax.random.normal(jax.random.PRNGKey(seed), (int(np.prod(shape)),)).reshape(shape)


@pytest.mark.parametrize("use_bias", [False, True])
def test_equals_flax_conv_transpose_with_gradients(use_bias):
    # Non-square input with distinct H and W catches swapped phases or axes.
    x = _normal(0, (2, 5, 6, C_IN))
    phase = PhaseConvTranspose(FEATURES, use_bias=use_bias)
    params = {"kernel": _normal(1, (4, 4, C_IN, FEATURES))}
    if use_bias:  # A non-zero bias, so adding it is tested too.
        params["bias"] = jnp.arange(FEATURES, dtype=jnp.float32) - 2.0
    cotangent = _normal(2, (2, 10, 12, FEATURES))

    @jax.jit
    def outputs_and_grads(params, x):
        def run(module):
            def loss(params, x):
                y = module.apply({"params": params}, x)
                return jnp.sum(y * cotangent), y

            (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
            return y, grads

        return run(phase), run(_reference(use_bias))

    (y, (g_params, g_x)), (y_ref, (g_params_ref, g_x_ref)) = outputs_and_grads(params, x)
    assert y.shape == y_ref.shape == (2, 10, 12, FEATURES)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_x, g_x_ref, rtol=1e-5, atol=1e-5)
    assert set(g_params) == set(g_params_ref)
    for name in g_params:
        np.testing.assert_allclose(g_params[name], g_params_ref[name], rtol=1e-5, atol=1e-4)


def test_flax_reference_accepts_the_same_params():
    """The layers share parameter names and shapes, so checkpoints carry over."""
    x = jnp.zeros((1, 3, 3, C_IN))
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(PhaseConvTranspose(FEATURES, use_bias=True).init, key, x)
    ref = jax.eval_shape(_reference(True).init, key, x)
    assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(lambda s: s.shape, ref)
    assert shapes["params"]["kernel"].shape == (4, 4, C_IN, FEATURES)


def test_one_pixel_input_places_the_kernel_taps():
    """A single input pixel of value 1 paints the kernel's centre 2x2 taps, flipped."""
    kernel = jnp.arange(16.0).reshape(4, 4, 1, 1)
    y = PhaseConvTranspose(1).apply({"params": {"kernel": kernel}}, jnp.ones((1, 1, 1, 1)))
    assert y.shape == (1, 2, 2, 1)
    # Output phase 0 reads tap 2 of x[i] and phase 1 reads tap 1 (see the module's _TAPS).
    np.testing.assert_array_equal(y[0, :, :, 0], kernel[2:0:-1, 2:0:-1, 0, 0])
