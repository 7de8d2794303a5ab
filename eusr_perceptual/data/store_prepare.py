"""Preparing a patch store (``eusr-prepare``): the layout and the reading side are in
:mod:`eusr_perceptual.data.store`.

Preparation (:func:`prepare_store`) runs shards in parallel processes; a shard is written to
a temporary name, flushed to disk and renamed (``os.replace``), and only then is its marker
written, so an interrupted run leaves either finished shards or temporary files that the
next run deletes, never a half-written shard that would be read. Running the same command
again resumes: finished shards whose source files are unchanged (size and mtime, else
SHA-256) and whose marker and bytes are intact are kept. The worker processes end with the
process that started them, however it ends.
"""


from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator, Sequence

import keras
import numpy as np

from eusr_perceptual.data.images import EmptySourceError, TrainingImage, UnreadableImageError, load_rgb8
from eusr_perceptual.data.sources import parse_tfds_spec, source_files, tfds_hr_images, with_downscaled_copies
from eusr_perceptual.data.store import (
    STORE_FORMAT, STORE_VERSION, StoreSettings, changed_files, file_digest, shard_path,
)
from eusr_perceptual.data.store_integrity import (
    DamagedStoreError, StoreError, check_layout, check_manifest, check_manifest_digest, check_marker,
    check_shard_bytes, load_json, manifest_digest, plan_key, sample_sha256, shard_name, shard_pixels,
)
from eusr_perceptual.errors import PathUsageError
from eusr_perceptual.files import prepare_output_folder, write_json_atomically
from eusr_perceptual.resize import make_lr

log = logging.getLogger(__name__)

def _tfds_items(spec: str) -> list[dict]:
    import tensorflow_datasets as tfds  # lazy: slow to import, and only tfds: sources need it

    name, split, data_dir = parse_tfds_spec(spec)
    try:
        count = tfds.builder(name, data_dir=data_dir).info.splits[split].num_examples
    except Exception as error:  # TFDS raises several types for "not prepared here"
        raise PathUsageError(f"TFDS dataset {name!r} ({split}) is not prepared in "
                             f"{data_dir or '~/tensorflow_datasets'}: {error}") from error
    return [{"name": f"{name}_{i:04d}", "hr": f"{spec}#{i}", "lr": {}} for i in range(count)]


def _plan_items(settings: StoreSettings) -> list[dict]:
    """Every source image as ``{"name", "hr": path or tfds reference, "lr": {scale: path}}``."""
    items = []
    for spec in settings.sources:
        if spec.startswith("tfds:"):
            items.extend(_tfds_items(spec))
        else:
            items.extend({"name": f.name, "hr": str(Path(f.hr).resolve()),
                          "lr": {str(s): str(Path(p).resolve()) for s, p in sorted(f.lr.items())}}
                         for f in source_files(spec, settings.scales))
    if not items:
        raise EmptySourceError(f"no image file in {', '.join(settings.sources)}")
    return items


def _plan(settings: StoreSettings) -> dict:
    plan = {"format": STORE_FORMAT, "version": STORE_VERSION, "settings": dataclasses.asdict(settings),
            "items": _plan_items(settings)}
    plan["key"] = plan_key(plan)
    return plan




def _source_images(items: Sequence[dict]) -> Iterator[tuple[int, TrainingImage | None, dict, str | None]]:
    """Yields ``(position in items, image or None, {file: digest}, skip reason)``."""
    tfds_positions = [i for i, item in enumerate(items) if "#" in item["hr"]]
    if tfds_positions:  # consecutive examples of one TFDS split, read in one pass
        spec, first = items[tfds_positions[0]]["hr"].rsplit("#", 1)
        examples = tfds_hr_images(*parse_tfds_spec(spec), int(first), len(tfds_positions))
        for i, (_, hr) in zip(tfds_positions, examples):
            yield i, TrainingImage(items[i]["name"], hr), {items[i]["hr"]: {"sha256": hashlib.sha256(hr.tobytes()).hexdigest()}}, None
    for i, item in enumerate(items):
        if "#" in item["hr"]:
            continue
        try:
            image = TrainingImage(item["name"], load_rgb8(item["hr"]), {int(s): load_rgb8(p) for s, p in item["lr"].items()})
        except (UnreadableImageError, FileNotFoundError) as error:
            yield i, None, {}, str(error)
            continue
        yield i, image, {path: file_digest(path) for path in [item["hr"], *item["lr"].values()]}, None


def sub_image_positions(length: int, crop: int, step: int, multiple: int) -> list[int]:
    """BasicSR ``extract_subimages`` start positions along one side (``thresh_size`` 0), each
    rounded down to a multiple of ``multiple`` so that LR sub-images are exact LR crops."""
    positions = list(range(0, length - crop + 1, step))
    if positions and length - (positions[-1] + crop) > 0:
        positions.append(length - crop)
    return sorted({p // multiple * multiple for p in positions})


def _store_images(image: TrainingImage, settings: StoreSettings) -> list[TrainingImage]:
    """The image (LR completed for every scale), cut into sub-images when ``crop`` is set."""
    lr = {s: image.lr[s] if s in image.lr else make_lr(image.hr, s, settings.convention) for s in settings.scales}
    whole = TrainingImage(image.name, image.hr, lr)
    if not settings.crop:
        return [whole]
    multiple = math.lcm(*settings.scales)
    height, width = image.hr.shape[:2]
    c = settings.crop
    return [
        TrainingImage(f"{image.name}_s{k:03d}", image.hr[y:y + c, x:x + c],
                      {s: lr[s][y // s:(y + c) // s, x // s:(x + c) // s] for s in settings.scales})
        for k, (y, x) in enumerate(itertools.product(sub_image_positions(height, c, settings.step, multiple),
                                                     sub_image_positions(width, c, settings.step, multiple)), 1)
    ]


def _write_npy_atomically(path: Path, arrays: Sequence[np.ndarray]) -> dict:
    """Writes the arrays' bytes as one 1-D uint8 ``.npy`` (temporary name, fsync, rename);
    returns its size and checksums (``bytes``, ``sha256``, ``sample_sha256``)."""
    total = sum(array.size for array in arrays)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (total,)})
    digest = hashlib.sha256(header.getvalue())
    temporary = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(temporary, "wb") as stream:
        stream.write(header.getvalue())
        for array in arrays:
            data = np.ascontiguousarray(array, np.uint8).data
            digest.update(data)
            stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest(), "sample_sha256": sample_sha256(path)}


def _prepare_shard(root: str, shard: int, first_item: int, items: Sequence[dict], settings: StoreSettings) -> dict:
    """Makes one shard (in a worker process) and returns its marker."""
    arrays, entries, files, skipped, offset = [], [], {}, [], 0

    def place(array: np.ndarray) -> list[int]:
        nonlocal offset
        arrays.append(array)
        offset += array.size
        return [offset - array.size, *array.shape[:2]]

    min_side = max(settings.crop, max(settings.scales))
    originals = []
    for i, image, digests, reason in _source_images(items):
        files.update(digests)
        if image is not None and min(image.hr.shape[:2]) < min_side:
            reason = f"{image.hr.shape[1]}x{image.hr.shape[0]} is smaller than {min_side} px"
        if reason:
            skipped.append([items[i]["name"], reason])
        else:
            originals.append((first_item + i, image))
    variants = [originals]
    if settings.downscaled_copies:
        copies = with_downscaled_copies([image for _, image in originals], settings.downscaled_copies)[len(originals):]
        variants.append([(index, copy) for (index, _), copy in zip(originals, copies) if min(copy.hr.shape[:2]) >= min_side])
    for variant, records in enumerate(variants):
        for index, image in records:
            for piece in _store_images(image, settings):
                entries.append({"name": piece.name, "item": index, "variant": variant, "hr": place(piece.hr),
                                "lr": {str(s): place(piece.lr[s]) for s in settings.scales},
                                "shipped": sorted(image.lr) if variant == 0 else []})
    written = _write_npy_atomically(shard_path(Path(root), shard), arrays)
    return {"shard": shard, **written, "entries": entries, "files": files, "skipped": skipped}






def _describe_difference(old: dict, new: dict) -> str:
    settings, wanted = old.get("settings", {}), json.loads(json.dumps(new["settings"]))  # tuples as lists
    changed = [f"{k}: {settings.get(k)} -> {v}" for k, v in wanted.items() if settings.get(k) != v]
    if old.get("version") != new["version"]:
        changed.insert(0, f"format version {old.get('version')} -> {new['version']}")
    if old.get("items") != new["items"]:
        changed.append(f"source image list ({len(old.get('items', []))} -> {len(new['items'])} images)")
    return "; ".join(changed) or "different plan"


def _valid_marker(root: Path, shard: int, plan: dict, settings: StoreSettings, verify: bool) -> dict | None:
    """The completion marker of a finished shard that can be kept, else None (the shard is redone).

    Kept: a marker of this plan, intact, whose shard has its recorded size, layout and checksum
    (the sample's, or with ``verify`` the whole shard's SHA-256), and whose sources are unchanged.
    """
    name = f"shards/{shard:05d}.json"
    try:
        marker = load_json(root, name)
        if marker is None or (isinstance(marker, dict) and marker.get("key") != plan["key"]):
            return None
        check_marker(root, marker, shard, settings, len(plan["items"]))
        _, length = shard_pixels(root, shard, marker["bytes"])
        check_layout(root, [{**entry, "shard": shard} for entry in marker["entries"]], {shard: length}, name)
        check_shard_bytes(root, shard, marker, full=verify)
    except DamagedStoreError as error:
        log.warning("%s; preparing that shard again", error.what)
        return None
    return None if changed_files(marker["files"]) else marker


def _exit_with_parent(parent: multiprocessing.connection.Connection) -> None:
    """Worker initializer: a thread ends the worker when its parent's end of ``parent`` closes,
    which the kernel does however the parent ends (``kill -9`` included). Without it a killed
    ``eusr-prepare`` left its workers (and the forkserver) running, or waiting for work forever."""

    def watch() -> None:
        try:
            parent.recv_bytes()
        except EOFError:
            pass
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes (forkserver, with this module preloaded once): forking a process
    that runs TensorFlow threads can deadlock, and spawning re-imports TensorFlow per worker."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


@contextlib.contextmanager
def _preparation_lock(root: Path) -> Iterator[None]:
    """One ``eusr-prepare`` per store folder: an exclusive ``flock`` on ``prepare.lock``, which
    the kernel releases when its process ends, however it ends (no stale lock after a kill)."""
    with open(root / "prepare.lock", "a+") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip()
            raise StoreError(f"{root} is being prepared by another eusr-prepare"
                             + (f" (process {holder})" if holder.isdigit() else "")
                             + "; wait for it to finish, or stop it and run the command again") from None
        stream.truncate(0)
        stream.write(f"{os.getpid()}\n")
        stream.flush()
        yield


def _recorded_plan(root: Path) -> dict | None:
    """The plan a folder holds (``plan.json``, else the manifest's), None when it holds none.

    Raises:
        DamagedStoreError: the file is not a JSON object.
    """
    for name in ("plan.json", "manifest.json"):
        recorded = load_json(root, name)
        if recorded is not None:
            if not isinstance(recorded, dict):
                raise DamagedStoreError(root, f"{name} holds a {type(recorded).__name__}, expected an object")
            return recorded
    return None


def _intact_manifest(root: Path, key: str) -> dict | None:
    """The folder's manifest when it is present, intact and of this plan, else None."""
    try:
        manifest = load_json(root, "manifest.json")
        if manifest is None:
            return None
        check_manifest(root, manifest, StoreSettings, STORE_FORMAT, STORE_VERSION)
        check_manifest_digest(root, manifest)
    except DamagedStoreError as error:
        log.warning("%s; writing it again", error.what)
        return None
    return manifest if manifest["key"] == key else None


def prepare_store(
    root: str | Path,
    settings: StoreSettings,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    verify: bool = False,
) -> dict:
    """Prepares (or resumes, or brings up to date, or repairs) the store in ``root``; returns its manifest.

    Args:
        workers: parallel processes (default: the CPUs this process may use); 0 (or a single
            shard to do) works in this process. They end when this process ends.
        overwrite: replace a store of other settings or sources, or a damaged one, instead of refusing.
        progress: a progress bar (source images done) on stdout.
        verify: check the whole SHA-256 of every finished shard before keeping it (without:
            its size, layout and sample checksum), so that damaged shards are prepared again.

    Raises:
        StoreError: ``root`` holds a store or partial store of other settings or sources, or
            another ``eusr-prepare`` is preparing it.
        DamagedStoreError: its ``plan.json`` is damaged (``overwrite`` replaces it).
        KeyboardInterrupt: interrupted; finished shards are kept and the next run resumes.
    """
    started = time.perf_counter()
    root = prepare_output_folder(root)
    with _preparation_lock(root):
        return _prepare_locked(root, settings, workers, overwrite, progress, verify, started)


def _prepare_locked(root: Path, settings: StoreSettings, workers: int | None, overwrite: bool, progress: bool,
                    verify: bool, started: float) -> dict:
    plan = _plan(settings)
    try:
        existing = _recorded_plan(root)
    except DamagedStoreError as error:
        if not overwrite:
            raise DamagedStoreError(root, f"{error.what}; pass --overwrite to prepare it again") from None
        existing = {}
    if existing is not None and existing.get("key") != plan["key"]:
        if not overwrite:
            raise StoreError(f"{root} holds a store prepared differently ({_describe_difference(existing, plan)}); "
                             "choose another --out, or pass --overwrite to replace it")
        for path in [root / "manifest.json", *(root / "shards").glob("*")]:
            path.unlink(missing_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    for leftover in [*(root / "shards").glob("*.tmp*"), *root.glob("*.json.*.tmp")]:
        leftover.unlink()
    write_json_atomically(root / "plan.json", plan)

    items, per_shard = plan["items"], settings.images_per_shard
    shards = [(i, items[first:first + per_shard]) for i, first in enumerate(range(0, len(items), per_shard))]
    markers = {i: marker for i, _ in shards if (marker := _valid_marker(root, i, plan, settings, verify)) is not None}
    todo = [(i, group) for i, group in shards if i not in markers]
    if not todo and (manifest := _intact_manifest(root, plan["key"])) is not None:
        return manifest
    (root / "manifest.json").unlink(missing_ok=True)
    bar = None
    if progress:
        bar = keras.utils.Progbar(len(items), unit_name="image")
        bar.update(sum(len(shards[i][1]) for i in markers))

    def finished(marker: dict) -> None:
        marker["key"] = plan["key"]
        write_json_atomically(root / "shards" / f"{marker['shard']:05d}.json", marker)
        markers[marker["shard"]] = marker
        if bar is not None:
            bar.add(len(shards[marker["shard"]][1]))

    tasks = [(str(root), i, i * per_shard, group, settings) for i, group in todo]
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    if workers == 0 or len(tasks) < 2:
        for task in tasks:
            finished(_prepare_shard(*task))
    else:
        context = _worker_context()
        parent, child = context.Pipe(duplex=False)  # workers hold the reading end, this process the other
        pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_exit_with_parent,
                                   initargs=(parent,))
        try:
            for future in as_completed([pool.submit(_prepare_shard, *task) for task in tasks]):
                finished(future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            parent.close()
            child.close()
    return _write_manifest(root, plan, [markers[i] for i, _ in shards], time.perf_counter() - started)


def _write_manifest(root: Path, plan: dict, markers: Sequence[dict], seconds: float) -> dict:
    images = sorted(
        ({**entry, "shard": marker["shard"]} for marker in markers for entry in marker["entries"]),
        key=lambda entry: (entry["variant"], entry["item"]),  # stable: sub-images keep their order
    )
    if not images:
        raise EmptySourceError(f"no usable image in {', '.join(plan['settings']['sources'])} "
                               f"({sum(len(m['skipped']) for m in markers)} skipped)")
    manifest = {
        **{k: plan[k] for k in ("format", "version", "key", "settings", "items")},
        "complete": True,
        "files": {path: digest for marker in markers for path, digest in marker["files"].items()},
        "shards": [{"file": shard_name(m["shard"]), **{k: m[k] for k in ("bytes", "sha256", "sample_sha256")}}
                   for m in markers],
        "images": images,
        "skipped": [skip for marker in markers for skip in marker["skipped"]],
        "seconds": round(seconds, 1),
    }
    manifest["manifest_sha256"] = manifest_digest(manifest)
    write_json_atomically(root / "manifest.json", manifest)
    return load_json(root, "manifest.json")

