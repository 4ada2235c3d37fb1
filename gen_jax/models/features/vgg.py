"""VGG16 and VGG19 feature networks (Simonyan & Zisserman 2014, arXiv:1409.1556), weights
loaders for the Keras and torchvision files, and randomly weighted VGGs (He, Wang &
Hopcroft 2016, arXiv:1606.04801).

Only the convolutional part ("features", Keras' "notop") is built: style transfer, texture
synthesis, feature inversion and DeepDream read intermediate maps, never the classifier.

Layers (NHWC; every conv is 3x3, stride 1, zero padding 1, followed by a ReLU; every pool
is 2x2, stride 2, no padding, so odd sizes are floored as in Caffe/Keras/PyTorch):

    block  convs (VGG16 / VGG19)   width  names                          size after pool
    1      2 / 2                   64     conv1_1 relu1_1 conv1_2 ... pool1   H/2
    2      2 / 2                   128    conv2_1 ... pool2                   H/4
    3      3 / 4                   256    conv3_1 ... pool3                   H/8
    4      3 / 4                   512    conv4_1 ... pool4                   H/16
    5      3 / 4                   512    conv5_1 ... pool5                   H/32

`VGG.__call__(images, outputs=(...))` returns the requested maps by name and stops after
the deepest one, so asking for `relu1_1` costs one convolution. A layer after k pools needs
H, W >= 2**k (relu5_1: 16 px, pool5: 32 px).

Input normalisation is part of the module (`preprocessing`), so every network takes the
same input, RGB in [0, 1]:

* ``"torch"``: (x - mean) / std with the ImageNet statistics mean (0.485, 0.456, 0.406),
  std (0.229, 0.224, 0.225); RGB order. For torchvision weights (`vgg19-dcbb9e9d.pth`).
* ``"caffe"``: x * 255, RGB -> BGR, minus the Caffe means (103.939, 116.779, 123.68) in BGR
  order; no scaling. For the Keras weights (`vgg19_weights_tf_dim_ordering_tf_kernels_
  notop.h5`), which are the original Caffe VGG weights (Gatys et al. used these).
* ``"none"``: the input is passed through unchanged.

Parameters are a plain dict ``{"conv1_1": {"kernel": [3,3,Cin,Cout] (HWIO), "bias":
[Cout]}, ...}``, the layout of `flax.linen.Conv`. `VGG.prepare` is the feature networks'
`prepare` hook (`gen_jax.models.features.prepare`): the Winograd kernel transforms
computed once, ahead of an optimisation loop.
"""

from __future__ import annotations

import errno
import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype

from gen_jax.models.features.torch_weights import load_torch_state_dict
from gen_jax.nn.xla_cpu import (
    ALGORITHMS,
    conv_general_dilated,
    winograd_conv3x3,
    winograd_kernels,
    winograd_plan,
)

__all__ = [
    "PREPROCESSINGS",
    "VGG",
    "VGG16",
    "VGG19",
    "VGGWeightsError",
    "load_vgg_keras_h5",
    "load_vgg_torchvision",
    "pool_2x2",
    "preprocess",
    "random_vgg_params",
    "torchvision_conv_indices",
    "vgg_layer_names",
    "vgg_param_shapes",
]

Dtype = Any
Params = dict[str, dict[str, jax.Array]]

PREPROCESSINGS = ("torch", "caffe", "none")
POOLINGS = ("max", "avg")
_DEPTHS = (16, 19)
# Convolutions per block, and block widths (Table 1 of the paper, configurations D and E).
_CONVS_PER_BLOCK = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)

_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


class VGGWeightsError(ValueError):
    """A VGG weights file or state dict lacks a tensor, or holds one of the wrong shape."""


def _check_depth(depth: int) -> None:
    if depth not in _DEPTHS:
        raise ValueError(f"depth must be 16 or 19 (VGG16 / VGG19); got {depth!r}")


def _check_choice(value: str, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")


def _plan(depth: int) -> list[tuple[str, str, int]]:
    """(name, kind, width) for every layer in order; kind is 'conv', 'relu' or 'pool'."""
    _check_depth(depth)
    plan = []
    for b, (n, width) in enumerate(zip(_CONVS_PER_BLOCK[depth], _WIDTHS), start=1):
        for i in range(1, n + 1):
            plan.append((f"conv{b}_{i}", "conv", width))
            plan.append((f"relu{b}_{i}", "relu", width))
        plan.append((f"pool{b}", "pool", width))
    return plan


def vgg_layer_names(depth: int = 19) -> tuple[str, ...]:
    """Every addressable layer of VGG`depth`, in forward order (conv1_1, relu1_1, ..., pool5).

    Args:
      depth: 16 or 19.

    Returns:
      The names, as accepted by `VGG.__call__(outputs=...)`.
    """
    return tuple(name for name, _, _ in _plan(depth))


def vgg_param_shapes(depth: int = 19) -> dict[str, dict[str, tuple[int, ...]]]:
    """The parameter shapes of VGG`depth`: {conv: {"kernel": (3,3,Cin,Cout), "bias": (Cout,)}}.

    Args:
      depth: 16 or 19.

    Returns:
      A dict in the layout of the parameters, with shape tuples as leaves.
    """
    shapes, cin = {}, 3
    for name, kind, width in _plan(depth):
        if kind == "conv":
            shapes[name] = {"kernel": (3, 3, cin, width), "bias": (width,)}
            cin = width
    return shapes


def preprocess(images: jax.Array, preprocessing: str) -> jax.Array:
    """Maps RGB images in [0, 1] to the input a set of VGG weights was trained on.

    Args:
      images: [B, H, W, 3], RGB in [0, 1].
      preprocessing: "torch", "caffe" or "none" (see the module docstring).

    Returns:
      [B, H, W, 3] float32: normalised RGB ("torch"), mean-subtracted BGR on the 0-255
      scale ("caffe"), or `images` unchanged ("none").
    """
    _check_choice(preprocessing, "preprocessing", PREPROCESSINGS)
    x = jnp.asarray(images, jnp.float32)
    if preprocessing == "torch":
        return (x - _TORCH_MEAN) / _TORCH_STD
    if preprocessing == "caffe":
        return x[..., ::-1] * 255.0 - _CAFFE_MEAN_BGR
    return x


def _resolve_outputs(outputs: str | Sequence[str] | None, valid: Sequence[str]) -> tuple[str, ...]:
    """Validates requested layer names; None means every layer."""
    if outputs is None:
        return tuple(valid)
    if isinstance(outputs, str):  # A single name, not an iterable of characters.
        outputs = (outputs,)
    outputs = tuple(outputs)
    if not outputs:
        raise ValueError(f"outputs is empty; expected one or more of {tuple(valid)}")
    unknown = [o for o in outputs if o not in valid]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; valid names are {tuple(valid)}")
    return outputs


def _check_images(images: jax.Array, what: str) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{what} expects images of shape [batch, height, width, 3] (RGB in [0, 1]); "
            f"got shape {tuple(images.shape)}"
        )


class VGG(nn.Module):
    """The convolutional part of VGG16/VGG19, every conv, ReLU and pool addressable by name.

    Attributes:
      depth: 16 or 19.
      pooling: "max" (the paper) or "avg" (Gatys et al. 2015/2016 report better gradients
        for image synthesis with average pooling).
      preprocessing: "torch", "caffe" or "none"; applied to the [0, 1] RGB input.
      dtype: computation dtype (parameters stay `param_dtype`); outputs are float32.
      conv_algorithm: "auto" (Winograd F(4x4, 3x3) or F(2x2, 3x3) for the convolutions
        with at least 64 input and output channels on maps of at least 16 px, on the
        CPU backend in float32; VGG19's convolutions about 2x faster there, measured
        by `benchmarks.vgg_layer_speed`), "direct" or "winograd"; see
        `gen_jax.nn.xla_cpu.winograd_plan`. Values agree to float rounding
        (about 1e-6 relative; the style-transfer gradient to about 2e-5). "tune" takes
        each convolution shape's fastest candidate on the machine at hand from the
        backend's tuning table, measured the first time the shape is traced (seconds
        per shape on a CPU) unless `gen_jax.nn.xla_cpu.load_tuning` read it, for
        machines the fixed rule was not measured on, GPUs included.
    """

    depth: int = 19
    pooling: str = "max"
    preprocessing: str = "torch"
    conv_algorithm: str = "auto"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, images: jax.Array, outputs: str | Sequence[str] | None = None
    ) -> dict[str, jax.Array]:
        """Computes the requested feature maps.

        Args:
          images: [B, H, W, 3], RGB in [0, 1]; H, W >= 2**k where k is the number of
            pools before the deepest requested layer.
          outputs: layer names (static), e.g. ("relu1_1", "relu2_1", "conv4_2"); None
            means every layer. The forward pass stops after the deepest one.

        Returns:
          {name: [B, H_l, W_l, C_l] float32} for each requested name.

        Raises:
          ValueError: an unknown layer name, a bad option, or images of the wrong shape or
            too small for the deepest requested layer.
        """
        _check_choice(self.pooling, "pooling", POOLINGS)
        _check_choice(self.conv_algorithm, "conv_algorithm", ALGORITHMS)
        plan = _plan(self.depth)
        names = [name for name, _, _ in plan]
        wanted = _resolve_outputs(outputs, names)
        last = max(names.index(o) for o in wanted)
        images = jnp.asarray(images)
        _check_images(images, f"VGG{self.depth}")
        # Every layer after k floor-halving pools needs at least one pixel: H, W >= 2**k.
        n_pools = sum(kind == "pool" for _, kind, _ in plan[: last + 1])
        min_size = 2**n_pools
        if min(images.shape[1:3]) < min_size:
            raise ValueError(
                f"VGG{self.depth} layer {plan[last][0]!r} needs images of at least "
                f"{min_size}x{min_size} ({n_pools} 2x2 pools); got "
                f"{images.shape[1]}x{images.shape[2]}"
            )
        x = preprocess(images, self.preprocessing).astype(self.dtype)
        feats = {}
        for name, kind, width in plan[: last + 1]:
            if kind == "conv":
                x = _Conv3x3(
                    width,
                    algorithm=self.conv_algorithm,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=name,
                )(x)
            elif kind == "relu":
                x = nn.relu(x)
            else:
                x = pool_2x2(x, self.pooling)
            if name in wanted:
                feats[name] = x.astype(jnp.float32)
        return feats

    def prepare(self, params: Params, images: jax.Array, outputs=None) -> dict:
        """Variables for `apply` with the Winograd kernel transforms of ``images``' shape
        computed once: this network's `gen_jax.models.features.prepare` hook.

        The Winograd convolutions transform their kernels at every call, and inside
        L-BFGS's nested loops XLA does not hoist that out (as much as a fifth of a VGG19
        style-transfer evaluation on the CPU). Call this once, outside the loop (in the
        same jitted function: the forward pass it traces is dropped, only the kernel
        transforms stay), and apply the module with its result; images of another size
        need their own. Under ``conv_algorithm="tune"`` the choice is keyed by
        `jax.default_matmul_precision` too: prepare and apply in the same precision
        context. Layers that use no Winograd (`gen_jax.nn.xla_cpu.winograd_plan`) add
        nothing.

        Args:
          params: the parameters.
          images: [B, H, W, 3] (or an array of that shape and dtype) to be fed to it.
          outputs: the layers that will be requested (None: all).

        Returns:
          Flax variables: ``params`` and, when some layer uses Winograd, a collection of
          this module's own holding the transforms (callers pass it on, never read it).
        """
        _, state = self.apply({"params": params}, images, outputs=outputs, mutable=[_PREPARED])
        return {"params": params, **state}


_SAME = ((1, 1), (1, 1))
_NHWC = ("NHWC", "HWIO", "NHWC")
# The collection `VGG.prepare` fills; nothing outside this module names it.
_PREPARED = "prepared"


# A layer of its own rather than `flax.linen.Conv(conv_general_dilated=...)`: flax hands
# that function only the input and the kernel, and the Winograd transforms that
# `VGG.prepare` computed ahead must reach the convolution too. The parameters keep
# `flax.linen.Conv`'s names and layout, so weights and checkpoints carry over.
class _Conv3x3(nn.Module):
    """`flax.linen.Conv(features, (3, 3), padding=1)`'s parameters and result, computed by
    `gen_jax.nn.xla_cpu.conv_general_dilated` (fast gradients inside XLA:CPU loops) with
    ``algorithm``, and from the Winograd kernels `VGG.prepare` computed when there are
    some."""

    features: int
    algorithm: str = "auto"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (3, 3, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        plan = winograd_plan(x.shape, shape, (1, 1), _SAME, x.dtype, self.algorithm)
        preparing = self.is_mutable_collection(_PREPARED) and not self.is_initializing()
        if plan.tile is not None and preparing:
            self.put_variable(_PREPARED, "kernels", winograd_kernels(kernel, plan.tile))
        if plan.tile is not None and self.has_variable(_PREPARED, "kernels"):
            kernels = self.get_variable(_PREPARED, "kernels")
            y = winograd_conv3x3(
                x,
                kernel,
                _SAME,
                tile=plan.tile,
                kernels=tuple(kernels),
                kernel_first=plan.kernel_first,
            )
        else:
            y = conv_general_dilated(
                x, kernel, (1, 1), _SAME, dimension_numbers=_NHWC, algorithm=self.algorithm
            )
        return y + bias


def _phases(x: jax.Array) -> tuple[jax.Array, ...]:
    """The four stride-2 phases of x, in window order (0,0), (0,1), (1,0), (1,1)."""
    return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


def _interleave(phases: Sequence[jax.Array]) -> jax.Array:
    """Inverse of `_phases` for even sizes: [B, h, w, C] x 4 -> [B, 2h, 2w, C]."""
    b, h, w, c = phases[0].shape
    x = jnp.stack(phases, axis=3).reshape(b, h, w, 2, 2, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c)


@jax.custom_vjp
def _max_pool_2x2(x: jax.Array) -> jax.Array:
    p = _phases(x)
    return jnp.maximum(jnp.maximum(p[0], p[1]), jnp.maximum(p[2], p[3]))


def _max_pool_2x2_fwd(x):
    y = _max_pool_2x2(x)
    return y, (x, y)


def _max_pool_2x2_bwd(residuals, g):
    # All of g to the first maximal input of each window, as PyTorch's max_pool2d and
    # XLA's select-and-scatter do (jnp.maximum would split it between tied inputs, and a
    # flat, clipped image region ties even after the ReLUs).
    x, y = residuals
    taken = jnp.zeros(y.shape, bool)
    grads = []
    for phase in _phases(x):
        first = (phase == y) & ~taken
        taken = taken | first
        grads.append(jnp.where(first, g, 0.0).astype(x.dtype))
    return (_interleave(grads),)


_max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def pool_2x2(x: jax.Array, kind: str = "max") -> jax.Array:
    """VGG's 2x2, stride-2, unpadded pooling of [B, H, W, C]: odd sizes are floored.

    The same values and gradients as ``flax.linen.max_pool`` / ``avg_pool`` with window
    and stride 2 (for max, the whole gradient goes to the first maximal input of a window,
    as in PyTorch), written as elementwise operations on the four stride-2 phases. Those
    fuse, where the windowed reduction's gradient (a select-and-scatter) runs about 8x
    slower on XLA:CPU (`python -m benchmarks.vgg_layer_speed`).
    """
    _check_choice(kind, "pooling", POOLINGS)
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    x = x[:, :h, :w]
    if kind == "max":
        return _max_pool_2x2(x)
    p = _phases(x)
    return (p[0] + p[1] + p[2] + p[3]) * 0.25


# Named variants.
VGG16 = functools.partial(VGG, depth=16)
VGG19 = functools.partial(VGG, depth=19)


# ---------------------------------------------------------------------------------------
# Loaders.


def _not_found(path: Path) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "VGG weights file not found", str(path))


def _check_shapes(params: Mapping, depth: int, source: str) -> Params:
    """Checks `params` against VGG`depth` and converts the leaves to float32 jax arrays."""
    out = {}
    for conv, shapes in vgg_param_shapes(depth).items():
        for leaf, shape in shapes.items():
            value = np.asarray(params[conv][leaf])
            if value.shape != shape:
                raise VGGWeightsError(
                    f"{source}: {conv}.{leaf} has shape {value.shape}; expected {shape} "
                    f"for VGG{depth}"
                )
        out[conv] = {k: jnp.asarray(params[conv][k], jnp.float32) for k in shapes}
    return out


def _keras_name(conv: str) -> str:
    block, i = conv[len("conv") :].split("_")
    return f"block{block}_conv{i}"


def _h5_datasets(group) -> list:
    """The datasets under an h5 group, in the order of its 'weight_names' attribute if any."""
    names = group.attrs.get("weight_names")
    if names is not None:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        found = [group[n] for n in names if n in group]
        if len(found) == len(names):
            return found
    found = []
    group.visititems(lambda _, obj: found.append(obj) if hasattr(obj, "shape") else None)
    return found


def load_vgg_keras_h5(path: str | os.PathLike[str], depth: int = 19) -> Params:
    """Loads the Keras "notop" VGG weights (the original Caffe weights) from an HDF5 file.

    The files are `vgg{16,19}_weights_tf_dim_ordering_tf_kernels_notop.h5` (keras-
    applications / fchollet deep-learning-models v0.1): one group per layer,
    `block{b}_conv{i}`, holding `block{b}_conv{i}_W_1:0` (kernel, [3,3,Cin,Cout], already
    HWIO) and `block{b}_conv{i}_b_1:0` (bias) and listing them in its `weight_names`
    attribute. Files saved by later Keras versions (`.../kernel:0`, `.../bias:0`, possibly
    nested, or under a `model_weights` or `layers` group) are read too: within a layer's
    group the 4-D dataset is the kernel and the 1-D one the bias. The weights expect
    `preprocessing="caffe"` input.

    Args:
      path: the .h5 file.
      depth: 16 or 19.

    Returns:
      Parameters for `VGG(depth=depth)`.

    Raises:
      FileNotFoundError: `path` does not exist.
      ImportError: h5py is not installed.
      VGGWeightsError: not an HDF5 file, a layer missing (e.g. a VGG16 file read with
        depth=19), or a tensor of the wrong shape. The message names `path`.
    """
    _check_depth(depth)
    path = Path(path)
    if not path.exists():
        raise _not_found(path)
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "reading Keras .h5 weights needs h5py: pip install 'gen_jax[weights]'"
        ) from e
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise VGGWeightsError(f"{path}: expected an HDF5 file of Keras VGG weights: {e}") from e
    with f:
        root = f
        for wrapper in ("model_weights", "layers"):
            if "block1_conv1" not in root and wrapper in root:
                root = root[wrapper]
        params = {}
        for conv in vgg_param_shapes(depth):
            kname = _keras_name(conv)
            if kname not in root:
                present = sorted(k for k in root if k.startswith("block"))
                raise VGGWeightsError(
                    f"{path}: no layer group {kname!r} (VGG{depth} {conv}); the file has "
                    f"{present}. Is it a VGG{35 - depth} file?"
                )
            arrays = [np.asarray(d) for d in _h5_datasets(root[kname])]
            kernels = [a for a in arrays if a.ndim == 4]
            biases = [a for a in arrays if a.ndim == 1]
            if len(kernels) != 1 or len(biases) != 1:
                raise VGGWeightsError(
                    f"{path}: layer group {kname!r} should hold one 4-D kernel and one 1-D "
                    f"bias; found datasets of shapes {[a.shape for a in arrays]}"
                )
            params[conv] = {"kernel": kernels[0], "bias": biases[0]}
    return _check_shapes(params, depth, str(path))


def torchvision_conv_indices(depth: int = 19) -> dict[str, int]:
    """Index of each conv in torchvision's `vgg{depth}().features` Sequential.

    Args:
      depth: 16 or 19.

    Returns:
      {conv name: index}, e.g. conv1_1 -> 0, conv1_2 -> 2, conv2_1 -> 5 (a ReLU follows
      every conv and a MaxPool2d ends every block, each one entry of the Sequential).
    """
    # The plan lists conv, relu and pool entries exactly as the Sequential does.
    return {name: idx for idx, (name, kind, _) in enumerate(_plan(depth)) if kind == "conv"}


def _read_state_dict(source: Any) -> tuple[dict[str, np.ndarray], str]:
    """A state dict (name -> array) from a mapping or a .pth/.pt/.npz/.safetensors file."""
    if isinstance(source, Mapping):
        out = {}
        for k, v in source.items():
            if hasattr(v, "detach"):  # A torch tensor, when the caller has torch.
                v = v.detach().cpu().numpy()
            out[str(k)] = np.asarray(v)
        return out, "<state dict>"
    path = Path(source)
    if not path.exists():
        raise _not_found(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, str(path)
        except (OSError, ValueError) as e:
            raise VGGWeightsError(f"{path}: expected a NumPy .npz archive: {e}") from e
    if suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError as e:
            raise ImportError(f"{path}: reading .safetensors needs the safetensors package") from e
        return dict(load_file(str(path))), str(path)
    # Anything else is taken to be a torch checkpoint (.pth, .pt, .bin), read without torch.
    return dict(load_torch_state_dict(path)), str(path)


def load_vgg_torchvision(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any], depth: int = 19
) -> Params:
    """Loads torchvision's VGG weights (`vgg19-dcbb9e9d.pth`, `vgg16-397923af.pth`).

    Conv `k` of `features` is `features.{k}.weight` ([Cout, Cin, 3, 3], OIHW, transposed to
    HWIO here) and `features.{k}.bias`; see `torchvision_conv_indices`. `classifier.*` is
    ignored, and a `module.` prefix (a DataParallel checkpoint) is stripped. The weights
    expect `preprocessing="torch"` input.

    Args:
      path_or_state_dict: a mapping name -> array (numpy, or torch tensors), or a file:
        .pth/.pt (read without torch by `gen_jax.models.features.torch_weights`), .npz, or
        .safetensors (needs the safetensors package).
      depth: 16 or 19.

    Returns:
      Parameters for `VGG(depth=depth)`.

    Raises:
      FileNotFoundError: the file does not exist.
      VGGWeightsError: a tensor missing or of the wrong shape; the message names the file.
    """
    _check_depth(depth)
    sd, source = _read_state_dict(path_or_state_dict)
    if "features.0.weight" not in sd and "module.features.0.weight" in sd:
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    shapes = vgg_param_shapes(depth)
    params = {}
    for conv, idx in torchvision_conv_indices(depth).items():
        kshape = shapes[conv]["kernel"]
        expected = {
            f"features.{idx}.weight": (kshape[3], kshape[2], 3, 3),
            f"features.{idx}.bias": shapes[conv]["bias"],
        }
        for key, shape in expected.items():
            if key not in sd:
                have = sorted(k for k in sd if k.startswith("features."))
                raise VGGWeightsError(
                    f"{source}: missing {key!r} (VGG{depth} {conv}); found "
                    f"{len(have)} features.* tensors, e.g. {have[:4]}"
                )
            if tuple(sd[key].shape) != shape:
                raise VGGWeightsError(
                    f"{source}: {key!r} has shape {tuple(sd[key].shape)}; expected {shape} "
                    f"(OIHW) for VGG{depth} {conv}"
                )
        w = np.asarray(sd[f"features.{idx}.weight"], np.float32)
        params[conv] = {
            "kernel": np.transpose(w, (2, 3, 1, 0)),  # OIHW -> HWIO
            "bias": np.asarray(sd[f"features.{idx}.bias"], np.float32),
        }
    return _check_shapes(params, depth, source)


# ---------------------------------------------------------------------------------------
# Random weights.


def random_vgg_params(
    key: jax.Array,
    depth: int = 19,
    images: jax.Array | None = None,
    *,
    pooling: str = "max",
    preprocessing: str = "torch",
) -> Params:
    """Random VGG weights, rescaled layer by layer (ranVGG; He, Wang & Hopcroft 2016).

    He et al. (arXiv:1606.04801) show that an untrained VGG19 supports feature inversion,
    texture synthesis and style transfer as well as a trained one once the different
    magnitudes of the layers are normalised; untreated, the loss of a random deep net is
    dominated by whichever layers happen to have large activations (the reason Gatys et al.
    reported that random weights fail). They normalise with per-layer weighting factors
    set in a pre-process. Here the normalisation is folded into the weights, as in Gatys'
    "normalised VGG": biases are zero, so the network is positively homogeneous
    (ReLU(c x) = c ReLU(x), both poolings commute with c > 0), and scaling conv l by c_l
    scales every map from l on by c_1 ... c_l without changing any direction. Rescaling a
    layer is therefore exactly a change of the Gram/content loss weights of the layers at
    and after it; the paper's loss weights become 1 for every layer.

    Two rescalings:

    * `images` is None: kernels ~ N(0, 2 / fan_in) (He et al. 2015, arXiv:1502.01852), which
      keeps the mean square activation roughly constant through ReLU layers for any input.
    * `images` given: then each conv is divided by what makes the mean of its ReLU output
      over `images` (all positions and channels) exactly 1, layer after layer, like Gatys'
      normalisation of the trained VGG (per layer here, not per filter: a random filter
      can be dead on a given image).

    Deviations: the paper's greedy "stacked" selection (sample several weight sets per
    layer and keep the one with the lowest inversion loss) needs the optimiser and is not
    done here; the distribution scale (the paper's Gaussian) is immaterial once rescaled.

    Args:
      key: PRNG key.
      depth: 16 or 19.
      images: optional [B, H, W, 3] RGB in [0, 1], H, W >= 16 (the images to be
        synthesised from, e.g. the style and content images).
      pooling: "max" or "avg"; the pooling the network will use (affects the statistics).
      preprocessing: the input normalisation the network will use.

    Returns:
      Parameters for `VGG(depth, pooling, preprocessing)`, float32, zero biases.

    Raises:
      ValueError: bad options, images of the wrong shape, or a layer whose ReLU output is
        zero everywhere on `images` (draw another key).
    """
    _check_depth(depth)
    _check_choice(pooling, "pooling", POOLINGS)
    _check_choice(preprocessing, "preprocessing", PREPROCESSINGS)
    shapes = vgg_param_shapes(depth)
    keys = jax.random.split(key, len(shapes))
    params = {}
    for k, (conv, s) in zip(keys, shapes.items()):
        fan_in = math.prod(s["kernel"][:3])
        # Drawn flat and reshaped: some 4-D random shapes compile slowly on the CPU.
        w = jax.random.normal(k, (math.prod(s["kernel"]),), jnp.float32).reshape(s["kernel"])
        params[conv] = {
            "kernel": w * math.sqrt(2.0 / fan_in),
            "bias": jnp.zeros(s["bias"], jnp.float32),
        }
    if images is None:
        return params
    images = jnp.asarray(images)
    _check_images(images, "random_vgg_params")
    relus = [name for name in vgg_layer_names(depth) if name.startswith("relu")]
    net = VGG(depth=depth, pooling=pooling, preprocessing=preprocessing)
    feats = jax.jit(lambda p, x: net.apply({"params": p}, x, outputs=tuple(relus)))(params, images)
    # One pass suffices: by homogeneity, once convs 1..l-1 are rescaled the mean at relu l
    # is m_l / m_{l-1}, so conv l is scaled by m_{l-1} / m_l.
    means = [float(jnp.mean(feats[r])) for r in relus]
    previous = 1.0
    for conv, relu, m in zip(shapes, relus, means):
        if not m > 0.0 or not math.isfinite(m):
            raise ValueError(
                f"random_vgg_params: {relu} is zero everywhere on the given images (mean "
                f"{m}); cannot normalise it. Use another key or other images."
            )
        params[conv]["kernel"] = params[conv]["kernel"] * (previous / m)
        previous = m
    return params
