"""gen_jax.nn.xla_cpu's direct convolution: the same values and gradients as lax, in and out
of loops (through the public door; `kernel_gradient` is an internal, tested here)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gen_jax.nn.xla_cpu import conv_general_dilated, fast_path_applies
from gen_jax.nn.xla_cpu._direct import kernel_gradient

DN = ("NHWC", "HWIO", "NHWC")


def _pair(x, w, **kw):
    ours = conv_general_dilated(x, w, **kw)
    ref = lax.conv_general_dilated(x, w, **kw)
    return ours, ref


def _numpy_conv(x, w, pads):
    """Direct float64 NHWC/HWIO correlation with explicit zero padding (stride 1)."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    w = np.asarray(w, np.float64)
    kh, kw = w.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nhwi,io->nhwo", x[:, a : a + ho, b : b + wo], w[a, b])
    return out


@pytest.mark.parametrize(
    "kernel,pads",
    [
        ((3, 3), ((1, 1), (1, 1))),
        ((3, 3), ((0, 0), (0, 0))),
        ((5, 3), ((2, 1), (0, 2))),
        ((1, 1), ((0, 0), (0, 0))),
        ((4, 4), ((3, 0), (1, 2))),
    ],
)
def test_values_and_gradients_match_lax(kernel, pads):
    kx, kw_, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2, 9, 7, 3))
    w = jax.random.normal(kw_, (*kernel, 3, 4))
    kw = {"window_strides": (1, 1), "padding": pads, "dimension_numbers": DN}
    assert fast_path_applies(x.shape, w.shape, (1, 1), pads, dimension_numbers=DN)
    ours, ref = _pair(x, w, **kw)
    np.testing.assert_allclose(ours, _numpy_conv(x, w, pads), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(kg, ours.shape)
    _, vjp_ours = jax.vjp(lambda x, w: conv_general_dilated(x, w, **kw), x, w)
    _, vjp_ref = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **kw), x, w)
    for a, b in zip(vjp_ours(g), vjp_ref(g)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_same_padding_string_and_second_order():
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 6, 6, 2))
    w = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 2, 2))

    def f(conv):
        return lambda x: jnp.sum(jnp.tanh(conv(x, w, (1, 1), "SAME", dimension_numbers=DN)))

    np.testing.assert_allclose(
        jax.grad(f(conv_general_dilated))(x), jax.grad(f(lax.conv_general_dilated))(x), rtol=1e-5
    )
    # The backward pass is itself made of differentiable convolutions (Hessian-vector products).
    v = jnp.ones_like(x)

    def hvp(conv):
        return jax.jvp(jax.grad(f(conv)), (x,), (v,))[1]

    np.testing.assert_allclose(
        hvp(conv_general_dilated), hvp(lax.conv_general_dilated), rtol=1e-4, atol=1e-5
    )


def test_gradients_inside_scan_match():
    x = jax.random.normal(jax.random.PRNGKey(3), (1, 8, 8, 3))
    w = jax.random.normal(jax.random.PRNGKey(4), (3, 3, 3, 3)) * 0.3

    def descend(conv):
        def loss(p):
            y = conv(p[0], p[1], (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
            return jnp.sum(jnp.sin(y))

        def body(p, _):
            g = jax.grad(loss)(p)
            return jax.tree.map(lambda a, b: a - 0.01 * b, p, g), loss(p)

        return jax.jit(lambda p: lax.scan(body, p, None, length=3))((x, w))

    (p1, l1), (p2, l2) = descend(conv_general_dilated), descend(lax.conv_general_dilated)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "strides,kernel,padding,size",
    [
        ((2, 2), (4, 4), ((1, 1), (1, 1)), (14, 14)),  # DCGAN's discriminator
        ((2, 2), (3, 3), "SAME", (9, 8)),  # odd sizes, s does not divide k
        ((2, 2), (5, 5), "SAME", (28, 28)),  # the classifier's convolutions
        ((3, 2), (4, 3), ((2, 0), (1, 3)), (11, 10)),
        ((1, 1), (3, 3), ((3, 3), (1, 4)), (6, 5)),  # padded by more than k - 1
        ((2, 2), (2, 2), "VALID", (7, 7)),  # drops the last row and column
    ],
)
def test_strided_and_overpadded_convolutions_match_lax(strides, kernel, padding, size):
    x = jax.random.normal(jax.random.PRNGKey(9), (2, *size, 3))
    w = jax.random.normal(jax.random.PRNGKey(10), (*kernel, 3, 5))
    kw = {"window_strides": strides, "padding": padding, "dimension_numbers": DN}
    assert fast_path_applies(x.shape, w.shape, **kw)
    ours, ref = _pair(x, w, **kw)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(jax.random.PRNGKey(11), ours.shape)
    _, vjp_ours = jax.vjp(lambda x, w: conv_general_dilated(x, w, **kw), x, w)
    _, vjp_ref = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **kw), x, w)
    for a, b in zip(vjp_ours(g), vjp_ref(g)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_strides": (1, 1), "padding": ((-1, 1), (1, 1)), "dimension_numbers": DN},
        {"window_strides": (1, 1), "padding": ((1, 1), (1, 1)), "dimension_numbers": None},
        {
            "window_strides": (1, 1),
            "padding": ((1, 1), (1, 1)),
            "dimension_numbers": DN,
            "rhs_dilation": (2, 2),
        },
    ],
)
def test_other_configurations_fall_back_to_lax(kwargs):
    shape_x = (1, 3, 8, 8) if kwargs["dimension_numbers"] is None else (1, 8, 8, 3)
    shape_w = (3, 3, 3, 3)
    x = jax.random.normal(jax.random.PRNGKey(5), shape_x)
    w = jax.random.normal(jax.random.PRNGKey(6), shape_w)
    assert not fast_path_applies(x.shape, w.shape, **kwargs)
    ours, ref = _pair(x, w, **kwargs)
    np.testing.assert_array_equal(ours, ref)


def test_drop_in_for_flax_conv():
    """flax passes its own ConvDimensionNumbers; the module's params are unchanged."""
    x = jax.random.normal(jax.random.PRNGKey(7), (2, 5, 5, 3))
    ref = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)))
    ours = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), conv_general_dilated=conv_general_dilated)
    params = ref.init(jax.random.PRNGKey(8), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(8), x)) == jax.tree.map(
        jnp.shape, params
    )
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-6)
    g_ours = jax.grad(lambda p: jnp.sum(ours.apply(p, x) ** 2))(params)
    g_ref = jax.grad(lambda p: jnp.sum(ref.apply(p, x) ** 2))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_ours, g_ref)


def test_kernel_gradient_refuses_inconsistent_shapes():
    x, g = jnp.zeros((1, 5, 5, 2)), jnp.zeros((1, 5, 5, 3))
    assert kernel_gradient(x, g, ((1, 1), (1, 1)), (3, 3)).shape == (3, 3, 2, 3)
    with pytest.raises(ValueError, match=r"give a \(3, 3\) kernel, not \(5, 5\)"):
        kernel_gradient(x, g, ((1, 1), (1, 1)), (5, 5))
