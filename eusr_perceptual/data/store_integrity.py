"""Whether a prepared patch store is what its manifest says: one refusal for every kind of damage.

A store (:mod:`eusr_perceptual.data.store`) is read by memory-mapping its shards at the offsets
its ``manifest.json`` gives, so a truncated, edited or crafted manifest, or changed shard bytes,
would otherwise give a traceback mid-run or, worse, silently wrong patches. Everything here
raises :class:`DamagedStoreError`, whose message is ``store <path> is damaged: <what>``:

* **schema with bounds** (hand-written; the manifest is small and fixed): every key present and
  no other, every value of its type and range; the settings valid :class:`StoreSettings`; each
  image's item, variant and shard index in range, its LR shapes exactly ``HR // scale``;
* **paths**: shard ``i`` is ``shards/<i:05d>.npy`` and nothing else (no ``../``, no absolute
  path), and resolves inside the store folder;
* **consistency**: the store key is the SHA-256 of its format, version, settings and sources
  (an edited setting such as the resize convention changes it), and ``manifest_sha256`` is the
  SHA-256 of the rest of the manifest (an edit that keeps the schema is caught too);
* **layout**: each shard is a 1-D uint8 ``.npy`` of the recorded size, and its images' HR and LR
  regions tile its pixels exactly (no region overlaps another, such as an LR offset into HR
  bytes, none runs past the end, no byte is left over);
* **checksums**: each shard's SHA-256 (checked in full by ``eusr-prepare --verify``, which reads
  the whole store) and the SHA-256 of a sample of it, at most :data:`SAMPLE_BLOCKS` blocks of
  :data:`SAMPLE_BLOCK_BYTES` at evenly spaced offsets (the whole shard when it is smaller),
  checked at every open: 1 MiB per shard, about 50 MiB for a DIV2K store of 8.8 GB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from eusr_perceptual.errors import ValueUsageError

#: Blocks of the sample checksum of a shard, and their size: at most 1 MiB read per shard at open.
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 1 << 16

_MAX_INDEX = 1 << 40  # beyond any real store; bounds offsets, sizes and counts
_MANIFEST_KEYS = ("format", "version", "key", "settings", "items", "complete", "files", "shards", "images",
                  "skipped", "seconds", "manifest_sha256")


class StoreError(ValueUsageError):
    """A store is partial, stale, of another version, or prepared with other settings."""


class DamagedStoreError(StoreError):
    """A store's files are not what its preparation wrote: ``store <path> is damaged: <what>``."""

    def __init__(self, root: str | Path, what: str):
        super().__init__(f"store {root} is damaged: {what}")
        self.what = what


class _Invalid(Exception):
    """A schema violation, turned into a :class:`DamagedStoreError` naming the file."""


def shard_name(index: int) -> str:
    """The path of shard ``index`` inside the store folder."""
    return f"shards/{index:05d}.npy"


def load_json(root: Path, name: str) -> Any:
    """The JSON document ``root / name``, or None when there is no such file.

    Raises:
        DamagedStoreError: the file cannot be read or is not JSON (truncated, empty...).
    """
    path = root / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DamagedStoreError(root, f"{name} is not readable JSON ({error})") from error


def plan_key(plan: dict) -> str:
    """The store key: SHA-256 of its format, version, settings and source list."""
    content = {name: plan[name] for name in ("format", "version", "settings", "items")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's content but its own ``manifest_sha256``."""
    content = {name: value for name, value in manifest.items() if name != "manifest_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- checksums


def _sample_ranges(size: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the sampled blocks of a file of ``size`` bytes (first and last included)."""
    if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES:
        return [(0, size)]
    last = size - SAMPLE_BLOCK_BYTES
    return [(round(i * last / (SAMPLE_BLOCKS - 1)), SAMPLE_BLOCK_BYTES) for i in range(SAMPLE_BLOCKS)]


def sample_sha256(path: Path) -> str:
    """SHA-256 of a sample of the file: :data:`SAMPLE_BLOCKS` evenly spaced blocks, or all of it."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for start, length in _sample_ranges(stream.seek(0, 2)):
            stream.seek(start)
            digest.update(stream.read(length))
    return digest.hexdigest()


def full_sha256(path: Path) -> str:
    """SHA-256 of the whole file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_shard_bytes(root: Path, index: int, record: dict, *, full: bool) -> None:
    """Compares shard ``index`` with its recorded sample (or, with ``full``, whole) SHA-256."""
    name = shard_name(index)
    field, actual = ("sha256", full_sha256(root / name)) if full else ("sample_sha256", sample_sha256(root / name))
    if actual != record[field]:
        raise DamagedStoreError(root, f"{name} does not match its recorded {'SHA-256' if full else 'checksum'} "
                                      "(its bytes changed after preparation); run eusr-prepare with the same "
                                      "arguments and --verify to repair it")


# ----------------------------------------------------------------------------- shard files


def shard_pixels(root: Path, index: int, size: int) -> tuple[int, int]:
    """``(offset, length)`` of the pixel bytes of shard ``index``, after checking that the file
    is inside the store, ``size`` bytes long, and a 1-D uint8 ``.npy`` that fills it exactly."""
    name = shard_name(index)
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise DamagedStoreError(root, f"{name} leads outside the store (to {path.resolve()})")
    if not path.is_file() or path.stat().st_size != size:
        raise DamagedStoreError(root, f"{name} is missing or not {size} bytes; "
                                      "run eusr-prepare again with the same arguments to repair it")
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read(stream)
            offset = stream.tell()
    except ValueError as error:  # numpy's "not a .npy" and "bad header" errors
        raise DamagedStoreError(root, f"{name} is not a .npy file ({error})") from error
    if dtype != np.uint8 or len(shape) != 1 or fortran_order or offset + shape[0] != size:
        raise DamagedStoreError(root, f"{name} holds a {dtype} array of shape {shape}, expected 1-D uint8 "
                                      f"filling its {size} bytes")
    return offset, shape[0]


def check_layout(root: Path, images: Sequence[dict], lengths: dict[int, int], where: str = "manifest.json") -> None:
    """Checks that the HR and LR regions of the images of each shard in ``lengths`` tile its
    pixel bytes (``lengths[shard]``); ``where`` names the file the regions come from."""
    regions: dict[int, list[tuple[int, int, str]]] = {shard: [] for shard in lengths}
    for entry in images:
        parts = [("HR", entry["hr"]), *((f"LR x{scale}", place) for scale, place in entry["lr"].items())]
        for part, (offset, height, width) in parts:
            regions[entry["shard"]].append((offset, offset + height * width * 3, f"{part} of image {entry['name']!r}"))
    for shard, length in lengths.items():
        end, previous = 0, "the start"
        for start, stop, what in sorted(regions[shard]):
            if start != end:
                problem = "overlaps" if start < end else "leaves a gap after"
                raise DamagedStoreError(root, f"{where}: the {what} at byte {start} of {shard_name(shard)} "
                                              f"{problem} {previous} (byte {end})")
            end, previous = stop, f"the {what}"
        if end != length:
            raise DamagedStoreError(root, f"{where}: the images of {shard_name(shard)} cover {end} bytes, "
                                          f"its pixels are {length} bytes")


# ----------------------------------------------------------------------------- schema


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is {_kind(value)}, expected an object")
    return value


def _object(value: Any, where: str, keys: Iterable[str], optional: Iterable[str] = ()) -> dict:
    """``value`` as an object with every one of ``keys``, and no key but those and ``optional``."""
    value = _mapping(value, where)
    keys, optional = list(keys), list(optional)
    missing = [key for key in keys if key not in value]
    unknown = [key for key in value if key not in keys and key not in optional]
    if missing:
        raise _Invalid(f"{where} lacks {', '.join(map(repr, missing))}")
    if unknown:
        raise _Invalid(f"{where} has unknown {'key' if len(unknown) == 1 else 'keys'} {', '.join(map(repr, unknown))}")
    return value


def _list(value: Any, where: str, length: int | None = None, at_least: int = 0) -> list:
    if not isinstance(value, list):
        raise _Invalid(f"{where} is {_kind(value)}, expected a list")
    if (length is not None and len(value) != length) or len(value) < at_least:
        raise _Invalid(f"{where} has {len(value)} elements, expected "
                       + (str(length) if length is not None else f"at least {at_least}"))
    return value


def _integer(value: Any, where: str, low: int = 0, high: int = _MAX_INDEX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{where} is {_kind(value)} ({json.dumps(value)[:40]}), expected an integer")
    if not low <= value <= high:
        raise _Invalid(f"{where} is {value}, expected {low} to {high}")
    return value


def _string(value: Any, where: str, hex_digest: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{where} is {_kind(value)}, expected a string")
    if hex_digest and (len(value) != 64 or value.strip("0123456789abcdef")):
        raise _Invalid(f"{where} is not a SHA-256 digest")
    return value


def _settings(value: Any, settings_type: type) -> Any:
    fields = [field.name for field in dataclasses.fields(settings_type)]
    value = _object(value, "settings", fields)
    for name in ("sources", "scales"):
        _list(value[name], f"settings.{name}", at_least=1)
    for i, source in enumerate(value["sources"]):
        _string(source, f"settings.sources[{i}]")
    for i, scale in enumerate(value["scales"]):
        _integer(scale, f"settings.scales[{i}]", 2, 1024)
    _string(value["convention"], "settings.convention")
    for name in ("crop", "step", "downscaled_copies", "images_per_shard"):
        _integer(value[name], f"settings.{name}", 1 if name == "images_per_shard" else 0, 1 << 20)
    try:
        settings = settings_type(**{**value, "sources": tuple(value["sources"]), "scales": tuple(value["scales"])})
    except ValueUsageError as error:
        raise _Invalid(f"settings: {error}") from error
    if list(settings.scales) != value["scales"]:
        raise _Invalid(f"settings.scales {value['scales']} are not sorted and unique")
    return settings


def _region(value: Any, where: str, min_side: int, shard_bytes: int) -> list[int]:
    """``[offset, height, width]`` of an RGB image inside a shard of ``shard_bytes`` bytes."""
    offset, height, width = _list(value, where, length=3)
    _integer(offset, f"{where} offset")
    _integer(height, f"{where} height", min_side, 1 << 20)
    _integer(width, f"{where} width", min_side, 1 << 20)
    if offset + height * width * 3 > shard_bytes:
        raise _Invalid(f"{where} ends at byte {offset + height * width * 3}, past its shard's {shard_bytes} bytes")
    return value


def _image(entry: Any, where: str, settings: Any, items: int, shard_bytes: Sequence[int]) -> None:
    """One image of a manifest (or marker): indices in range, HR and LR regions inside their
    shard (of ``shard_bytes[shard]`` bytes), each LR exactly ``HR // scale``."""
    entry = _object(entry, where, ("name", "item", "variant", "hr", "lr", "shipped", "shard"))
    _string(entry["name"], f"{where}.name")
    _integer(entry["item"], f"{where}.item", 0, items - 1)
    _integer(entry["variant"], f"{where}.variant", 0, 1 if settings.downscaled_copies else 0)
    size = shard_bytes[_integer(entry["shard"], f"{where}.shard", 0, len(shard_bytes) - 1)]
    _, height, width = _region(entry["hr"], f"{where}.hr", max(settings.crop, max(settings.scales)), size)
    if settings.crop and (height, width) != (settings.crop, settings.crop):
        raise _Invalid(f"{where}.hr is {width}x{height}, the store's sub-images are {settings.crop}x{settings.crop}")
    lr = _object(entry["lr"], f"{where}.lr", [str(scale) for scale in settings.scales])
    for scale in settings.scales:
        _, lr_height, lr_width = _region(lr[str(scale)], f"{where}.lr.{scale}", 1, size)
        if (lr_height, lr_width) != (height // scale, width // scale):
            raise _Invalid(f"{where}.lr.{scale} is {lr_width}x{lr_height}, but its HR {width}x{height} "
                           f"needs {width // scale}x{height // scale} at x{scale}")
    for i, scale in enumerate(_list(entry["shipped"], f"{where}.shipped")):
        if scale not in settings.scales:
            raise _Invalid(f"{where}.shipped[{i}] is {json.dumps(scale)[:40]}, not one of the scales")


def _source_digest(value: Any, where: str, tfds: bool) -> None:
    value = _object(value, where, ("sha256",) if tfds else ("sha256", "size", "mtime_ns"))
    _string(value["sha256"], f"{where}.sha256", hex_digest=True)
    if not tfds:
        _integer(value["size"], f"{where}.size")
        _integer(value["mtime_ns"], f"{where}.mtime_ns", -(1 << 62), 1 << 62)


def _sources_and_skips(record: dict, where: str) -> None:
    """The ``files`` (source digests) and ``skipped`` (name, reason) of a manifest or marker."""
    for path, digest in _mapping(record["files"], f"{where}files").items():
        _source_digest(digest, f"{where}files[{path!r}]", tfds="#" in path)
    for i, skip in enumerate(_list(record["skipped"], f"{where}skipped")):
        for j, text in enumerate(_list(skip, f"{where}skipped[{i}]", length=2)):
            _string(text, f"{where}skipped[{i}][{j}]")


def _check_schema(manifest: Any, settings_type: type, store_format: str, version: int) -> Any:
    manifest = _object(manifest, "manifest.json", _MANIFEST_KEYS)
    if manifest["format"] != store_format or manifest["version"] != version:
        raise _Invalid(f"format {json.dumps(manifest['format'])[:40]} version {json.dumps(manifest['version'])[:40]} "
                       f"is not {store_format!r} version {version}")
    if manifest["complete"] is not True:
        raise _Invalid(f"complete is {json.dumps(manifest['complete'])[:40]}: the store was not finished")
    _string(manifest["key"], "key", hex_digest=True)
    _string(manifest["manifest_sha256"], "manifest_sha256", hex_digest=True)
    settings = _settings(manifest["settings"], settings_type)
    items = _list(manifest["items"], "items", at_least=1)
    for i, item in enumerate(items):
        item = _object(item, f"items[{i}]", ("name", "hr", "lr"))
        _string(item["name"], f"items[{i}].name")
        _string(item["hr"], f"items[{i}].hr")
        for scale, path in _object(item["lr"], f"items[{i}].lr", (), [str(s) for s in settings.scales]).items():
            _string(path, f"items[{i}].lr.{scale}")
    shards = _list(manifest["shards"], "shards", length=math.ceil(len(items) / settings.images_per_shard))
    for i, shard in enumerate(shards):
        shard = _object(shard, f"shards[{i}]", ("file", "bytes", "sha256", "sample_sha256"))
        if shard["file"] != shard_name(i):
            raise _Invalid(f"shards[{i}].file is {json.dumps(shard['file'])[:80]}, expected {shard_name(i)!r}")
        _integer(shard["bytes"], f"shards[{i}].bytes", 1)
        _string(shard["sha256"], f"shards[{i}].sha256", hex_digest=True)
        _string(shard["sample_sha256"], f"shards[{i}].sample_sha256", hex_digest=True)
    for i, entry in enumerate(_list(manifest["images"], "images", at_least=1)):
        _image(entry, f"images[{i}]", settings, len(items), [shard["bytes"] for shard in shards])
    _sources_and_skips(manifest, "")
    if not isinstance(manifest["seconds"], (int, float)) or isinstance(manifest["seconds"], bool) \
            or not 0 <= manifest["seconds"] < math.inf:
        raise _Invalid(f"seconds is {json.dumps(manifest['seconds'])[:40]}, expected a duration")
    return settings


def check_manifest(root: Path, manifest: Any, settings_type: type, store_format: str, version: int) -> Any:
    """Checks a manifest's schema, bounds and key; returns its settings (``settings_type``).
    :func:`check_layout`, then :func:`check_manifest_digest`, complete the check.

    Raises:
        DamagedStoreError: naming the first problem found.
    """
    try:
        settings = _check_schema(manifest, settings_type, store_format, version)
    except _Invalid as error:
        raise DamagedStoreError(root, f"manifest.json: {error}") from None
    if plan_key(manifest) != manifest["key"]:
        raise DamagedStoreError(root, "manifest.json: its key is not the SHA-256 of its format, version, settings "
                                      "and sources (they were edited after preparation)")
    return settings


def check_manifest_digest(root: Path, manifest: dict) -> None:
    """Checks ``manifest_sha256``, after the checks that say more precisely what is wrong."""
    if manifest_digest(manifest) != manifest["manifest_sha256"]:
        raise DamagedStoreError(root, "manifest.json: its content does not match its manifest_sha256 "
                                      "(it was edited after preparation)")


def check_marker(root: Path, marker: Any, index: int, settings: Any, items: int) -> None:
    """Checks a shard's completion marker (``shards/<index>.json``) as the manifest's parts."""
    where = f"shards/{index:05d}.json"
    try:
        marker = _object(marker, where, ("shard", "bytes", "sha256", "sample_sha256", "entries", "files", "skipped",
                                          "key"))
        _integer(marker["shard"], f"{where} shard", index, index)
        _integer(marker["bytes"], f"{where} bytes", 1)
        for name in ("sha256", "sample_sha256", "key"):
            _string(marker[name], f"{where} {name}", hex_digest=True)
        for i, entry in enumerate(_list(marker["entries"], f"{where} entries")):
            _image({**entry, "shard": index} if isinstance(entry, dict) else entry, f"{where} entries[{i}]",
                   settings, items, [0] * index + [marker["bytes"]])
        _sources_and_skips(marker, f"{where} ")
    except _Invalid as error:
        raise DamagedStoreError(root, str(error)) from None
