"""The FID Inception-v3 network (Szegedy et al. 2015, arXiv:1512.00567), NHWC, inference only.

This is the network of the Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500)
as computed by TensorFlow's reference implementation and ported to PyTorch by pytorch-fid,
whose weight file `pt_inception-2015-12-05-6726825d.pth` (from the TF graph
`inception-2015-12-05.tgz`) it loads. Real FID numbers need that file, which a user
downloads once from the pytorch-fid releases; nothing here downloads it.

It is torchvision's Inception3 (no auxiliary head, 1008 classes) with the graph's quirks:

  * every 3x3 average pool of a branch excludes the zero padding from its count
    (TF's default), in Mixed_5b-5d, 6b-6e and 7b;
  * Mixed_7c's pool branch uses a 3x3 max pool instead of an average pool.

BasicConv = conv (no bias) + batch norm (epsilon 0.001, running statistics) + ReLU.
Shape table for a 299x299 input:

  stem   Conv2d_1a_3x3 s2 [149,149,32] -> 2a_3x3 [147,147,32] -> 2b_3x3 p1 [147,147,64]
         -> maxpool 3 s2 [73,73,64] -> 3b_1x1 [73,73,80] -> 4a_3x3 [71,71,192]
         -> maxpool 3 s2 [35,35,192]
  A      Mixed_5b [35,35,256], 5c [35,35,288], 5d [35,35,288]
  B      Mixed_6a [17,17,768]
  C      Mixed_6b..6e [17,17,768]
  D      Mixed_7a [8,8,1280]
  E      Mixed_7b [8,8,2048], 7c [8,8,2048]
  pool3  spatial mean [2048];  fc (logits) [1008]

Flax module names equal PyTorch's (`Mixed_6b/branch7x7_2/conv`), so a state-dict name maps
to a variable path by rule (`_torch_name`): `<m>.conv.weight` -> params <m>/conv/kernel (OIHW
-> HWIO), `<m>.bn.weight|bias` -> params <m>/bn/scale|bias, `<m>.bn.running_mean|var` ->
batch_stats <m>/bn/mean|var, `fc.weight|bias` -> params fc/kernel (transposed)|bias.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models.features.torch_weights import check_state_dict_shapes, load_weight_file

__all__ = [
    "FID_WEIGHTS_FILE",
    "BasicConv",
    "FIDInceptionV3",
    "fid_feature_fn",
    "fid_inception_state_dict_shapes",
    "fid_inception_variables",
    "load_fid_inception",
]

Dtype = Any

# The weight file pytorch-fid downloads (from its GitHub release "fid_weights").
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"

_INPUT_SIZE = 299
_MIN_INPUT_SIZE = 75  # Smallest input for which Mixed_7a still has a 1x1 output.


def _kernel_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun normal, drawn flat and reshaped (4-D draws compile slowly on the CPU, see dcgan)."""
    std = 1.0 / math.sqrt(math.prod(shape[:-1]))
    return std * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


class BasicConv(nn.Module):
    """Conv without bias, batch norm (epsilon 0.001, running statistics), ReLU.

    torchvision's `BasicConv2d`; maps x [B, H, W, C_in] to [B, H', W', features].
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # PyTorch's symmetric (rows, cols) padding.
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(
            self.features,
            self.kernel_size,
            self.strides,
            padding=tuple((p, p) for p in self.padding),
            use_bias=False,
            kernel_init=_kernel_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        # Always running statistics: this network is a fixed feature extractor.
        x = nn.BatchNorm(
            use_running_average=True,
            epsilon=1e-3,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="bn",
        )(x)
        return nn.relu(x)


def _resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """[B, H, W, C] -> [B, *size, C] as PyTorch's bilinear `interpolate(align_corners=False)`.

    Half-pixel centres, edge samples clamped, and no antialiasing when shrinking (jax's
    default antialiases, which pytorch-fid's resize does not).
    """
    return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), "bilinear", antialias=False)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool that divides by the number of real pixels (TF's padding)."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), (2, 2))


class _Block(nn.Module):
    """Base of the mixed blocks: holds dtypes and builds named BasicConvs."""

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def conv(self, name: str, features: int, kernel_size, strides=(1, 1), padding=(0, 0)):
        return BasicConv(
            features,
            tuple(kernel_size),
            tuple(strides),
            tuple(padding),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )


class InceptionA(_Block):
    """Mixed_5b-5d: 1x1 | 5x5 | double 3x3 | avg pool + 1x1 (FIDInceptionA)."""

    pool_features: int = 32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.conv("branch1x1", 64, (1, 1))(x)
        b5 = self.conv("branch5x5_1", 48, (1, 1))(x)
        b5 = self.conv("branch5x5_2", 64, (5, 5), padding=(2, 2))(b5)
        b3 = self.conv("branch3x3dbl_1", 64, (1, 1))(x)
        b3 = self.conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(b3)
        b3 = self.conv("branch3x3dbl_3", 96, (3, 3), padding=(1, 1))(b3)
        bp = self.conv("branch_pool", self.pool_features, (1, 1))(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
    """Mixed_6a, grid reduction 35 -> 17: 3x3 s2 | double 3x3 s2 | max pool."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.conv("branch3x3", 384, (3, 3), strides=(2, 2))(x)
        bd = self.conv("branch3x3dbl_1", 64, (1, 1))(x)
        bd = self.conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(bd)
        bd = self.conv("branch3x3dbl_3", 96, (3, 3), strides=(2, 2))(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(_Block):
    """Mixed_6b-6e: 1x1 | 1x7,7x1 | double 7x1,1x7 | avg pool + 1x1 (FIDInceptionC)."""

    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1 = self.conv("branch1x1", 192, (1, 1))(x)
        b7 = self.conv("branch7x7_1", c7, (1, 1))(x)
        b7 = self.conv("branch7x7_2", c7, (1, 7), padding=(0, 3))(b7)
        b7 = self.conv("branch7x7_3", 192, (7, 1), padding=(3, 0))(b7)
        bd = self.conv("branch7x7dbl_1", c7, (1, 1))(x)
        bd = self.conv("branch7x7dbl_2", c7, (7, 1), padding=(3, 0))(bd)
        bd = self.conv("branch7x7dbl_3", c7, (1, 7), padding=(0, 3))(bd)
        bd = self.conv("branch7x7dbl_4", c7, (7, 1), padding=(3, 0))(bd)
        bd = self.conv("branch7x7dbl_5", 192, (1, 7), padding=(0, 3))(bd)
        bp = self.conv("branch_pool", 192, (1, 1))(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
    """Mixed_7a, grid reduction 17 -> 8: 1x1,3x3 s2 | 1x1,1x7,7x1,3x3 s2 | max pool."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.conv("branch3x3_1", 192, (1, 1))(x)
        b3 = self.conv("branch3x3_2", 320, (3, 3), strides=(2, 2))(b3)
        b7 = self.conv("branch7x7x3_1", 192, (1, 1))(x)
        b7 = self.conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
        b7 = self.conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
        b7 = self.conv("branch7x7x3_4", 192, (3, 3), strides=(2, 2))(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(_Block):
    """Mixed_7b/7c: 1x1 | 1x1,(1x3|3x1) | 3x3,(1x3|3x1) | pool + 1x1.

    `pool` is "avg" (FIDInceptionE_1, Mixed_7b) or "max" (FIDInceptionE_2, Mixed_7c: the TF
    graph's max pool, where the paper has an average pool).
    """

    pool: str = "avg"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = self.conv("branch1x1", 320, (1, 1))(x)
        b3 = self.conv("branch3x3_1", 384, (1, 1))(x)
        b3 = jnp.concatenate(
            [
                self.conv("branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3),
                self.conv("branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3),
            ],
            axis=-1,
        )
        bd = self.conv("branch3x3dbl_1", 448, (1, 1))(x)
        bd = self.conv("branch3x3dbl_2", 384, (3, 3), padding=(1, 1))(bd)
        bd = jnp.concatenate(
            [
                self.conv("branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd),
                self.conv("branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd),
            ],
            axis=-1,
        )
        if self.pool == "avg":
            bp = _avg_pool_3x3(x)
        elif self.pool == "max":
            bp = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
        else:
            raise ValueError(f"InceptionE: pool={self.pool!r}; expected 'avg' or 'max'")
        bp = self.conv("branch_pool", 192, (1, 1))(bp)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3: images [B, H, W, 3] -> pool3 features [B, 2048] (and logits).

    Input convention (pytorch-fid's): RGB images in `input_range` (default [0, 1]), mapped
    linearly to [-1, 1], the range the TF graph was trained on; use `input_range=(-1, 1)`
    for tanh generator outputs and `(0, 255)` for uint8 images. With `resize_input` (the
    default, as in pytorch-fid) images of any size are first resized to 299x299 bilinearly
    with half-pixel centres and no antialiasing (`F.interpolate(..., mode="bilinear",
    align_corners=False)`); without it, H and W must be at least 75.

    Args (fields):
      resize_input: resize to 299x299 first.
      input_range: (low, high) of the input values.
      num_classes: size of the `fc` head (1008 in the FID weights; 0 for none).
      dtype / param_dtype: computation and parameter dtypes.
    """

    resize_input: bool = True
    input_range: tuple[float, float] = (0.0, 1.0)
    num_classes: int = 1008
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, images: jax.Array, *, return_logits: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Computes pool3 features.

        Args:
          images: [B, H, W, 3] in `input_range`.
          return_logits: also return the `fc` logits.

        Returns:
          pool3 features [B, 2048] float32, or (features, logits [B, num_classes]).
        """
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"FIDInceptionV3 got images of shape {images.shape}; expected [B, H, W, 3] (RGB)"
            )
        low, high = self.input_range
        if not high > low:
            raise ValueError(f"FIDInceptionV3: input_range={self.input_range}; expected low < high")
        x = images.astype(self.dtype)
        if self.resize_input:
            x = _resize_bilinear(x, (_INPUT_SIZE, _INPUT_SIZE))
        elif min(x.shape[1:3]) < _MIN_INPUT_SIZE:
            raise ValueError(
                f"FIDInceptionV3(resize_input=False) got images of shape {images.shape}; "
                f"expected H, W >= {_MIN_INPUT_SIZE} (or resize_input=True)"
            )
        x = (x - low) * (2.0 / (high - low)) - 1.0

        conv = functools.partial(BasicConv, dtype=self.dtype, param_dtype=self.param_dtype)
        block = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        x = conv(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
        x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3_s2(x)
        x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3_s2(x)
        x = InceptionA(pool_features=32, name="Mixed_5b", **block)(x)
        x = InceptionA(pool_features=64, name="Mixed_5c", **block)(x)
        x = InceptionA(pool_features=64, name="Mixed_5d", **block)(x)
        x = InceptionB(name="Mixed_6a", **block)(x)
        for name, c7 in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            x = InceptionC(channels_7x7=c7, name=name, **block)(x)
        x = InceptionD(name="Mixed_7a", **block)(x)
        x = InceptionE(pool="avg", name="Mixed_7b", **block)(x)
        x = InceptionE(pool="max", name="Mixed_7c", **block)(x)
        features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        if self.num_classes <= 0:
            if return_logits:
                raise ValueError("FIDInceptionV3(num_classes=0) has no logits")
            return features
        # Always built, so that init creates `fc`; XLA drops it when only features are used.
        logits = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="fc"
        )(features)
        return (features, logits.astype(jnp.float32)) if return_logits else features


# Leaf of a Flax variable path -> suffix of its PyTorch name.
_LEAF_TO_TORCH = {
    ("params", "conv", "kernel"): "conv.weight",
    ("params", "bn", "scale"): "bn.weight",
    ("params", "bn", "bias"): "bn.bias",
    ("batch_stats", "bn", "mean"): "bn.running_mean",
    ("batch_stats", "bn", "var"): "bn.running_var",
    ("params", "fc", "kernel"): "weight",
    ("params", "fc", "bias"): "bias",
}


def _torch_name(path: tuple[str, ...]) -> str:
    """('params', 'Mixed_5b', 'branch1x1', 'conv', 'kernel') -> 'Mixed_5b.branch1x1.conv.weight'."""
    collection, *modules, layer, leaf = path
    suffix = _LEAF_TO_TORCH[collection, layer, leaf]
    return ".".join([*modules, layer, suffix] if layer == "fc" else [*modules, suffix])


def _to_torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """HWIO -> OIHW, [in, out] -> [out, in]; vectors unchanged."""
    if len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    return tuple(reversed(shape))


def _from_torch(value: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO, [out, in] -> [in, out]; vectors unchanged."""
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value.T


@functools.cache
def _abstract_variables(num_classes: int) -> Mapping[str, Any]:
    model = FIDInceptionV3(resize_input=False, num_classes=num_classes)
    x = jax.ShapeDtypeStruct((1, _MIN_INPUT_SIZE, _MIN_INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)


def _leaf_paths(num_classes: int) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """(Flax variable path, shape) of every leaf, in PyTorch's state-dict order."""
    leaves = jax.tree_util.tree_leaves_with_path(_abstract_variables(num_classes))
    paths = [(tuple(k.key for k in path), tuple(v.shape)) for path, v in leaves]
    # Module names sort in network order (Conv2d_*, Mixed_5b..7c, fc); within a module,
    # PyTorch lists conv.weight, bn.weight, bn.bias, running_mean, running_var.
    order = list(_LEAF_TO_TORCH)

    def key(item):
        path = item[0]
        module = path[1:-1] if path[-2] == "fc" else path[1:-2]
        return module, order.index((path[0], *path[-2:]))

    return sorted(paths, key=key)


def fid_inception_state_dict_shapes(num_classes: int = 1008) -> dict[str, tuple[int, ...]]:
    """The PyTorch state-dict names and shapes of `FIDInceptionV3`, derived from the module.

    Args:
      num_classes: size of the `fc` head (0: no fc.weight / fc.bias).

    Returns:
      {name: shape} in PyTorch layout (OIHW kernels, [out, in] fc weight), e.g.
      "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3). `num_batches_tracked` counters, which
      PyTorch may add, are not listed (the loader ignores them).
    """
    return {_torch_name(p): _to_torch_shape(s) for p, s in _leaf_paths(num_classes)}


def fid_inception_variables(
    state_dict: Mapping[str, Any], *, num_classes: int = 1008, source: str = "state dict"
) -> dict[str, Any]:
    """Maps a pytorch-fid Inception state dict to `FIDInceptionV3` variables.

    Args:
      state_dict: {PyTorch name: array} with exactly the names and shapes of
        `fid_inception_state_dict_shapes(num_classes)` (plus optional `*.num_batches_tracked`).
      num_classes: as in `FIDInceptionV3`.
      source: what to call the weights in error messages (normally the file path).

    Returns:
      {"params": ..., "batch_stats": ...} of float32 jax arrays, kernels in HWIO.

    Raises:
      StateDictMismatchError: missing, unexpected or mis-shaped names, all named.
    """
    leaves = _leaf_paths(num_classes)
    expected = {_torch_name(p): _to_torch_shape(s) for p, s in leaves}
    hint = ""
    if any(k.startswith("AuxLogits.") for k in state_dict):
        hint = " (AuxLogits present: torchvision's inception_v3 weights, not the FID ones?)"
    check_state_dict_shapes(
        state_dict,
        expected,
        source=source + hint,
        ignore_suffixes=(".num_batches_tracked",),
    )
    variables: dict[str, Any] = {}
    for path, _ in leaves:
        value = _from_torch(np.asarray(state_dict[_torch_name(path)], np.float32))
        node = variables
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = jnp.asarray(value)
    return variables


def load_fid_inception(
    path: str | os.PathLike[str],
    *,
    resize_input: bool = True,
    input_range: tuple[float, float] = (0.0, 1.0),
    dtype: Dtype = jnp.float32,
) -> tuple[FIDInceptionV3, dict[str, Any]]:
    """Loads the FID Inception from pytorch-fid's weight file or its `.npz` conversion.

    Args:
      path: `pt_inception-2015-12-05-6726825d.pth` (read without torch) or the `.npz`
        written from it by `python -m gen_jax.models.features.torch_weights IN.pth OUT.npz`.
      resize_input, input_range, dtype: as in `FIDInceptionV3`.

    Returns:
      (module, variables) for `module.apply(variables, images)`.

    Raises:
      FileNotFoundError: `path` does not exist.
      TorchCheckpointError: `path` is not a readable checkpoint.
      StateDictMismatchError: the weights are not those of the FID Inception (names all
        missing, unexpected or mis-shaped keys).
    """
    state_dict = load_weight_file(path)
    variables = fid_inception_variables(state_dict, num_classes=1008, source=str(path))
    model = FIDInceptionV3(resize_input=resize_input, input_range=input_range, dtype=dtype)
    return model, variables


def fid_feature_fn(
    path: str | os.PathLike[str],
    *,
    resize_input: bool = True,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Callable[[jax.Array], jax.Array]:
    """A jitted function images [B, H, W, 3] -> pool3 features [B, 2048], the FID features.

    Args:
      path: the weight file, as in `load_fid_inception`.
      resize_input, input_range: as in `FIDInceptionV3` (defaults: pytorch-fid's).

    Returns:
      `features(images)`; compiled once per input shape. The weights are an argument of
      the compiled function, not constants folded into it.
    """
    model, variables = load_fid_inception(path, resize_input=resize_input, input_range=input_range)
    apply = jax.jit(model.apply)

    def features(images: jax.Array) -> jax.Array:
        return apply(variables, images)

    return features
