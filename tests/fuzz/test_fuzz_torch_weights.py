"""Fuzzed PyTorch checkpoints: the torch-free reader returns tensors and containers or raises
TorchCheckpointError naming the file, and never runs anything a pickle asks for.

Hostile pickles are generated as opcode programs that reach for os.system, eval, exec, open,
subprocess and classes outside the allowlist through every opcode that resolves or calls
something (GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, EXT1), mixed
with the allowed names and random data; each would create a sentinel file if anything it
asks for ran.
"""

import io
import pickle
import struct
import zipfile
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from fuzz_inputs import FUZZ, damaged, junk, names_path
from hypothesis import given, settings

from gen_jax.models.features import torch_weights
from gen_jax.models.features.torch_weights import (
    TorchCheckpointError,
    load_torch_checkpoint,
    load_torch_state_dict,
    load_weight_file,
    save_npz_state_dict,
)

DATA = Path(__file__).resolve().parents[1] / "models" / "features" / "data"
FIXTURES = ("torch_checkpoint.pth", "torch_legacy.pth")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("torch")


@pytest.fixture(scope="module")
def seeds(folder):
    seeds = {name: (DATA / name).read_bytes() for name in FIXTURES}
    npz = folder / "seed.npz"
    save_npz_state_dict(load_torch_state_dict(DATA / FIXTURES[0]), npz)
    seeds["npz"] = npz.read_bytes()
    return seeds


def _state_dict(path, reader=load_weight_file):
    """A state-dict reader under the contract: the dict, or None after a clear error."""
    try:
        state = reader(path)
    except TorchCheckpointError as e:
        assert names_path(e, path), str(e)
        return None
    assert isinstance(state, dict) and state
    assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())
    return state


@settings(FUZZ, max_examples=FUZZ.max_examples * 3)
@given(data=st.data(), whole_reader=st.booleans())
def test_damaged_checkpoints(folder, seeds, data, whole_reader):
    name = data.draw(st.sampled_from(sorted(seeds)))
    path = folder / "damaged.pth"
    path.write_bytes(data.draw(damaged(seeds[name])))
    _state_dict(path, load_torch_state_dict if whole_reader and name != "npz" else load_weight_file)


@FUZZ
@given(raw=junk(b"\x80\x02", b"\x80\x04\x95", b"PK\x03\x04", b"PK\x05\x06", b"\x8a\x0a"))
def test_random_bytes(folder, raw):
    path = folder / "junk.pth"
    path.write_bytes(raw)
    _state_dict(path)


# --- Hostile pickles ---------------------------------------------------------------------------

FORBIDDEN = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "open"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("__builtin__", "eval"),
    ("subprocess", "check_call"),
    ("subprocess", "Popen"),
    ("io", "open"),
    ("argparse", "Namespace"),
    ("copyreg", "_reconstructor"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("gen_jax.models.features.torch_weights", "_fresh"),
    ("torch", "load"),
    ("torch.nn.modules.conv", "Conv2d"),
]
ALLOWED = [
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Tensor"),
    ("torch", "FloatStorage"),
    ("torch", "float32"),
    ("torch", "Size"),
]
# Registered as a copyreg extension code during the test: EXT1 must go through find_class.
EXT_CODE = 0xF1


def _module_state() -> dict:
    """The attributes of the reader module's own classes and functions, by identity."""
    state = {}
    for name, obj in vars(torch_weights).items():
        if getattr(obj, "__module__", None) != torch_weights.__name__:
            continue
        if isinstance(obj, type):
            state[name] = {k: id(v) for k, v in vars(obj).items()}
        elif callable(obj):
            extra = (obj.__defaults__, obj.__kwdefaults__, obj.__code__)
            state[name] = ({k: id(v) for k, v in vars(obj).items()}, extra)
    return state


MODULE_STATE = _module_state()


def _sunicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


@st.composite
def hostile_pickles(draw, sentinel: str) -> bytes:
    """A protocol-4 opcode program: random pushes, globals (mostly forbidden), calls."""
    payloads = [
        f"touch {sentinel}",
        f"open({sentinel!r}, 'w').close()",
        sentinel,
        "w",
        "storage",
        "0",
        "cpu",
    ]
    names = FORBIDDEN + ALLOWED
    module_name = st.sampled_from(names)
    ops = st.one_of(
        st.sampled_from(payloads).map(_sunicode),
        module_name.map(lambda mn: b"c" + f"{mn[0]}\n{mn[1]}\n".encode()),  # GLOBAL
        module_name.map(lambda mn: _sunicode(mn[0]) + _sunicode(mn[1]) + b"\x93"),  # STACK_GLOBAL
        module_name.map(
            lambda mn: b"(" + _sunicode(f"touch {sentinel}") + b"i" + f"{mn[0]}\n{mn[1]}\n".encode()
        ),  # INST
        st.sampled_from(
            [
                b"R",  # REDUCE
                b"o",  # OBJ
                b"b",  # BUILD
                b"\x81",  # NEWOBJ
                b"\x92",  # NEWOBJ_EX
                b"(",  # MARK
                b"t",  # TUPLE
                b"\x85",  # TUPLE1
                b"\x86",  # TUPLE2
                b")",  # EMPTY_TUPLE
                b"}",  # EMPTY_DICT
                b"]",  # EMPTY_LIST
                b"a",  # APPEND
                b"e",  # APPENDS
                b"s",  # SETITEM
                b"u",  # SETITEMS
                b"N",  # NONE
                b"\x88",  # NEWTRUE
                b"2",  # DUP
                b"0",  # POP
                b"\x94",  # MEMOIZE
                b"Q",  # BINPERSID
                b"\x82" + bytes([EXT_CODE]),  # EXT1
            ]
        ),
        st.integers(0, 255).map(lambda n: b"K" + bytes([n])),  # BININT1
        st.integers(-(2**31), 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),  # BININT
        st.integers(0, 3).map(lambda n: b"h" + bytes([n])),  # BINGET
    )
    # Whole units as well, so that a call or an attribute setting is often well formed.
    glob = st.one_of(
        module_name.map(lambda mn: b"c" + f"{mn[0]}\n{mn[1]}\n".encode()),
        module_name.map(lambda mn: _sunicode(mn[0]) + _sunicode(mn[1]) + b"\x93"),
    )
    args = st.lists(st.sampled_from(payloads).map(_sunicode), max_size=3).map(
        lambda items: b"(" + b"".join(items) + b"t"
    )
    call = st.tuples(glob, args, st.sampled_from([b"R", b"\x81"])).map(b"".join)
    obj_call = st.tuples(glob, args).map(lambda t: b"(" + t[0] + t[1][1:-1] + b"o")
    attr = st.sampled_from(["__defaults__", "__class__", "__call__", "pwn", "dtype"])
    state = st.one_of(
        attr.map(lambda a: b"}" + _sunicode(a) + b"K\x01s"),  # {attr: 1}
        attr.map(lambda a: b"N}" + _sunicode(a) + b"K\x01\x85s\x86"),  # (None, {attr: (1,)})
    )
    build = st.tuples(glob, state).map(lambda t: t[0] + t[1] + b"b")
    units = st.one_of(ops, call, obj_call, build)
    body = b"".join(draw(st.lists(units, min_size=1, max_size=16)))
    return b"\x80\x04" + body + b"."


def _as_checkpoint(path: Path, payload: bytes, legacy: bool) -> None:
    if legacy:
        head = b"".join(pickle.dumps(v, 2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(head + payload + pickle.dumps([], 2))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", payload)
            z.writestr("archive/byteorder", "little")
            z.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())


@pytest.fixture(scope="module")
def extension_code():
    import copyreg

    copyreg.add_extension("os", "system", EXT_CODE)
    try:
        yield
    finally:
        copyreg.remove_extension("os", "system", EXT_CODE)


@settings(FUZZ, max_examples=FUZZ.max_examples * 4)
@given(data=st.data(), legacy=st.booleans())
def test_hostile_pickles_are_refused_and_never_run(folder, extension_code, data, legacy):
    sentinel = folder / "sentinel"
    payload = data.draw(hostile_pickles(str(sentinel)))
    path = folder / "hostile.pth"
    _as_checkpoint(path, payload, legacy)
    try:
        load_torch_checkpoint(path)  # a harmless program may load (returning plain data)
    except TorchCheckpointError as e:
        assert names_path(e, path), str(e)
    assert not sentinel.exists(), f"the pickle ran code: {payload!r}"
    # BUILD (attribute setting) must not have reached the module's own classes and functions.
    assert _module_state() == MODULE_STATE


def test_extension_code_fixture_really_resolves_to_os_system(extension_code):
    # The premise of EXT1 above: a plain unpickler would call os.system here.
    import copyreg

    assert copyreg._inverted_registry[EXT_CODE] == ("os", "system")
    buf = io.BytesIO(b"\x80\x02\x82" + bytes([EXT_CODE]) + b".")
    assert pickle.Unpickler(buf).load() is __import__("os").system


@FUZZ
@given(
    name=st.sampled_from(ALLOWED),
    attr=st.sampled_from(["__defaults__", "__call__", "__new__", "__init__", "dtype", "pwn"]),
    value=st.sampled_from([b"K\x01", b"K\x01\x85", b"N", b")", b"}"]),
    slot_state=st.booleans(),
    legacy=st.booleans(),
)
def test_build_on_an_allowed_name_changes_nothing_outside_the_load(
    folder, name, attr, value, slot_state, legacy
):
    # BUILD sets attributes on the object below it (state, or (None, slot_state)): on the
    # reader's own stand-ins that would outlive the load and change later ones.
    state = b"}" + _sunicode(attr) + value + b"s"
    payload = b"\x80\x02c" + f"{name[0]}\n{name[1]}\n".encode()
    payload += (b"N" + state + b"\x86" if slot_state else state) + b"b."
    path = folder / "build.pth"
    _as_checkpoint(path, payload, legacy)
    try:
        load_torch_checkpoint(path)
    except TorchCheckpointError as e:
        assert names_path(e, path), str(e)
    assert _module_state() == MODULE_STATE
    assert load_torch_state_dict(DATA / FIXTURES[0]).keys()  # later loads still work
