"""LPIPS: torchvision-shaped backbones, torch-free weight conversion, no random numbers.

Weights files are untrusted: pickles that would run code (``os.system``, ``builtins.exec``)
and crafted tensor headers (out-of-bounds strides, huge shapes, negative offsets, storages
longer than the file) must be refused with a clear error, in both of torch's formats.
"""

import io
import os
import pickle
import shlex
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from eusr_perceptual.metrics.lpips import BACKBONE_CONVS, CHANNELS, LPIPSUnavailable, build_backbone, load_lpips
from eusr_perceptual.importers.lpips import TORCHVISION_FEATURE_INDICES, convert_lpips_weights, save_lpips_weights
from eusr_perceptual.importers.torch_files import MAX_ELEMENTS, MAX_EXPANSION, TorchFileError, read_torch_state_dict

REPO = Path(__file__).resolve().parents[2]

# torchvision conv shapes [out, in, kh, kw] of alexnet().features.
ALEX_SHAPES = [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)]


def fake_alex_states(seed=0):
    """Numpy state dicts shaped like torchvision's alexnet and LPIPS's alex.pth."""
    rng = np.random.default_rng(seed)
    backbone = OrderedDict()
    for index, shape in zip(TORCHVISION_FEATURE_INDICES["alex"], ALEX_SHAPES):
        backbone[f"features.{index}.weight"] = rng.normal(0, 0.05, shape).astype(np.float32)
        backbone[f"features.{index}.bias"] = rng.normal(0, 0.05, shape[0]).astype(np.float32)
    backbone["classifier.1.weight"] = np.zeros((4, 2), np.float32)  # ignored
    linear = OrderedDict(
        (f"lin{i}.model.1.weight", rng.uniform(0, 1, (1, c, 1, 1)).astype(np.float32)) for i, c in enumerate(CHANNELS["alex"])
    )
    return linear, backbone


def write_torch_file(state, path, legacy, monkeypatch, views=None, counts=None, aliases=None):
    """Writes ``state`` as torch.save would (zip or legacy format), without torch: the
    pickle references torch._utils._rebuild_tensor_v2 and torch.FloatStorage by name.

    ``views`` maps a tensor name to a crafted ``(offset, size, stride)``; ``counts`` maps it
    to a crafted element count of its storage (the legacy format's count field); ``aliases``
    maps a tensor name to the name whose storage it shares (stored once, as torch does)."""
    views, counts, aliases = views or {}, counts or {}, aliases or {}
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only used as a pickled name")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch_module.FloatStorage, torch_module._utils, utils_module._rebuild_tensor_v2 = FloatStorage, utils_module, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch_module)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_module)

    class StorageRef:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, ref, view):
            self.ref, self.view = ref, view

        def __reduce__(self):
            return _rebuild_tensor_v2, (self.ref, *self.view, False, OrderedDict())

    def contiguous_view(array):
        return 0, array.shape, tuple(s // array.itemsize for s in array.strides)

    refs = {name: StorageRef(str(i), np.ascontiguousarray(a, np.float32)) for i, (name, a) in enumerate(state.items())}
    refs.update({name: refs[source] for name, source in aliases.items()})
    wrapped = OrderedDict((name, Tensor(refs[name], views.get(name) or contiguous_view(refs[name].array))) for name in state)
    owners = {}  # storage key -> (first tensor name, storage)
    for name, ref in refs.items():
        owners.setdefault(ref.key, (name, ref))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", FloatStorage, obj.key, "cpu", obj.array.size)
            return None

    body = io.BytesIO()
    Pickler(body, protocol=2).dump(wrapped)
    if legacy:
        with open(path, "wb") as stream:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                pickle.dump(header, stream, protocol=2)
            stream.write(body.getvalue())
            pickle.dump(list(owners), stream, protocol=2)
            for name, ref in owners.values():
                stream.write(np.int64(counts.get(name, ref.array.size)).tobytes() + ref.array.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", body.getvalue())
            for _, ref in owners.values():
                archive.writestr(f"archive/data/{ref.key}", ref.array.tobytes())


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_state_dicts_are_read_without_torch(tmp_path, monkeypatch, legacy):
    linear, backbone = fake_alex_states()
    state = {**linear, "features.3.weight": backbone["features.3.weight"]}
    path = tmp_path / "weights.pth"
    write_torch_file(state, path, legacy, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    loaded = read_torch_state_dict(path)
    assert list(loaded) == list(state)
    for name in state:
        np.testing.assert_array_equal(loaded[name], state[name])


def test_reader_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(subprocess.Popen, protocol=2))
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        read_torch_state_dict(path)


# ---------------------------------------------------------------------------------------------
# Payloads that would run code if unpickled with plain pickle.load.


class SystemPayload:
    """Unpickling calls ``os.system("touch <marker>")`` (pickled as the global posix.system)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class ExecPayload:
    """Unpickling calls ``builtins.exec`` on code writing the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


# The global each payload references, as the refusal names it (protocol 2 writes builtins as __builtin__).
PAYLOADS = {"os.system": (SystemPayload, f"{os.system.__module__}.system"), "builtins.exec": (ExecPayload, "__builtin__.exec")}
LEGACY_HEADERS = (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})


def evil_file(path, marker, payload, where):
    """A .pth whose pickle at ``where`` is the payload: ``zip`` (data.pkl), or in the legacy
    stream the ``magic`` header (plain pickle.load read it before the fix), the ``state``
    dict or the storage-``keys`` list."""
    evil = pickle.dumps(PAYLOADS[payload][0](marker), protocol=2)
    if where == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", evil)
        return path
    parts = [pickle.dumps(h, protocol=2) for h in LEGACY_HEADERS] + [pickle.dumps(OrderedDict(), protocol=2), pickle.dumps([], protocol=2)]
    parts[{"magic": 0, "state": 3, "keys": 4}[where]] = evil
    path.write_bytes(b"".join(parts))
    return path


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_payloads_are_live(tmp_path, payload):
    """Control: plain pickle.load of each payload does write the marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(PAYLOADS[payload][0](marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("where", ["zip", "magic", "state", "keys"])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_code_in_a_weights_file_never_runs(tmp_path, payload, where):
    marker = tmp_path / "ran"
    path = evil_file(tmp_path / "evil.pth", marker, payload, where)
    with pytest.raises(TorchFileError, match=f"refused to load the global {PAYLOADS[payload][1]}"):
        read_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_conversion_script_refuses_code_in_either_file(tmp_path, monkeypatch, capsys, payload):
    from eusr_perceptual.cli import convert_lpips_weights as script

    linear, backbone = fake_alex_states()
    write_torch_file(backbone, tmp_path / "alexnet.pth", False, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    marker, out = tmp_path / "ran", tmp_path / "lpips.npz"
    for where in ("magic", "zip"):
        evil = evil_file(tmp_path / f"evil_{where}.pth", marker, payload, where)
        assert script.main(["--lpips", str(evil), "--backbone", str(tmp_path / "alexnet.pth"), "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1 and PAYLOADS[payload][1] in error
    assert not marker.exists() and not out.exists()


# ---------------------------------------------------------------------------------------------
# Crafted tensor headers.

TEN = np.arange(16, dtype=np.float32).reshape(4, 4)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
@pytest.mark.parametrize(
    "view,message",
    [
        ((0, (4, 4), (4, 2)), "reads element 18 of storage 0, which has 16"),      # out-of-bounds stride
        ((0, (20,), (1,)), "reads element 19 of storage 0, which has 16"),          # past the end (was read silently)
        ((0, (2**20, 2**20), (0, 0)), f"more than {MAX_ELEMENTS}"),                # huge shape, before allocating
        ((-4, (4,), (1,)), "negative tensor offset"),                               # negative offset
        ((0, (4, 4), (-4, 1)), "negative tensor offset, size or stride"),           # negative stride
        ((0, (4, 4.0), (4, 1)), "must be integers"),
    ],
    ids=["stride", "past-end", "huge", "negative-offset", "negative-stride", "float-size"],
)
def test_crafted_tensor_headers_are_refused(tmp_path, monkeypatch, legacy, view, message):
    path = tmp_path / "crafted.pth"
    write_torch_file({"w": TEN}, path, legacy, monkeypatch, views={"w": view})
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(TorchFileError, match=message):
        read_torch_state_dict(path)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_views_cannot_expand_the_bytes_of_the_file(tmp_path, monkeypatch, legacy):
    # A stride-0 view repeats one element: 2**20 elements (4 MiB) from 16 (64 bytes). The same
    # header with 2**31 elements made a 529-byte file a 16 GiB array; this size keeps the old
    # code's copy small while showing that the element count alone (under MAX_ELEMENTS) let it pass.
    path = tmp_path / "expanded.pth"
    write_torch_file({"w": TEN}, path, legacy, monkeypatch, views={"w": (0, (2**20,), (0,))})
    monkeypatch.delitem(sys.modules, "torch")
    assert 2**20 < MAX_ELEMENTS
    with pytest.raises(TorchFileError, match=r"repeats elements: its 1048576 elements \(4194304 bytes\) exceed the 16 "
                                             r"of storage 0 \(64 bytes\)"):
        read_torch_state_dict(path)
    # One view named many times: each is inside its storage, all together 6 times its bytes.
    names = {"w": TEN, **{f"copy{i}": TEN for i in range(5)}}
    write_torch_file(names, path, legacy, monkeypatch, aliases={f"copy{i}": "w" for i in range(5)})
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(TorchFileError, match=f"expand 64 bytes of storage to 384 bytes \\(more than {MAX_EXPANSION}x"):
        read_torch_state_dict(path)
    write_torch_file(dict(list(names.items())[:2]), path, legacy, monkeypatch, aliases={"copy0": "w"})  # tied weights
    monkeypatch.delitem(sys.modules, "torch")
    loaded = read_torch_state_dict(path)
    np.testing.assert_array_equal(loaded["copy0"], TEN)


def test_strided_views_inside_the_storage_are_read(tmp_path, monkeypatch):
    path = tmp_path / "view.pth"
    write_torch_file({"w": TEN}, path, True, monkeypatch, views={"w": (1, (2, 3), (5, 2))})
    monkeypatch.delitem(sys.modules, "torch")
    np.testing.assert_array_equal(read_torch_state_dict(path)["w"], [[1, 3, 5], [6, 8, 10]])


@pytest.mark.parametrize("count,message", [(2**40, "claims 1099511627776 elements"), (15, "claims 15 elements"), (-1, "claims -1")])
def test_legacy_storage_sizes_must_match_the_header_and_the_file(tmp_path, monkeypatch, count, message):
    path = tmp_path / "counted.pth"
    write_torch_file({"w": TEN}, path, True, monkeypatch, counts={"w": count})
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(TorchFileError, match=message):
        read_torch_state_dict(path)


def test_zip_storage_shorter_than_its_header_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "short.pth"
    write_torch_file({"w": TEN}, path, False, monkeypatch)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["archive/data/0"] = entries["archive/data/0"][:32]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(TorchFileError, match="archive/data/0 unpacks to 32 bytes; its header says 64 bytes"):
        read_torch_state_dict(path)


def test_zip_entries_that_unpack_beyond_the_archive_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "deflated.pth"
    write_torch_file({"w": np.zeros((64, 64), np.float32)}, path, False, monkeypatch)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # 16 kB of zeros -> a few bytes
        for name, data in entries.items():
            archive.writestr(name, data)
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(TorchFileError, match=r"archive/data/0 unpacks to 16384 bytes; the archive has \d+"):
        read_torch_state_dict(path)


def test_conversion_transposes_kernels_and_flattens_lin_weights():
    linear, backbone = fake_alex_states()
    arrays = convert_lpips_weights(linear, backbone, "alex")
    assert str(arrays["net"]) == "alex"
    kernel = arrays["conv2/kernel"]
    assert kernel.shape == (5, 5, 64, 192)
    np.testing.assert_array_equal(kernel[1, 2, 3, 4], backbone["features.3.weight"][4, 3, 1, 2])
    np.testing.assert_array_equal(arrays["lin1"], linear["lin1.model.1.weight"].reshape(-1))
    # LPIPS-package keys (net.sliceK.<torchvision index>) are understood too.
    renamed = {k.replace("features.", "net.slice1."): v for k, v in backbone.items()}
    np.testing.assert_array_equal(convert_lpips_weights(linear, renamed, "alex")["conv5/kernel"], arrays["conv5/kernel"])
    with pytest.raises(ValueError, match="features.10"):
        convert_lpips_weights(linear, {k: v for k, v in backbone.items() if "features.10" not in k}, "alex")
    with pytest.raises(ValueError, match="lin0"):
        convert_lpips_weights({}, backbone, "alex")


@pytest.mark.parametrize(
    "net,taps", [("alex", [(15, 64), (7, 192), (3, 384), (3, 256), (3, 256)]), ("vgg", [(64, 64), (32, 128), (16, 256), (8, 512), (4, 512)])]
)
def test_backbones_tap_torchvision_shaped_layers(net, taps):
    backbone = build_backbone(net)
    outputs = backbone(np.zeros((1, 64, 64, 3), np.float32))
    assert [(o.shape[1], o.shape[-1]) for o in outputs] == taps
    assert len(BACKBONE_CONVS[net]) == len(TORCHVISION_FEATURE_INDICES[net])


def test_converted_weights_load_and_give_a_distance(tmp_path):
    linear, backbone = fake_alex_states()
    path = save_lpips_weights(convert_lpips_weights(linear, backbone, "alex"), tmp_path / "lpips_alex.npz")
    lpips = load_lpips(path)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    assert float(lpips(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(lpips(a, b)) > 0
    assert float(lpips(a, b)) == pytest.approx(float(lpips(b, a)), rel=1e-5)
    batch = lpips(np.stack([a, a]), np.stack([a, b])).numpy()
    assert batch.shape == (2,) and batch[0] == pytest.approx(0.0, abs=1e-6)


def test_missing_or_bad_weights_give_a_reason_not_a_number(tmp_path):
    with pytest.raises(LPIPSUnavailable, match="no LPIPS weights given"):
        load_lpips(None)
    with pytest.raises(LPIPSUnavailable, match="not found"):
        load_lpips(tmp_path / "absent.npz")
    np.savez(tmp_path / "partial.npz", net=np.array("alex"), lin0=np.ones(64))
    with pytest.raises(LPIPSUnavailable, match="lacks conv1/kernel"):
        load_lpips(tmp_path / "partial.npz")


def test_conversion_script_end_to_end(tmp_path, monkeypatch):
    linear, backbone = fake_alex_states()
    write_torch_file(linear, tmp_path / "alex.pth", True, monkeypatch)
    write_torch_file(backbone, tmp_path / "alexnet.pth", False, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    from eusr_perceptual.cli import convert_lpips_weights as script

    out = tmp_path / "out" / "lpips_alex.npz"
    argv = ["--net", "alex", "--lpips", str(tmp_path / "alex.pth"), "--backbone", str(tmp_path / "alexnet.pth"), "--out", str(out)]
    assert script.main(argv) == 0
    assert load_lpips(out).net == "alex"
    assert script.main(["--lpips", str(tmp_path / "nope.pth"), "--backbone", str(tmp_path / "alexnet.pth"), "--out", str(out)]) == 2
