"""Reading PyTorch ``.pth`` / ``.pt`` files without PyTorch: the state dicts of released weights.

:func:`read_torch_state_dict` understands both of torch's file formats (the zip format of
torch >= 1.6 and the legacy pickle stream of older files, e.g. the LPIPS weights and
ESRGAN's ``RRDB_ESRGAN_x4.pth``) for the dense tensors a state dict holds, and BasicSR's
wrapping of state dicts in a dict (``{"params": ..., "params_ema": ...}``). The LPIPS
converter (:mod:`eusr_perceptual.importers.lpips`) and the weights importers
(:mod:`eusr_perceptual.importers.pytorch`) both read through it.

A weights file is untrusted input. Every pickle in it (the legacy format's header pickles,
the state dict, the storage-key list; the zip format's ``data.pkl``) goes through one
restricted unpickler whose allow-list is exactly what a state dict of tensors references:
``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and torch's typed storage
classes, matched by name and never imported (torch need not be installed). Any other global
(``os.system``, ``builtins.exec``...) is refused before anything runs, naming the global.
Storage sizes, offsets, shapes and strides are checked before any allocation or
``as_strided`` view: every element a tensor reads lies inside its storage, no storage holds
more bytes than the file, and nothing exceeds :data:`MAX_ELEMENTS`. The bytes the views expand
to are bounded too: no tensor has more elements than its storage (a stride-0 view of one
element would otherwise turn a 529-byte file into a 16 GiB array), and all tensors together
hold at most :data:`MAX_EXPANSION` times the storage bytes of the file (one view repeated under
many names).
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from eusr_perceptual.errors import PathUsageError, ValueUsageError

__all__ = ["MAX_ELEMENTS", "MAX_EXPANSION", "TorchFileError", "read_torch_state_dict"]

#: Largest storage or tensor read, in elements (VGG16's largest tensor has 102,760,448).
MAX_ELEMENTS = 2**31
#: Largest total of the arrays read, in multiples of the storage bytes in the file: a state
#: dict's tensors are views of their storages, a storage shared by at most a few (tied weights).
MAX_EXPANSION = 4
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
_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class TorchFileError(ValueUsageError):
    """A ``.pth`` file is not a plain state dict of tensors, or is unsafe or inconsistent."""


class _Storage:
    """A torch storage being read: its little-endian dtype, its declared length, then its data."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, None

    def attach(self, raw: bytes) -> None:
        if len(raw) != self.numel * self.dtype.itemsize:
            raise TorchFileError(f"storage {self.key} has {len(raw)} bytes, its header says {self.numel} x {self.dtype.itemsize}")
        self.data = np.frombuffer(raw, self.dtype)


def _is_int(value) -> bool:
    return type(value) is int  # not bool, float or an object pretending to be a number


class _Tensor(NamedTuple):
    """A tensor view ``(storage, offset, size, stride)`` whose storage bytes may come later.

    A tuple, so that a pickle cannot change the fields after :func:`_rebuild_tensor` made it.
    """

    storage: object
    offset: object
    size: tuple
    stride: tuple

    def check(self) -> int:
        """Validates the view against its storage; returns its number of elements."""
        if not isinstance(self.storage, _Storage):
            raise TorchFileError("a tensor does not refer to a storage")
        if not all(_is_int(v) for v in (self.offset, *self.size, *self.stride)):
            raise TorchFileError(f"tensor offset/size/stride must be integers: {self.offset!r}, {self.size!r}, {self.stride!r}")
        if len(self.size) != len(self.stride):
            raise TorchFileError(f"tensor size {self.size} and stride {self.stride} differ in length")
        if self.offset < 0 or min((*self.size, *self.stride), default=0) < 0:
            raise TorchFileError(f"negative tensor offset, size or stride: {self.offset}, {self.size}, {self.stride}")
        elements = math.prod(self.size)
        if elements > MAX_ELEMENTS:
            raise TorchFileError(f"tensor of shape {self.size} has {elements} elements (more than {MAX_ELEMENTS})")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if elements and last >= self.storage.numel:
            raise TorchFileError(
                f"tensor (offset {self.offset}, shape {self.size}, stride {self.stride}) reads element {last} "
                f"of storage {self.storage.key}, which has {self.storage.numel}"
            )
        if elements > self.storage.numel:
            raise TorchFileError(
                f"tensor (shape {self.size}, stride {self.stride}) repeats elements: its {elements} elements "
                f"({elements * self.storage.dtype.itemsize} bytes) exceed the {self.storage.numel} of storage "
                f"{self.storage.key} ({self.storage.numel * self.storage.dtype.itemsize} bytes)"
            )
        if self.storage.data is None:
            raise TorchFileError(f"storage {self.storage.key} has no data in the file")
        return elements

    def to_numpy(self) -> np.ndarray:
        if not self.check():
            return np.zeros(self.size, self.storage.dtype)
        data = self.storage.data[self.offset :]
        strides = [s * data.itemsize for s in self.stride]
        return np.lib.stride_tricks.as_strided(data, self.size, strides, writeable=False).copy()


def _rebuild_tensor(storage, offset, size, stride, *_unused) -> _Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2`` (requires_grad, hooks, metadata unused)."""
    try:
        return _Tensor(storage, offset, tuple(size), tuple(stride))
    except TypeError:
        raise TorchFileError(f"tensor size {size!r} / stride {stride!r} are not sequences") from None


#: The only globals a weights pickle may reference, by (module, name).
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    **{("torch", name): np.dtype(dtype).newbyteorder("<") for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles builtin values plus the state-dict globals of :data:`_ALLOWED_GLOBALS`.

    With ``storages`` (the state dict), torch's persistent storage ids become
    :class:`_Storage` objects registered there; without (header pickles), they are refused.
    """

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise TorchFileError(
                f"refused to load the global {module}.{name}: a weights file may reference only "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types"
            )
        return found

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata (legacy format)])
        if self.storages is None or not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise TorchFileError(f"unexpected persistent id {pid!r:.80}")
        dtype, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(dtype, np.dtype) or not _is_int(numel) or not 0 <= numel <= MAX_ELEMENTS:
            raise TorchFileError(f"storage {key}: bad type {dtype!r:.40} or size {numel!r:.40}")
        if len(pid) == 6 and pid[5] is not None:
            raise TorchFileError(f"storage {key} is a view of another storage (not supported)")
        storage = self.storages.setdefault(key, _Storage(key, dtype, numel))
        if (storage.dtype, storage.numel) != (dtype, numel):
            raise TorchFileError(f"storage {key} is declared twice with different types or sizes")
        return storage


def _unpickle(stream: BinaryIO, storages: dict[str, _Storage] | None = None):
    return _RestrictedUnpickler(stream, storages).load()


def _check_state(state, nested: bool) -> None:
    """Validates every tensor view of a state dict (or, when ``nested``, of a dict whose values
    may also be state dicts: BasicSR's ``{"params": ..., "params_ema": ...}``) before any
    data is copied."""
    if not isinstance(state, dict):
        raise TorchFileError(f"holds a {type(state).__name__}, not a state dict")
    for name, value in state.items():
        if nested and isinstance(value, dict):
            _check_state(value, nested=False)
        elif not isinstance(value, _Tensor):
            raise TorchFileError(f"entry {name!r} is a {type(value).__name__}, not a tensor")
        else:
            value.check()


def _to_numpy(state: dict) -> dict:
    return {str(name): _to_numpy(value) if isinstance(value, dict) else value.to_numpy() for name, value in state.items()}


def _views(state: dict):
    """Every tensor of a (nested) state dict, as often as it is named."""
    for value in state.values():
        yield from _views(value) if isinstance(value, dict) else (value,)


def _tensors(state, storages: dict[str, _Storage]) -> dict:
    _check_state(state, nested=True)
    stored = sum(storage.numel * storage.dtype.itemsize for storage in storages.values())
    expanded = sum(math.prod(view.size) * view.storage.dtype.itemsize for view in _views(state))
    if expanded > MAX_EXPANSION * stored:
        raise TorchFileError(f"its tensors expand {stored} bytes of storage to {expanded} bytes "
                             f"(more than {MAX_EXPANSION}x: views repeated under many names)")
    return _to_numpy(state)


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    """torch >= 1.6: ``<prefix>/data.pkl`` plus one uncompressed entry per storage.

    torch stores every entry uncompressed, so no entry may unpack to more bytes than the
    archive holds (a compressed entry could otherwise claim gigabytes).
    """
    limit = path.stat().st_size

    def entry(name: str, expected: int | None = None) -> bytes:
        info = archive.getinfo(name)  # sizes are checked before reading
        if info.file_size > limit:
            raise TorchFileError(f"{name} unpacks to {info.file_size} bytes; the archive has {limit}")
        if expected is not None and info.file_size != expected:
            raise TorchFileError(f"{name} unpacks to {info.file_size} bytes; its header says {expected} bytes")
        return archive.read(info)

    with zipfile.ZipFile(path) as archive:
        pickle_name = next((name for name in archive.namelist() if name.endswith("data.pkl")), None)
        if pickle_name is None:
            raise TorchFileError("a zip archive without data.pkl")
        prefix = pickle_name[: -len("data.pkl")]
        if prefix + "byteorder" in archive.namelist() and entry(prefix + "byteorder") != b"little":
            raise TorchFileError("big-endian tensors (not supported)")
        storages: dict[str, _Storage] = {}
        state = _unpickle(io.BytesIO(entry(pickle_name)), storages)
        for key, storage in storages.items():
            storage.attach(entry(f"{prefix}data/{key}", storage.numel * storage.dtype.itemsize))
        return _tensors(state, storages)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    """torch's pre-1.6 stream: magic, protocol, sys info, the state dict, the storage keys,
    then each storage as an int64 element count and its raw little-endian bytes."""
    file_size = path.stat().st_size
    with path.open("rb") as stream:
        magic, protocol, sys_info = _unpickle(stream), _unpickle(stream), _unpickle(stream)
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise TorchFileError(f"not a torch file (magic {magic!r:.40}, protocol {protocol!r:.40})")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise TorchFileError("big-endian or unknown byte order (not supported)")
        storages: dict[str, _Storage] = {}
        state = _unpickle(stream, storages)
        keys = _unpickle(stream)
        if not isinstance(keys, list):
            raise TorchFileError("the storage-key list is missing")
        for key in map(str, keys):
            if key not in storages:
                raise TorchFileError(f"storage {key} holds data but no tensor refers to it")
            storage = storages[key]
            count = int.from_bytes(stream.read(8), "little", signed=True)
            needed = count * storage.dtype.itemsize
            if count != storage.numel or needed > file_size - stream.tell():
                raise TorchFileError(
                    f"storage {key} claims {count} elements ({needed} bytes); its header says {storage.numel} "
                    f"and {file_size - stream.tell()} bytes are left in the file"
                )
            storage.attach(stream.read(needed))
        return _tensors(state, storages)


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``.pth`` state dict as numpy arrays, without PyTorch.

    A file holding a dict of state dicts (BasicSR's ``{"params": ..., "params_ema": ...}``)
    gives a dict of such dicts.

    Raises:
        PathUsageError: the file does not exist.
        TorchFileError: anything but a consistent state dict of plain tensors (the message
            names the refused global or the inconsistent size).
    """
    path = Path(path)
    if not path.is_file():
        raise PathUsageError(f"PyTorch weights file not found: {path}")
    try:
        return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError, TypeError, zipfile.BadZipFile) as error:
        raise TorchFileError(f"{path} is not a PyTorch state dict of plain tensors: {error}") from error
