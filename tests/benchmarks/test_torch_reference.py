"""benchmarks.torch_reference: importable without torch, its device set-up (with a fake
torch where the real one is missing), and the PyTorch networks against gen_jax's."""

import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import torch_reference
from gen_jax.models.features.vgg import VGG19, random_vgg_params

try:
    import torch
except ImportError:
    torch = None


def test_without_torch_the_reference_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert torch_reference.torch_importable() is False


class _FakeTorch(types.SimpleNamespace):
    """What `torch_device` reads of torch: threads, CUDA, devices, cuDNN's switch."""

    def __init__(self, threads: int, cuda: bool):
        state = {"threads": threads}
        super().__init__(
            __version__="0.0-fake",
            get_num_threads=lambda: state["threads"],
            set_num_threads=lambda n: state.update(threads=n),
            device=lambda kind: types.SimpleNamespace(type=kind),
            cuda=types.SimpleNamespace(
                is_available=lambda: cuda, get_device_name=lambda i: "Fake GPU"
            ),
            backends=types.SimpleNamespace(cudnn=types.SimpleNamespace(benchmark=False)),
        )


def _with_fake_torch(monkeypatch, backend: str, threads: int = 1, cuda: bool = False):
    fake = _FakeTorch(threads, cuda)
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(torch_reference.jax, "default_backend", lambda: backend)
    monkeypatch.setattr(torch_reference, "schedulable_cores", lambda: 4)
    return fake


def test_on_the_cpu_the_pool_matches_xla_only_when_asked(monkeypatch):
    _with_fake_torch(monkeypatch, "cpu", threads=1)
    notes = []
    device, info = torch_reference.torch_device(notes)
    assert device.type == "cpu" and info == {"version": "0.0-fake", "device": "cpu",
                                             "num_threads": 1}  # fmt: skip
    assert notes == []
    device, info = torch_reference.torch_device(notes, match_xla_cores=True)
    assert info["num_threads"] == 4
    assert notes == ["torch.set_num_threads(4) (was 1) to match the 4 cores XLA:CPU uses."]


def test_asked_threads_win_over_matching(monkeypatch):
    _with_fake_torch(monkeypatch, "cpu", threads=1)
    notes = []
    _, info = torch_reference.torch_device(notes, num_threads=2, match_xla_cores=True)
    assert info["num_threads"] == 2 and notes == ["torch.set_num_threads(2) (default 1)."]


def test_on_a_gpu_the_reference_needs_cuda(monkeypatch):
    _with_fake_torch(monkeypatch, "gpu", cuda=False)
    notes = []
    assert torch_reference.torch_device(notes) is None
    assert notes == ["PyTorch rows skipped: JAX runs on a GPU but PyTorch has no CUDA."]
    fake = _with_fake_torch(monkeypatch, "gpu", cuda=True)
    notes = []
    device, info = torch_reference.torch_device(notes, match_xla_cores=True)
    assert device.type == "cuda" and info["device"] == "cuda (Fake GPU)"
    assert fake.backends.cudnn.benchmark is True and info["num_threads"] == 1
    assert notes == ["PyTorch on CUDA with torch.backends.cudnn.benchmark = True."]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_torch_vgg_matches_gen_jax(pooling):
    """The PyTorch Sequential with converted parameters computes gen_jax's VGG19 maps."""
    params = random_vgg_params(jax.random.key(0), 19)
    layers = ("relu1_1", "relu3_1", "relu5_1")
    x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    module = VGG19(pooling=pooling, preprocessing="none")
    with jax.default_matmul_precision("highest"):
        ours = module.apply({"params": params}, x, outputs=layers)
    net, names = torch_reference.build_torch_vgg(jax.device_get(params), pooling, "relu5_1")
    assert names[-1] == "relu5_1" and len(net) == len(names)
    h = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        for name, layer in zip(names, net):
            h = layer(h)
            if name in layers:
                np.testing.assert_allclose(
                    h.numpy().transpose(0, 2, 3, 1), ours[name], rtol=1e-4, atol=1e-4
                )


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_gram_matches_gen_jax():
    from gen_jax.losses.perceptual import gram_matrix

    f = np.random.default_rng(0).normal(size=(1, 5, 4, 3)).astype(np.float32)  # NHWC
    ours = gram_matrix(jnp.asarray(f), "positions")[0]
    theirs = torch_reference.TorchStyleLoss.per_position_gram(
        torch.from_numpy(f.transpose(0, 3, 1, 2).copy())
    )
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_float32_turns_tf32_off_for_the_block_only():
    b = torch.backends

    def settings():
        return b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision

    before = settings()
    with torch_reference.torch_float32():
        assert settings() == ("ieee", "ieee")
    assert settings() == before
    with torch_reference.torch_float32(enabled=False):
        assert settings() == before
