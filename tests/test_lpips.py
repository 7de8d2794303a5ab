"""LPIPS: torchvision-shaped backbones, torch-free weight conversion, no random numbers."""

import io
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from eusr_perceptual.metrics.lpips import BACKBONE_CONVS, CHANNELS, LPIPSUnavailable, build_backbone, load_lpips
from eusr_perceptual.metrics.lpips_weights import (
    TORCHVISION_FEATURE_INDICES,
    convert_lpips_weights,
    read_torch_state_dict,
    save_lpips_weights,
)

REPO = Path(__file__).resolve().parents[1]

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


def write_torch_file(state, path, legacy, monkeypatch):
    """Writes ``state`` as torch.save would (zip or legacy format), without torch: the
    pickle references torch._utils._rebuild_tensor_v2 and torch.FloatStorage by name."""
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
        def __init__(self, ref, array):
            self.ref, self.array = ref, array

        def __reduce__(self):
            stride = tuple(s // self.array.itemsize for s in self.array.strides)
            return _rebuild_tensor_v2, (self.ref, 0, self.array.shape, stride, False, OrderedDict())

    refs = {name: StorageRef(str(i), np.ascontiguousarray(a, np.float32)) for i, (name, a) in enumerate(state.items())}
    wrapped = OrderedDict((name, Tensor(refs[name], refs[name].array)) for name in state)

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
            pickle.dump([ref.key for ref in refs.values()], stream, protocol=2)
            for ref in refs.values():
                stream.write(np.int64(ref.array.size).tobytes() + ref.array.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", body.getvalue())
            for ref in refs.values():
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
