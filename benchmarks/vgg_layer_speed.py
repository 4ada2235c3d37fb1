"""Per-layer times of VGG19's convolutions, pools and Gram matrices: the evidence
behind `conv_algorithm="auto"` and `gen_jax.models.features.vgg.pool_2x2`.

    python -m benchmarks.vgg_layer_speed --size 256 --out docs/bench/vgg_layers_cpu.md

For each distinct 3x3 convolution of VGG19 up to relu5_1 at a `--size` x `--size` input
(one image), the time of one forward pass plus the input gradient, per iteration of a
3-step `lax.scan` (where L-BFGS's line search runs its evaluations), for the direct
convolution (`gen_jax.nn.xla_cpu`) and Winograd F(2x2, 3x3) and F(4x4, 3x3)
(`winograd_conv3x3`), and which one `conv_algorithm="auto"` picks. Then the same for
the 2x2 max pool after each block: flax's windowed `max_pool` against `pool_2x2`; and
the Gram matrix of each style layer (relu1_1..relu5_1): JAX's gradient of the einsum
against `gen_jax.losses.perceptual.gram_matrix`'s written-out one. Last, for each layer
that "auto" runs by Winograd, the two orders of its batched transform-domain products
(transformed data on the left or the kernel on the left): the products alone, then the
whole layer as VGG runs it (convolution, bias and ReLU, forward and input gradient, the
transformed kernels passed in), and the order `winograd_conv3x3`'s rule picks.
Timings are the median of `--repeats` calls after a compiling one.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.report import check_out_paths, table, write_text
from benchmarks.runner import median_seconds
from gen_jax.losses.perceptual import gram_matrix
from gen_jax.models.features.vgg import pool_2x2
from gen_jax.nn.xla_cpu import (
    conv_general_dilated,
    winograd_conv3x3,
    winograd_kernels,
    winograd_plan,
)

# The backend's private product-order rule, reported beside the two orders it chooses
# between (tests/test_imports.py names this benchmark as the one allowed to).
from gen_jax.nn.xla_cpu._winograd import _kernel_first

_SAME = ((1, 1), (1, 1))
_DN = ("NHWC", "HWIO", "NHWC")
_DIRECT = functools.partial(conv_general_dilated, algorithm="direct")


def vgg19_conv_shapes(size: int) -> list[tuple[str, int, int, int, int]]:
    """(names, side, C_in, C_out, count) of VGG19's distinct convs up to relu5_1."""
    return [
        ("conv1_1", size, 3, 64, 1),
        ("conv1_2", size, 64, 64, 1),
        ("conv2_1", size // 2, 64, 128, 1),
        ("conv2_2", size // 2, 128, 128, 1),
        ("conv3_1", size // 4, 128, 256, 1),
        ("conv3_2..4", size // 4, 256, 256, 3),
        ("conv4_1", size // 8, 256, 512, 1),
        ("conv4_2..4", size // 8, 512, 512, 3),
        ("conv5_1", size // 16, 512, 512, 1),
    ]


def seconds_per_step(
    layer: Callable[..., jax.Array], x: jax.Array, repeats: int, args: tuple = ()
) -> float:
    """One forward pass and input gradient of ``layer(x, *args)``, per step of a 3-step scan.

    ``args`` reach the layer as arguments of the program, not as constants XLA could lay
    out ahead (as a network's weights do in a loss).
    """

    def run(x, *args):
        def body(c, _):
            g = jax.grad(lambda c: jnp.sum(jnp.square(layer(c, *args))) * 1e-6)(c)
            return c - 1e-3 * g, None

        return lax.scan(body, x, None, length=_STEPS)[0]

    return _seconds_per_scan_step(run, (x, *args), repeats)


# Steps of the scan every timing runs in (where L-BFGS's line search runs its evaluations).
_STEPS = 3


def _seconds_per_scan_step(run: Callable, args: tuple, repeats: int) -> float:
    """Median seconds of ``jit(run)(*args)`` over `repeats` calls after a compiling one,
    divided by the `_STEPS` scan steps it runs."""
    return median_seconds(jax.jit(run), *args, repeats=repeats) / _STEPS


def measure(size: int, repeats: int) -> dict:
    key = jax.random.PRNGKey(0)
    convs = []
    for name, side, c_in, c_out, count in vgg19_conv_shapes(size):
        x = jax.random.uniform(key, (1, side, side, c_in))
        w = jax.random.normal(key, (3, 3, c_in, c_out)) * (2.0 / (9 * c_in)) ** 0.5
        row = {"layer": name, "side": side, "c_in": c_in, "c_out": c_out, "count": count}
        row["direct"] = seconds_per_step(
            lambda x, w=w: _DIRECT(x, w, (1, 1), _SAME, dimension_numbers=_DN), x, repeats
        )
        for tile in (2, 4):
            row[f"winograd{tile}"] = seconds_per_step(
                lambda x, w=w, t=tile: winograd_conv3x3(x, w, _SAME, tile=t), x, repeats
            )
        auto = winograd_plan(x.shape, w.shape, (1, 1), _SAME, x.dtype, "auto").tile
        row["auto"] = "direct" if auto is None else f"winograd{auto}"
        convs.append(row)
    pools = []
    for side, c in ((size, 64), (size // 2, 128), (size // 4, 256), (size // 8, 512)):
        x = jax.random.normal(key, (1, side, side, c))
        flax_pool = functools.partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2))
        pools.append(
            {
                "side": side,
                "channels": c,
                "flax max_pool": seconds_per_step(flax_pool, x, repeats),
                "pool_2x2": seconds_per_step(pool_2x2, x, repeats),
            }
        )
    grams = []
    for name, side, c in _style_layers(size):
        x = jax.random.uniform(key, (1, side, side, c))
        grams.append(
            {
                "layer": name,
                "side": side,
                "channels": c,
                "einsum": seconds_per_step(_einsum_gram, x, repeats),
                "gram_matrix": seconds_per_step(gram_matrix, x, repeats),
            }
        )
    return {
        "size": size,
        "convs": convs,
        "pools": pools,
        "grams": grams,
        "products": _product_orders(convs, repeats),
    }


ORDERS = {"data first": False, "kernel first": True}


def _product_orders(convs: list[dict], repeats: int) -> list[dict]:
    """Each Winograd layer in both product orders: the products alone, then the layer."""
    key = jax.random.PRNGKey(1)
    rows = []
    for r in convs:
        if r["auto"] == "direct":
            continue
        tile = int(r["auto"].removeprefix("winograd"))
        tiles = (-(-r["side"] // tile)) ** 2
        positions = (tile + 2) ** 2
        v = jax.random.normal(key, (positions, tiles, r["c_in"]))
        u = jax.random.normal(key, (positions, r["c_out"], r["c_in"]))
        products = {
            order: _seconds_per_product(_batched_product(first), v, u, repeats)
            for order, first in ORDERS.items()
        }
        x = jax.random.uniform(key, (1, r["side"], r["side"], r["c_in"]))
        w = jax.random.normal(key, (3, 3, r["c_in"], r["c_out"])) * (2.0 / (9 * r["c_in"])) ** 0.5
        layers = {
            order: _seconds_per_layer(x, w, tile, first, repeats) for order, first in ORDERS.items()
        }
        picked = _kernel_first(tiles, r["c_in"], r["c_out"])
        rows.append(
            {
                "layer": r["layer"],
                "positions": positions,
                "tiles": tiles,
                "c_in": r["c_in"],
                "c_out": r["c_out"],
                **products,
                "layer data first": layers["data first"],
                "layer kernel first": layers["kernel first"],
                "picked": "kernel first" if picked else "data first",
            }
        )
    return rows


def _batched_product(kernel_first: bool) -> Callable:
    """``(v, u) -> `` the batched products of `winograd_conv3x3`, in one order."""
    dims = (((2,), (2,)), ((0,), (0,)))
    if kernel_first:
        return lambda v, u: lax.dot_general(u, v, dims)
    return lambda v, u: lax.dot_general(v, u, dims)


def _seconds_per_layer(x: jax.Array, w: jax.Array, tile: int, kernel_first: bool, repeats: int):
    """relu(conv(x) + b) by Winograd in one product order, forward and input gradient.

    The order decides the layout the convolution's output comes out in, and so what the
    bias, the ReLU and the gradient's padding read: this is where the orders differ beyond
    their products. The kernel transforms are arguments, as in a VGG loss
    (`gen_jax.models.features.prepare`).
    """
    b = jnp.full((w.shape[-1],), 0.01, w.dtype)

    def layer(c, kernels):
        y = winograd_conv3x3(c, w, tile=tile, kernels=kernels, kernel_first=kernel_first)
        return jax.nn.relu(y + b)

    return seconds_per_step(layer, x, repeats, (winograd_kernels(w, tile),))


def _seconds_per_product(product: Callable, v: jax.Array, u: jax.Array, repeats: int) -> float:
    """One product per step of a 3-step scan whose carry feeds the next step's data.

    The kernel is an argument, as in a network's loss: a constant baked into the program
    could be laid out ahead by XLA, which no real call gets.
    """

    def run(v, u):
        def body(v, _):
            m = product(v, u)
            # A cheap dependence on the result, so each step's product is computed.
            return v + 1e-6 * jnp.mean(m), None

        return lax.scan(body, v, None, length=_STEPS)[0]

    return _seconds_per_scan_step(run, (v, u), repeats)


def _style_layers(size: int) -> list[tuple[str, int, int]]:
    """Gatys' style layers relu1_1..relu5_1 of VGG19: (name, side, channels)."""
    return [(f"relu{b + 1}_1", size >> b, c) for b, c in enumerate((64, 128, 256, 512, 512))]


def _einsum_gram(f: jax.Array) -> jax.Array:
    """F^T F with JAX's own gradient: the reference `gram_matrix`'s is measured against."""
    flat = f.reshape(f.shape[0], -1, f.shape[-1])
    return jnp.einsum("bmi,bmj->bij", flat, flat, precision=lax.Precision.HIGHEST)


def format_markdown(result: dict) -> str:
    """The four tables (convolutions, pools, Grams, Winograd product orders) in ms."""
    size = result["size"]
    conv_cells, totals = [], {"direct": 0.0, "auto": 0.0}
    for r in result["convs"]:
        picked = r[r["auto"]]
        totals["direct"] += r["count"] * r["direct"]
        totals["auto"] += r["count"] * picked
        conv_cells.append(
            (
                r["layer"],
                f"{r['side']}x{r['side']}",
                f"{r['c_in']}->{r['c_out']}",
                f"{r['count']}",
                f"{r['direct'] * 1e3:.1f}",
                f"{r['winograd2'] * 1e3:.1f}",
                f"{r['winograd4'] * 1e3:.1f}",
                r["auto"],
                f"{r['direct'] / picked:.2f}x",
            )
        )
    conv_cells.append(
        (
            "all, weighted by count",
            *[""] * 3,
            f"{totals['direct'] * 1e3:.1f}",
            "",
            "",
            f"auto: {totals['auto'] * 1e3:.1f}",
            f"{totals['direct'] / totals['auto']:.2f}x",
        )
    )
    conv_header = ("layer", "map", "channels", "count", "direct", "Winograd F(2x2,3x3)",
                   "Winograd F(4x4,3x3)", "auto picks", "auto vs direct")  # fmt: skip
    pool_cells = [
        (
            f"{p['side']}x{p['side']}x{p['channels']}",
            f"{p['flax max_pool'] * 1e3:.1f}",
            f"{p['pool_2x2'] * 1e3:.1f}",
            f"{p['flax max_pool'] / p['pool_2x2']:.1f}x",
        )
        for p in result["pools"]
    ]
    gram_cells = [
        (
            f"{g['layer']} {g['side']}x{g['side']}x{g['channels']}",
            f"{g['einsum'] * 1e3:.1f}",
            f"{g['gram_matrix'] * 1e3:.1f}",
            f"{g['einsum'] / g['gram_matrix']:.1f}x",
        )
        for g in result["grams"]
    ]
    product_cells = []
    for p in result["products"]:
        other = "data first" if p["picked"] == "kernel first" else "kernel first"
        product_cells.append(
            (
                p["layer"],
                f"{p['positions']} x [{p['tiles']}, {p['c_in']}] x [{p['c_in']}, {p['c_out']}]",
                f"{p['data first'] * 1e3:.2f}",
                f"{p['kernel first'] * 1e3:.2f}",
                f"{p['layer data first'] * 1e3:.2f}",
                f"{p['layer kernel first'] * 1e3:.2f}",
                p["picked"],
                f"{p['layer ' + other] / p['layer ' + p['picked']]:.2f}x",
            )
        )
    product_header = ("Winograd layer", "products: batch x [tiles, C] x [C, K]",
                      "products, data first ms", "products, kernel first ms",
                      "layer, data first ms", "layer, kernel first ms", "picked",
                      "layer: picked vs other")  # fmt: skip
    device = jax.devices()[0]
    lines = [
        f"## VGG19 layers at {size} px: forward + input gradient, ms per scan step",
        "",
        *table(conv_header, conv_cells, "lrrrrrrlr"),
        "",
        *table(
            ("2x2 max pool of", "flax `max_pool` ms", "`pool_2x2` ms", "speed-up"),
            pool_cells,
            "lrrr",
        ),
        "",
        *table(
            ("Gram of", "autodiff of the einsum, ms", "`gram_matrix` ms", "speed-up"),
            gram_cells,
            "lrrr",
        ),
        "",
        *table(product_header, product_cells, "llrrrrlr"),
        "",
        "- products: one batched product per scan step, the kernel passed as an argument",
        (
            "- layer: relu(conv(x) + b), forward and input gradient per scan step, the "
            "transformed kernels passed as arguments; with the kernel first the output "
            "comes out channels-major, and reaching NHWC is a transpose fused into the "
            "consumers"
        ),
        "",
        f"- device: {device.platform} ({device.device_kind}), JAX {jax.__version__}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="input side in pixels (>= 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if args.size < 16:
        parser.error(f"--size: expected at least 16 px (conv5_1 is at 1/16), found {args.size}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected a positive integer, found {args.repeats}")
    check_out_paths(parser, out=args.out)
    result = measure(args.size, args.repeats)
    table = format_markdown(result)
    print(table, end="")
    write_text(args.out, table)
    return result


if __name__ == "__main__":
    main()
