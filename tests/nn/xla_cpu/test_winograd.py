"""gen_jax.nn.xla_cpu's Winograd convolution and conv_general_dilated's algorithm choice
(through the public door; the product-order rule `_kernel_first` is an internal, tested
here)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gen_jax.nn.xla_cpu import _winograd as winograd
from gen_jax.nn.xla_cpu import (
    conv_general_dilated,
    winograd_conv3x3,
    winograd_kernels,
    winograd_plan,
)

DN = ("NHWC", "HWIO", "NHWC")


def _numpy_conv(x, w, pads):
    """Direct float64 NHWC/HWIO correlation with explicit zero padding (stride 1)."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    w = np.asarray(w, np.float64)
    ho, wo = x.shape[1] - 2, x.shape[2] - 2
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for a in range(3):
        for b in range(3):
            out += np.einsum("nhwi,io->nhwo", x[:, a : a + ho, b : b + wo], w[a, b])
    return out


def _lax(x, w, pads):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN, precision="highest")


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize(
    "shape,pads",
    [
        ((2, 9, 7, 5), ((1, 1), (1, 1))),  # sizes that are no multiple of the tile
        ((1, 8, 8, 4), ((0, 0), (0, 0))),
        ((1, 6, 5, 3), ((2, 0), (0, 2))),
        ((1, 1, 1, 3), ((1, 1), (1, 1))),  # one pixel: a tile mostly of padding
    ],
)
def test_values_and_gradients_match_the_direct_convolution(tile, shape, pads):
    kx, kw_, kg = jax.random.split(jax.random.PRNGKey(tile), 3)
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw_, (3, 3, shape[3], 6))
    conv = jax.jit(lambda x, w: winograd_conv3x3(x, w, pads, tile=tile))
    y = conv(x, w)
    expected = _numpy_conv(x, w, pads)
    assert y.shape == expected.shape
    # Float32 rounding of the transforms: the tolerance is scaled to the output.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-6 * tile * scale)
    g = jax.random.normal(kg, y.shape)
    vjp = jax.jit(lambda f, x, w, g: jax.vjp(f, x, w)[1](g), static_argnums=0)
    ours_grads = vjp(lambda x, w: winograd_conv3x3(x, w, pads, tile=tile), x, w, g)
    ref_grads = vjp(lambda x, w: _lax(x, w, pads), x, w, g)
    for ours, ref in zip(ours_grads, ref_grads):
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * tile * np.abs(ref).max())


@pytest.mark.parametrize("tile", [2, 4])
def test_both_orders_of_the_batched_products_agree(tile, monkeypatch):
    """Kernel on the left or data on the left: the same values and gradients."""
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(5), 3)
    x = jax.random.normal(kx, (2, 11, 9, 6))
    w = jax.random.normal(kw, (3, 3, 6, 5))
    g = jax.random.normal(kg, (2, 11, 9, 5))

    def run():
        y, vjp = jax.vjp(lambda x, w: winograd_conv3x3(x, w, tile=tile), x, w)
        return (y, *vjp(g))

    results = {}
    for first in (True, False):
        monkeypatch.setattr(winograd, "_kernel_first", lambda tiles, c, k, first=first: first)
        results[first] = run()
    # The keyword forces the same orders, whatever the rule says.
    monkeypatch.setattr(winograd, "_kernel_first", lambda tiles, c, k: pytest.fail("rule used"))
    for first in (True, False):
        y, vjp = jax.vjp(
            lambda x, w, first=first: winograd_conv3x3(x, w, tile=tile, kernel_first=first), x, w
        )
        for a, b in zip((y, *vjp(g)), results[first]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    ref = _numpy_conv(x, w, ((1, 1), (1, 1)))
    np.testing.assert_allclose(results[True][0], ref, rtol=0, atol=2e-6 * tile * np.abs(ref).max())


def test_the_kernel_goes_on_the_left_when_channels_outnumber_tiles_4_to_1():
    # VGG19 at 256 px: conv4 and conv5 (64 tiles, 512 channels) kernel first; conv3 (256
    # tiles, 256 channels), conv2 and conv1_2 data first.
    assert winograd._kernel_first(64, 256, 512)
    assert winograd._kernel_first(64, 512, 512)
    assert not winograd._kernel_first(256, 256, 256)
    assert not winograd._kernel_first(256, 128, 256)
    assert not winograd._kernel_first(1024, 128, 128)
    assert not winograd._kernel_first(4096, 64, 64)
    # At 512 px, conv4 (256 tiles, 512 channels) is data first.
    assert not winograd._kernel_first(256, 512, 512)


def test_tile4_error_is_float_rounding_on_wide_layers():
    """The accuracy "auto" relies on: 256 channels, VGG-like magnitudes."""
    kx, kw = jax.random.split(jax.random.PRNGKey(3))
    x = jax.nn.relu(jax.random.normal(kx, (1, 20, 20, 256)))
    w = jax.random.normal(kw, (3, 3, 256, 32)) * (2.0 / (9 * 256)) ** 0.5
    y = jax.jit(winograd_conv3x3)(x, w)
    ref = _numpy_conv(x, w, ((1, 1), (1, 1)))
    rel = np.linalg.norm(np.asarray(y, np.float64) - ref) / np.linalg.norm(ref)
    assert rel < 1e-5


def test_second_order_gradients():
    """A Hessian-vector product goes through the written-out backward pass."""
    kx, kw, kv = jax.random.split(jax.random.PRNGKey(4), 3)
    x = jax.random.normal(kx, (1, 6, 6, 3))
    w = jax.random.normal(kw, (3, 3, 3, 4))
    v = jax.random.normal(kv, x.shape)

    def hvp(conv):
        f = lambda x: jnp.sum(jnp.tanh(conv(x)) ** 2)
        return jax.grad(lambda x: jnp.vdot(jax.grad(f)(x), v))

    ours = jax.jit(hvp(lambda x: winograd_conv3x3(x, w)))(x)
    ref = jax.jit(hvp(lambda x: _lax(x, w, ((1, 1), (1, 1)))))(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_inside_a_scan_the_gradient_is_the_same():
    """In a scan (where L-BFGS's line search runs) the values equal the top-level ones."""
    x = jax.random.normal(jax.random.PRNGKey(5), (1, 12, 12, 16))
    w = jax.random.normal(jax.random.PRNGKey(6), (3, 3, 16, 16)) * 0.1
    loss = lambda x: jnp.sum(jax.nn.relu(winograd_conv3x3(x, w)) ** 2)

    def body(c, _):
        return c - 1e-3 * jax.grad(loss)(c), None

    looped = jax.jit(lambda c: lax.scan(body, c, None, length=2)[0])(x)
    step = jax.jit(lambda c: c - 1e-3 * jax.grad(loss)(c))
    twice = step(step(x))
    np.testing.assert_allclose(looped, twice, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda x: winograd_conv3x3(x, jnp.zeros((5, 5, 3, 4))), "3, 3, 3, K"),
        (lambda x: winograd_conv3x3(x, jnp.zeros((3, 3, 2, 4))), "3, 3, 3, K"),
        (lambda x: winograd_conv3x3(x, jnp.zeros((3, 3, 3, 4)), tile=3), "tile"),
        (lambda x: winograd_conv3x3(x, jnp.zeros((3, 3, 3, 4)), ((3, 0), (1, 1))), "0..2"),
        (lambda x: winograd_conv3x3(x[:, :1], jnp.zeros((3, 3, 3, 4)), ((0, 0), (1, 1))), "small"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(jnp.zeros((1, 8, 8, 3)))


def _tile(side, c_in, c_out, algorithm="auto", backend="cpu", kernel=3, stride=1, dtype=None):
    return winograd_plan(
        (1, side, side, c_in),
        (kernel, kernel, c_in, c_out),
        (stride, stride),
        ((1, 1), (1, 1)),
        dtype or jnp.float32,
        algorithm,
        backend,
    ).tile


def test_auto_choice():
    # VGG's wide layers on the CPU: tile 4 on big maps, tile 2 on small ones.
    assert _tile(64, 256, 256) == 4
    assert _tile(16, 512, 512) == 2
    # Left to the direct convolution: thin layers, other backends, bf16, 5x5, stride 2.
    assert _tile(64, 64, 128) == 4
    assert _tile(64, 3, 64) is None
    assert _tile(64, 32, 64) is None
    assert _tile(8, 512, 512) is None
    assert _tile(64, 128, 128, backend="gpu") is None
    assert _tile(64, 128, 128, dtype=jnp.bfloat16) is None
    assert _tile(64, 128, 128, kernel=5) is None
    assert _tile(64, 128, 128, stride=2) is None
    assert _tile(64, 256, 256, algorithm="direct") is None
    # Forced: any 3x3 stride-1 convolution, whatever its channels, dtype and backend.
    assert _tile(8, 3, 4, algorithm="winograd", backend="gpu", dtype=jnp.bfloat16) == 2
    with pytest.raises(ValueError, match="algorithm"):
        _tile(8, 3, 4, algorithm="fft")


def test_flax_conv_with_each_algorithm_agrees():
    """`functools.partial(conv_general_dilated, algorithm=...)` as flax's conv function."""
    import functools

    x = jax.random.normal(jax.random.PRNGKey(7), (2, 10, 10, 16))
    outs = {}
    for algorithm in ("direct", "winograd", "auto"):
        conv = functools.partial(conv_general_dilated, algorithm=algorithm)
        layer = nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)), conv_general_dilated=conv)
        params = jax.jit(layer.init)(jax.random.PRNGKey(8), x)
        outs[algorithm] = jax.jit(layer.apply)(params, x)
    np.testing.assert_allclose(outs["winograd"], outs["direct"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs["auto"], outs["direct"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="algorithm"):
        conv_general_dilated(x, jnp.zeros((3, 3, 16, 4)), (1, 1), "SAME", algorithm="fast")


@pytest.mark.parametrize("tile", [2, 4])
def test_kernels_computed_ahead_give_the_same_values_and_gradients(tile):
    """`winograd_kernels` once, outside: the same convolution, input and kernel gradients."""
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(9), 3)
    x = jax.random.normal(kx, (1, 9, 10, 5))
    w = jax.random.normal(kw, (3, 3, 5, 7))
    kernels = jax.jit(winograd_kernels, static_argnums=1)(w, tile)
    # Output channels first: U maps the 5 input channels to 7, U_flipped maps 7 back to 5.
    assert [k.shape for k in kernels] == [((tile + 2) ** 2, 7, 5), ((tile + 2) ** 2, 5, 7)]
    pads = ((1, 1), (1, 1))
    ahead = lambda x, w: winograd_conv3x3(x, w, pads, tile=tile, kernels=kernels)
    inside = lambda x, w: winograd_conv3x3(x, w, pads, tile=tile)
    y_ahead, vjp_ahead = jax.vjp(ahead, x, w)
    y_inside, vjp_inside = jax.vjp(inside, x, w)
    np.testing.assert_allclose(y_ahead, y_inside, rtol=1e-6, atol=1e-6)
    g = jax.random.normal(kg, y_ahead.shape)
    for a, b in zip(vjp_ahead(g), vjp_inside(g)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # The transform is G w G^T: its (0, 0) entry is w's corner tap times G[0, 0]^2.
    g00 = {2: 1.0, 4: 1 / 16}[tile]
    np.testing.assert_allclose(kernels[0][0], w[0, 0].T * g00, rtol=1e-6)
    np.testing.assert_allclose(kernels[1][0], w[2, 2] * g00, rtol=1e-6)


def test_kernels_of_the_wrong_shape_are_refused():
    x, w = jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match="winograd_kernels"):
        winograd_conv3x3(x, w, tile=4, kernels=winograd_kernels(w, 2))
    with pytest.raises(ValueError, match="tile"):
        winograd_kernels(w, 3)
    with pytest.raises(ValueError, match="3, 3, C, K"):
        winograd_kernels(jnp.zeros((5, 5, 3, 4)), 4)
