"""Converting the published LPIPS weights (PyTorch) into the ``.npz`` :mod:`..lpips` loads.

Two PyTorch files are needed: LPIPS's linear layers (``weights/v0.1/alex.pth`` or
``vgg.pth`` of github.com/richzhang/PerceptualSimilarity, also inside the ``lpips`` wheel on
PyPI) and the torchvision ImageNet backbone (``alexnet-owt-7be5be79.pth`` or
``vgg16-397923af.pth``). They are read without PyTorch: :func:`read_torch_state_dict`
understands both of torch's file formats (the zip format of torch >= 1.6 and the legacy
pickle stream the LPIPS files use) for the dense tensors a state dict holds.

Layout changes: conv kernels ``[out, in, kh, kw]`` become Keras ``[kh, kw, in, out]``
(both frameworks cross-correlate, so nothing is flipped); lin weights ``[1, C, 1, 1]``
become ``[C]``.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import numpy as np

from eusr_perceptual.metrics.lpips import BACKBONE_CONVS, CHANNELS

__all__ = ["TORCHVISION_FEATURE_INDICES", "convert_lpips_weights", "read_torch_state_dict", "save_lpips_weights"]

#: Index of each convolution in torchvision's ``<net>.features`` (the state-dict keys).
TORCHVISION_FEATURE_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    """A torch storage being read: its dtype, and its data once known."""

    def __init__(self, dtype: type):
        self.dtype, self.data = dtype, None


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *_unused) -> "_Tensor":
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _Tensor:
    """A tensor view on a storage whose bytes may come later (legacy format)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data[self.offset :]
        itemsize = data.itemsize
        return np.lib.stride_tricks.as_strided(data, self.size, [s * itemsize for s in self.stride]).copy()


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into :class:`_Tensor` views, allowing nothing else."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"not a plain state dict of tensors: it references {module}.{name}")

    def persistent_load(self, pid):
        _, dtype, key, *_ = pid  # ('storage', storage type, key, location, numel[, view])
        return self.storages.setdefault(str(key), _Storage(dtype))


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next(name for name in names if name.endswith("data.pkl"))
        prefix = pickle_name[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        state = _StateDictUnpickler(io.BytesIO(archive.read(pickle_name)), storages).load()
        for key, storage in storages.items():
            storage.data = np.frombuffer(archive.read(f"{prefix}data/{key}"), storage.dtype)
    return {name: tensor.to_numpy() for name, tensor in state.items()}


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    """torch's pre-1.6 stream: magic, protocol, sys info, the state dict, the storage keys,
    then each storage as an int64 element count and its raw little-endian bytes."""
    with path.open("rb") as stream:
        for _ in range(3):
            pickle.load(stream)
        storages: dict[str, _Storage] = {}
        state = _StateDictUnpickler(stream, storages).load()
        for key in pickle.load(stream):
            count = int(np.frombuffer(stream.read(8), "<i8")[0])
            dtype = np.dtype(storages[str(key)].dtype)
            storages[str(key)].data = np.frombuffer(stream.read(count * dtype.itemsize), dtype)
    return {name: tensor.to_numpy() for name, tensor in state.items()}


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``.pth`` state dict as numpy arrays, without PyTorch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PyTorch weights file not found: {path}")
    try:
        return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except (pickle.UnpicklingError, EOFError, StopIteration, KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not a PyTorch state dict of plain tensors: {error}") from error


def _backbone_index(key: str) -> tuple[int, str] | None:
    """``(feature index, 'weight' | 'bias')`` of a torchvision (``features.N.weight``) or
    LPIPS-package (``net.sliceK.N.weight``) backbone key."""
    match = re.search(r"(?:^|\.)(?:features|slice\d)\.(\d+)\.(weight|bias)$", key)
    return (int(match.group(1)), match.group(2)) if match else None


def convert_lpips_weights(
    linear_state: Mapping[str, np.ndarray], backbone_state: Mapping[str, np.ndarray], net: str
) -> dict[str, np.ndarray]:
    """Arrays for :func:`eusr_perceptual.metrics.lpips.load_lpips` from the two PyTorch state dicts.

    Raises:
        ValueError: a layer is missing or has the wrong shape for ``net``.
    """
    if net not in CHANNELS:
        raise ValueError(f"net must be one of {sorted(CHANNELS)}, got {net!r}")
    by_index = {}
    for key, value in backbone_state.items():
        found = _backbone_index(key)
        if found:
            by_index[found] = np.asarray(value)
    arrays: dict[str, np.ndarray] = {"net": np.array(net)}
    for name, index in zip(BACKBONE_CONVS[net], TORCHVISION_FEATURE_INDICES[net]):
        if (index, "weight") not in by_index or (index, "bias") not in by_index:
            raise ValueError(f"backbone state dict has no features.{index}.weight/bias (the {name} of {net})")
        kernel = by_index[(index, "weight")]
        if kernel.ndim != 4:
            raise ValueError(f"features.{index}.weight has shape {kernel.shape}, expected [out, in, kh, kw]")
        arrays[f"{name}/kernel"] = np.transpose(kernel, (2, 3, 1, 0)).astype(np.float32)
        arrays[f"{name}/bias"] = by_index[(index, "bias")].astype(np.float32)
    for i, channels in enumerate(CHANNELS[net]):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lin{i}.model.0.weight") if k in linear_state), None)
        if key is None:
            raise ValueError(f"LPIPS state dict has no lin{i}.model.1.weight (is it the {net} file?)")
        weight = np.asarray(linear_state[key], np.float32)
        if weight.shape != (1, channels, 1, 1):
            raise ValueError(f"{key} has shape {weight.shape}, LPIPS-{net} needs (1, {channels}, 1, 1)")
        arrays[f"lin{i}"] = weight.reshape(channels)
    return arrays


def save_lpips_weights(arrays: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Writes converted arrays as the ``.npz`` :func:`..lpips.load_lpips` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path
