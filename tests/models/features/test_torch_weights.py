"""The torch-free checkpoint reader against fixtures written by torch.save (and torch itself)."""

import io
import pickle
import re
import struct
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from gen_jax.models.features.torch_weights import (
    StateDictMismatchError,
    TorchCheckpointError,
    check_state_dict_shapes,
    load_torch_checkpoint,
    load_torch_state_dict,
    load_weight_file,
    main,
    save_npz_state_dict,
)

DATA = Path(__file__).parent / "data"
# Written by tests/models/features/data/make_torch_fixtures.py (torch 2.13); values beside them.
EXPECTED_DTYPES = {
    "w32": np.float32,
    "base": np.float32,
    "view": np.float32,
    "h16": np.float16,
    "i64": np.int64,
    "scalar": np.float32,
    "bf16": ml_dtypes.bfloat16,
    "flag": np.bool_,
    "param": np.float32,
}


def _expected():
    with np.load(DATA / "torch_expected.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _assert_matches_fixture(state):
    expected = _expected()
    assert list(state) == list(EXPECTED_DTYPES)  # file order is kept
    for name, value in state.items():
        assert value.dtype == EXPECTED_DTYPES[name], name
        assert value.shape == expected[name].shape, name
        assert value.flags.c_contiguous and value.flags.writeable, name
        np.testing.assert_array_equal(value.astype(expected[name].dtype), expected[name])


@pytest.mark.parametrize("name", ["torch_checkpoint.pth", "torch_legacy.pth"])
def test_reads_fixture_without_torch(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` would now fail
    state = load_torch_state_dict(DATA / name)
    _assert_matches_fixture(state)
    assert state["scalar"].shape == () and state["scalar"] == 2.5
    assert state["i64"][3] == 2**40  # no float round trip
    # The view is base[1:, ::2].T, copied out of the shared storage.
    np.testing.assert_array_equal(state["view"], state["base"][1:, ::2].T)


def test_checkpoint_keeps_non_tensor_entries():
    obj = load_torch_checkpoint(DATA / "torch_checkpoint.pth")
    assert obj["epoch"] == 7 and set(obj) == {"epoch", "state_dict"}


def test_npz_round_trip_and_cli(tmp_path, capsys):
    out = tmp_path / "weights.bin"  # no suffix is added
    assert main([str(DATA / "torch_legacy.pth"), str(out)]) == 0
    assert "9 tensors" in capsys.readouterr().out
    state = load_weight_file(out)
    expected = _expected()
    assert set(state) == set(expected)
    assert state["bf16"].dtype == np.float32  # widened: .npz cannot name bfloat16
    for k in expected:
        np.testing.assert_array_equal(state[k], expected[k])
    # load_weight_file also reads the .pth itself.
    _assert_matches_fixture(load_weight_file(DATA / "torch_checkpoint.pth"))


def test_save_npz_state_dict(tmp_path):
    path = tmp_path / "w.npz"
    save_npz_state_dict({"a.b": np.arange(3, dtype=ml_dtypes.bfloat16), "c": [[1, 2]]}, path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["a.b"].dtype == np.float32 and npz["c"].dtype == np.int64
        np.testing.assert_array_equal(npz["a.b"], [0, 1, 2])
    with pytest.raises(TypeError, match="must be str"):
        save_npz_state_dict({1: np.ones(1)}, path)


def test_cli_reports_errors(tmp_path, capsys):
    assert main([str(tmp_path / "absent.pth"), str(tmp_path / "out.npz")]) == 1
    assert "absent.pth" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def _zip_checkpoint(path, payload: bytes, storages=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)


def test_refuses_arbitrary_globals_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    # A hand-written pickle that would call os.system("touch <marker>") if resolved.
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    for path in (tmp_path / "evil_zip.pth", tmp_path / "evil_legacy.pth"):
        if path.name == "evil_zip.pth":
            _zip_checkpoint(path, payload)
        else:
            head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
            path.write_bytes(head + payload)
        with pytest.raises(TorchCheckpointError, match=r"refusing to load the global os\.system"):
            load_torch_checkpoint(path)
    assert not marker.exists()


def test_refuses_other_classes(tmp_path):
    path = tmp_path / "obj.pth"
    _zip_checkpoint(path, pickle.dumps({"w": io.BytesIO()}, protocol=2))
    with pytest.raises(TorchCheckpointError, match=r"_io\.BytesIO.*state_dict\(\)"):
        load_torch_checkpoint(path)


def _tensor_pickle(storage_type, key, n):
    """Protocol-0 pickle text of a 1-D tensor of n elements on storage `key`, as torch writes."""
    return (
        f"ctorch._utils\n_rebuild_tensor_v2\n((S'storage'\nctorch\n{storage_type}\n"
        f"S'{key}'\nS'cpu'\nI{n}\ntQI0\n(I{n}\nt(I1\ntI00\nNtR"
    )


def test_big_endian_zip(tmp_path):
    # A hand-built zip checkpoint: one float32 [2] tensor and one bfloat16 [2], big-endian.
    tensor = _tensor_pickle
    payload = f"(dS'a'\n{tensor('FloatStorage', 0, 2)}sS'b'\n{tensor('BFloat16Storage', 1, 2)}s."
    a = np.array([1.5, -2.0], ">f4")
    b = np.array([0.5, 3.0], np.float32).view("<u4") >> 16  # bfloat16 bit patterns
    path = tmp_path / "be.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("be/data.pkl", payload.encode())
        z.writestr("be/byteorder", "big")
        z.writestr("be/data/0", a.tobytes())
        z.writestr("be/data/1", b.astype(">u2").tobytes())
    state = load_torch_state_dict(path)
    np.testing.assert_array_equal(state["a"], [1.5, -2.0])
    assert state["a"].dtype == np.float32 and state["a"].dtype.isnative
    np.testing.assert_array_equal(state["b"].astype(np.float32), [0.5, 3.0])


def test_layout_outside_storage_is_refused(tmp_path):
    payload = (
        "ctorch._utils\n_rebuild_tensor_v2\n((S'storage'\nctorch\nFloatStorage\nS'0'\n"
        "S'cpu'\nI4\ntQI2\n(I3\nt(I1\ntI00\nNtR."
    )
    path = tmp_path / "oob.pth"
    _zip_checkpoint(path, payload.encode(), {"0": np.zeros(4, "<f4").tobytes()})
    with pytest.raises(TorchCheckpointError, match="reaches element 4 of a storage of 4"):
        load_torch_checkpoint(path)


def test_state_dict_unwrapping(tmp_path):
    # {"step": 3, "model": {"module.a.weight": <2 floats>, "module.b": <1 float>}}
    a, b = _tensor_pickle("FloatStorage", 0, 2), _tensor_pickle("FloatStorage", 1, 1)
    payload = f"(dS'step'\nI3\nsS'model'\n(dS'module.a.weight'\n{a}sS'module.b'\n{b}ss."
    path = tmp_path / "m.pth"
    storages = {"0": np.ones(2, "<f4").tobytes(), "1": np.zeros(1, "<f4").tobytes()}
    _zip_checkpoint(path, payload.encode(), storages)
    state = load_torch_state_dict(path)
    assert list(state) == ["a.weight", "b"]  # "module." (nn.DataParallel) removed
    np.testing.assert_array_equal(state["a.weight"], [1.0, 1.0])
    _zip_checkpoint(tmp_path / "none.pth", pickle.dumps({"step": 3, "args": [1, 2]}, 2))
    with pytest.raises(TorchCheckpointError, match=r"none\.pth.*\['step', 'args'\]"):
        load_torch_state_dict(tmp_path / "none.pth")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_torch_state_dict(tmp_path / "absent.pth")
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(TorchCheckpointError, match=r"text\.pth: not a PyTorch checkpoint"):
        load_torch_state_dict(text)
    cut = tmp_path / "cut.pth"
    cut.write_bytes((DATA / "torch_legacy.pth").read_bytes()[:-40])
    with pytest.raises(TorchCheckpointError, match=r"cut\.pth: truncated"):
        load_torch_state_dict(cut)
    npz = tmp_path / "w.npz"
    np.savez(npz, a=np.ones(2))
    with pytest.raises(TorchCheckpointError, match=r"NumPy \.npz"):
        load_torch_state_dict(npz)


def test_check_state_dict_shapes():
    expected = {"a": (2, 3), "b": (4,), "c": ()}
    check_state_dict_shapes({"a": np.zeros((2, 3)), "b": np.zeros(4), "c": np.zeros(())}, expected)
    bad = {"a": np.zeros((3, 2)), "c": np.zeros(()), "d": np.zeros(1), "x.num_batches_tracked": 0}
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict_shapes(
            bad, expected, source="w.pth", ignore_suffixes=("num_batches_tracked",)
        )
    msg = str(info.value)
    assert msg.startswith("w.pth:")
    assert "1 missing keys: b" in msg and "1 unexpected keys: d" in msg
    assert "a: expected (2, 3), found (3, 2)" in msg and "num_batches" not in msg


@pytest.mark.parametrize("zip_format, protocol", [(True, 2), (False, 2), (True, 4), (False, 4)])
def test_round_trip_against_torch(tmp_path, zip_format, protocol):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 7, 3, generator=g)
    tensors = {
        "f64": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "f32": torch.randn(5, 1, 2, generator=g),
        "f16": torch.randn(4, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "i32": torch.randint(-100, 100, (3, 3), generator=g, dtype=torch.int32),
        "i16": torch.randint(-100, 100, (2,), generator=g, dtype=torch.int16),
        "i8": torch.randint(-100, 100, (2,), generator=g, dtype=torch.int8),
        "u8": torch.randint(0, 255, (2, 2), generator=g, dtype=torch.uint8),
        "permuted": base.permute(2, 0, 1)[:, 1:5, ::3],
        "expanded": torch.arange(3.0).reshape(3, 1).expand(3, 4),  # stride 0
        "empty": torch.zeros(0, 3),
        "c64": torch.randn(2, generator=g, dtype=torch.complex64),
    }
    if zip_format:  # dtypes without a legacy storage class (rebuilt by _rebuild_tensor_v3)
        tensors["u16"] = torch.tensor([0, 65535], dtype=torch.uint16)
    path = tmp_path / "r.pth"
    torch.save(tensors, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    state = load_torch_state_dict(path)
    assert list(state) == list(tensors)
    for name, t in tensors.items():
        ref = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        got = state[name].astype(np.float32) if name == "bf16" else state[name]
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        np.testing.assert_array_equal(got, ref, err_msg=name)


@pytest.mark.parametrize("zip_format", [True, False])
def test_module_state_dict_against_torch(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2)
    )
    net(torch.randn(2, 3, 7, 7))  # updates the batch-norm statistics
    sd = net.state_dict()  # an OrderedDict with a `_metadata` attribute
    path = tmp_path / "net.pth"
    torch.save({"state_dict": sd, "epoch": 1}, path, _use_new_zipfile_serialization=zip_format)
    state = load_torch_state_dict(path)
    assert list(state) == list(sd)
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"] == 1
    for name, t in sd.items():
        np.testing.assert_array_equal(state[name], t.numpy(), err_msg=name)


def test_damaged_memo_index_is_refused_before_unpickling(tmp_path):
    # BININT1 1, LONG_BINPUT 2**31 - 1, STOP: CPython's unpickler would first grow its memo
    # table to 2**31 entries.
    path = tmp_path / "memo.pth"
    _zip_checkpoint(path, b"\x80\x02K\x01r\xff\xff\xff\x7f.")
    with pytest.raises(TorchCheckpointError, match=r"memo\.pth: corrupt pickle: memo index"):
        load_torch_checkpoint(path)


# --- Hostile and damaged files (issue #20: found or checked by tests/fuzz) ---------------------

_COMMAND = "touch {sentinel}"


def _hostile(form: str, module: str, name: str, arg: str) -> bytes:
    """A pickle that reaches `module.name` by one opcode form and calls it with `arg`."""
    s = pickle.dumps(arg, protocol=4)[2:-1]  # the string's opcodes, without PROTO/STOP
    stack_global = pickle.dumps(module, 4)[2:-1] + pickle.dumps(name, 4)[2:-1] + b"\x93"
    glob = f"c{module}\n{name}\n".encode()
    return (
        b"\x80\x04"
        + {
            "GLOBAL+REDUCE": glob + b"(" + s + b"tR",
            "STACK_GLOBAL+REDUCE": stack_global + b"(" + s + b"tR",
            "INST": b"(" + s + f"i{module}\n{name}\n".encode(),
            "OBJ": b"(" + glob + s + b"o",
            "NEWOBJ": glob + b"(" + s + b"t\x81",
            "NEWOBJ_EX": glob + b"(" + s + b"t}\x92",
            "BUILD": b"ccollections\nOrderedDict\n)R" + glob + b"b",
        }[form]
        + b"."
    )


TARGETS = [
    ("os", "system", _COMMAND),
    ("posix", "system", _COMMAND),
    ("builtins", "eval", "open({sentinel!r}, 'w').close()"),
    ("builtins", "exec", "open({sentinel!r}, 'w').close()"),
    ("builtins", "open", "{sentinel}"),  # a call would create the file (mode 'r' fails, but...)
    ("__builtin__", "eval", "open({sentinel!r}, 'w').close()"),
    ("subprocess", "getoutput", _COMMAND),
    ("pathlib", "Path", "{sentinel}"),
    ("argparse", "Namespace", "{sentinel}"),  # a class outside the allowlist
    ("gen_jax.models.features.torch_weights", "_fresh", "{sentinel}"),  # our own internals
]


@pytest.mark.parametrize(
    "form", ["GLOBAL+REDUCE", "STACK_GLOBAL+REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"]
)
@pytest.mark.parametrize("module, name, arg", TARGETS)
@pytest.mark.parametrize("legacy", [False, True])
def test_every_way_to_reach_a_global_is_refused_and_nothing_runs(
    tmp_path, form, module, name, arg, legacy
):
    sentinel = tmp_path / "sentinel"
    payload = _hostile(form, module, name, arg.format(sentinel=str(sentinel)))
    path = tmp_path / "evil.pth"
    if legacy:
        head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(head + payload)
    else:
        _zip_checkpoint(path, payload)
    with pytest.raises(
        TorchCheckpointError, match=rf"refusing to load the global {module}\.{name}"
    ):
        load_torch_checkpoint(path)
    assert not sentinel.exists()


def test_extension_codes_go_through_the_allowlist(tmp_path):
    # EXT1 resolves through copyreg's registry, then find_class: a registered code that
    # names os.system is refused like the name itself.
    import copyreg

    copyreg.add_extension("os", "system", 0xF2)
    try:
        sentinel = tmp_path / "sentinel"
        payload = b"\x80\x02\x82\xf2(" + pickle.dumps(f"touch {sentinel}", 2)[2:-1] + b"tR."
        _zip_checkpoint(tmp_path / "ext.pth", payload)
        with pytest.raises(TorchCheckpointError, match=r"refusing to load the global os\.system"):
            load_torch_checkpoint(tmp_path / "ext.pth")
    finally:
        copyreg.remove_extension("os", "system", 0xF2)
    assert not sentinel.exists()


def test_build_cannot_change_the_reader_for_later_loads(tmp_path):
    # Found by fuzzing: BUILD with a slot state on the class that stood in for torch.Tensor
    # set an attribute on the module's own class (it outlived the load), and a function's
    # __defaults__ could be set the same way. Each load now has its own stand-ins.
    import gen_jax.models.features.torch_weights as tw

    cases = {
        "tensor": b"\x80\x02ctorch\nTensor\nN}X\x03\x00\x00\x00pwnK\x01s\x86b.",
        "function": b"\x80\x02ctorch._utils\n_rebuild_parameter\n"
        b"N}X\x0c\x00\x00\x00__defaults__K\x07\x85s\x86b.",
    }
    for label, payload in cases.items():
        path = tmp_path / f"{label}.pth"
        _zip_checkpoint(path, payload)
        with pytest.raises(TorchCheckpointError, match=re.escape(str(path))):
            load_torch_checkpoint(path)
    assert not hasattr(tw._TensorType, "pwn")
    assert tw._rebuild_parameter.__defaults__ == (None,)
    _assert_matches_fixture(load_torch_state_dict(DATA / "torch_checkpoint.pth"))


def test_tensor_subclass_check_names_the_file(tmp_path):
    # _rebuild_from_type_v2 with a type that is not torch.Tensor: the error names the path.
    payload = b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(ctorch\nSize\nK\x01)NtR."
    path = tmp_path / "subclass.pth"
    _zip_checkpoint(path, payload)
    with pytest.raises(TorchCheckpointError, match=re.escape(f"{path}: expected a torch.Tensor")):
        load_torch_checkpoint(path)


def test_expanded_tensor_of_a_damaged_size_is_refused(tmp_path):
    # Found by fuzzing: a zero stride lets a 1-element storage back any size, and copying
    # 2**40 floats raised MemoryError (2**62: OverflowError deep in numpy).
    for n in (2**40, 2**62):
        payload = (
            "ctorch._utils\n_rebuild_tensor_v2\n((S'storage'\nctorch\nFloatStorage\nS'0'\n"
            f"S'cpu'\nI1\ntQI0\n(I{n}\nt(I0\ntI00\nNtR."
        )
        path = tmp_path / "expand.pth"
        _zip_checkpoint(path, payload.encode(), {"0": np.zeros(1, "<f4").tobytes()})
        with pytest.raises(TorchCheckpointError, match=re.escape(str(path))) as info:
            load_torch_checkpoint(path)
        assert "refusing to copy it" in str(info.value)
    # A modest expansion (what torch.save writes for x.expand(...)) still loads.
    payload = (
        "ctorch._utils\n_rebuild_tensor_v2\n((S'storage'\nctorch\nFloatStorage\nS'0'\n"
        "S'cpu'\nI1\ntQI0\n(I3\nI4\nt(I0\nI0\ntI00\nNtR."
    )
    _zip_checkpoint(path, payload.encode(), {"0": np.full(1, 2.5, "<f4").tobytes()})
    np.testing.assert_array_equal(load_torch_checkpoint(path), np.full((3, 4), 2.5, np.float32))


def _legacy(tensor_pickle: str, key: str, numel: int, storage: bytes) -> bytes:
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
    keys = pickle.dumps([key], protocol=2)
    count = struct.pack("<q", numel) if numel < 2**63 else b"\xff" * 8
    return head + (tensor_pickle + ".").encode() + keys + count + storage


def test_legacy_storage_of_a_damaged_size_is_refused(tmp_path):
    # Found by fuzzing: a declared numel past 2**63 bytes made BytesIO.read raise
    # OverflowError; any size past the file's end is now refused before reading.
    for numel in (2**62, 2**70, 1000):
        path = tmp_path / "legacy.pth"
        path.write_bytes(_legacy(_tensor_pickle("FloatStorage", 0, numel), "0", numel, b"\0" * 8))
        with pytest.raises(TorchCheckpointError, match=re.escape(str(path))):
            load_torch_checkpoint(path)


def test_legacy_file_whose_bytes_end_like_a_zip_is_read_as_legacy(tmp_path):
    # A storage that ends with a zip end-of-directory record: zipfile.is_zipfile says yes,
    # but a file starting with a pickle (byte 80) is a legacy checkpoint.
    eocd = b"PK\x05\x06" + bytes(18)
    path = tmp_path / "looks_zip.pth"
    path.write_bytes(_legacy(_tensor_pickle("ByteStorage", 0, len(eocd)), "0", len(eocd), eocd))
    assert zipfile.is_zipfile(path)
    np.testing.assert_array_equal(load_torch_checkpoint(path), np.frombuffer(eocd, np.uint8))
    with pytest.raises(TorchCheckpointError, match="expected a state dict"):  # not an .npz
        load_weight_file(path)


def test_damaged_zip_directory_and_npz_members_are_checkpoint_errors(tmp_path):
    # Found by fuzzing load_weight_file: a member name that is not UTF-8 (UnicodeDecodeError
    # from zipfile), a damaged deflate stream in a compressed .npz (zlib.error), and a
    # header declaring more than memory holds (MemoryError), all raised raw.
    named = tmp_path / "name.pth"
    with zipfile.ZipFile(named, "w") as z:
        z.writestr("archive/\u00e9.npy", b"x")  # UTF-8 flag set, name bytes c3 a9
    named.write_bytes(named.read_bytes().replace(b"\xc3\xa9", b"\xc3\x28"))
    deflated = tmp_path / "deflated.npz"
    np.savez_compressed(deflated, w=np.arange(1000.0))
    data = bytearray(deflated.read_bytes())
    data[len(data) // 3] ^= 0xFF
    deflated.write_bytes(bytes(data))
    huge = tmp_path / "huge.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
    )
    with zipfile.ZipFile(huge, "w") as z:
        z.writestr("w.npy", header.getvalue() + bytes(8))
    for path in (named, deflated, huge):
        with pytest.raises(TorchCheckpointError, match=re.escape(str(path))):
            load_weight_file(path)


def test_storage_reference_in_a_legacy_header_names_the_file(tmp_path):
    # Found by fuzzing: a damaged length let the sys-info header pickle run into a storage
    # reference, and that error alone did not name the file.
    pid = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ."
    path = tmp_path / "header.pth"
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001))
    path.write_bytes(head + b"\x80\x02" + pid)
    with pytest.raises(TorchCheckpointError, match=re.escape(f"{path}: unexpected storage")):
        load_torch_checkpoint(path)
