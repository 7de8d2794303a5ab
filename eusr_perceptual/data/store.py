"""Prepared patch stores: training data decoded and downscaled once, then memory-mapped.

Loading DIV2K into memory decodes its 800 PNGs and makes the MATLAB-bicubic LR of every image
and scale at every start and every ``--resume``. A store does that work once (``eusr-prepare``)
and the trainers stream from it (``--data store:<path>``) with bounded memory and no decoding
at start-up (the measurements are in docs/distributed.md, "Measured").

Layout of a store folder::

    manifest.json      written last; its presence is what makes the store usable
    plan.json          the preparation's settings and source list (resuming checks them)
    prepare.lock       locked by the running eusr-prepare: a second one is refused
    shards/00000.npy   uint8, 1-D: the HR and LR pixels of up to ``images_per_shard`` images
    shards/00000.json  the shard's completion marker: its images, offsets, checksums, source hashes

Every open checks the manifest, the layout and a sample checksum of each shard, and refuses
damage with one message (:mod:`~eusr_perceptual.data.store_integrity`); :meth:`PatchStore.verify`
(``eusr-prepare --verify``) checks every shard's whole SHA-256.

Format: the per-step batches must be a pure function of (seed, step) for exact resume, which
needs random access, so the store keeps raw uint8 arrays, memory-mapped: a random patch reads
only its rows, where a TFRecord record is read and parsed whole (and, in TFDS's format, PNG-decoded);
``benchmarks/data_pipeline.py`` times the three (docs/distributed.md, "Why memory-mapped arrays,
not TFRecord"). Shards, not one file per image, keep the number of open mappings small (one
per shard). A patch of a row-major 2040-px-wide image still reads most of its rows' pages (a
384-px HR patch: about 2.3 MB), which matters when the store is not in the page cache: for
stores larger than RAM, BasicSR's sub-images (``crop``/``step``) cut that about fourfold (rows
of 480 instead of 2040 px).

LR images are the source's shipped ones (DIV2K/Flickr2K ``X<s>`` folders) when present,
otherwise :func:`~eusr_perceptual.resize.make_lr` under the store's resize convention;
that is what :class:`~eusr_perceptual.data.patches.PatchSampler` does in memory, so
:class:`StoreSampler` gives exactly the in-memory batches (it *is* a ``PatchSampler``, over
memory-mapped arrays). Optional settings: the 1/``downscaled_copies`` copies of 4PP-EUSR
section 4.3 (appended after all originals, as
:func:`~eusr_perceptual.data.sources.with_downscaled_copies`), and BasicSR's
``extract_subimages`` (``crop``/``step``, e.g. 480/240 for ESRGAN-DP's 32,592 DIV2K
sub-images), whose positions are rounded down to a multiple of every scale so that each LR
sub-image is the exact crop of the whole image's LR.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from eusr_perceptual.data.images import SkipReport, TrainingImage
from eusr_perceptual.data.patches import PatchSampler
from eusr_perceptual.data.store_integrity import (
    StoreError, check_layout, check_manifest, check_manifest_digest, check_shard_bytes, load_json, shard_name,
    shard_pixels,
)
from eusr_perceptual.errors import PathUsageError, ValueUsageError
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION, RESIZE_CONVENTIONS

log = logging.getLogger(__name__)

STORE_FORMAT = "eusr-patch-store"
#: Bumped whenever the layout or the meaning of a field changes; older stores are refused.
#: 2: shard checksums and the manifest's own digest (:mod:`~eusr_perceptual.data.store_integrity`).
STORE_VERSION = 2


@dataclass(frozen=True)
class StoreSettings:
    """What a store holds; every field is recorded in the manifest and checked on reuse.

    Attributes:
        sources: ``--data`` specs (folder, ``div2k:<root>[:split]``, ``flickr2k:<root>``,
            ``tfds:...``, ``skimage``), concatenated in order.
        scales: the LR scales stored.
        convention: how missing LR are made (:data:`~eusr_perceptual.resize.RESIZE_CONVENTIONS`).
        crop, step: BasicSR sub-images of side ``crop`` every ``step`` px (0: whole images).
        downscaled_copies: also store each image's 1/factor copy (0: none).
        images_per_shard: source images per shard (the unit of parallelism and resumption).
    """

    sources: tuple[str, ...]
    scales: tuple[int, ...] = (2, 4, 8)
    convention: str = DEFAULT_RESIZE_CONVENTION
    crop: int = 0
    step: int = 0
    downscaled_copies: int = 0
    images_per_shard: int = 16

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))
        object.__setattr__(self, "scales", tuple(sorted({int(s) for s in self.scales})))
        if not self.sources or any(source.startswith("store:") for source in self.sources):
            raise ValueUsageError(f"give at least one source, none of them a store: {list(self.sources)}")
        if not self.scales or min(self.scales) < 2:
            raise ValueUsageError(f"scales must be integers >= 2, got {self.scales}")
        if self.convention not in RESIZE_CONVENTIONS:
            raise ValueUsageError(f"unknown resize convention {self.convention!r}; use one of {RESIZE_CONVENTIONS}")
        if self.images_per_shard < 1 or self.downscaled_copies < 0 or self.downscaled_copies == 1:
            raise ValueUsageError("images_per_shard must be >= 1 and downscaled_copies 0 or a factor >= 2")
        if self.crop or self.step:
            multiple = math.lcm(*self.scales)
            if self.crop <= 0 or self.step <= 0 or self.crop % multiple or self.step % multiple:
                raise ValueUsageError(f"crop and step must be positive multiples of {multiple} (every scale), "
                                      f"got {self.crop} and {self.step}")

def file_digest(path: str) -> dict:
    """SHA-256, size and mtime of one source file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    stat = os.stat(path)
    return {"sha256": digest.hexdigest(), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def shard_path(root: Path, shard: int) -> Path:
    return root / shard_name(shard)


def changed_files(files: dict[str, dict]) -> list[str]:
    """Source files whose content differs from the recorded digest (size/mtime first, then SHA-256).

    TFDS references (``...#index``) are not re-read; missing files count as changed.
    """
    changed = []
    for path, recorded in files.items():
        if "#" in path:
            continue
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            changed.append(path)
            continue
        if (stat.st_size, stat.st_mtime_ns) != (recorded["size"], recorded["mtime_ns"]) and \
                file_digest(path)["sha256"] != recorded["sha256"]:
            changed.append(path)
    return changed



class PatchStore:
    """A prepared store, opened read-only: its manifest and memory-mapped shards.

    Use :func:`open_store`, which checks the manifest against what the trainer needs.
    """

    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest
        self.settings = check_manifest(root, manifest, StoreSettings, STORE_FORMAT, STORE_VERSION)
        self._maps: list[mmap.mmap] = []
        self._shards = [self._map(i, shard) for i, shard in enumerate(manifest["shards"])]
        check_layout(root, manifest["images"], {i: len(shard) for i, shard in enumerate(self._shards)})
        check_manifest_digest(root, manifest)

    def _map(self, index: int, record: dict) -> np.ndarray:
        offset, length = shard_pixels(self.root, index, record["bytes"])
        check_shard_bytes(self.root, index, record, full=False)
        with open(shard_path(self.root, index), "rb") as stream:
            mapping = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(mapping)
        return np.frombuffer(mapping, np.uint8, count=length, offset=offset)

    def verify(self) -> int:
        """Checks the whole SHA-256 of every shard (reads the whole store); returns the bytes read.

        Raises:
            DamagedStoreError: a shard's bytes changed after preparation.
        """
        for index, record in enumerate(self.manifest["shards"]):
            check_shard_bytes(self.root, index, record, full=True)
        return sum(record["bytes"] for record in self.manifest["shards"])

    @property
    def scales(self) -> tuple[int, ...]:
        return self.settings.scales

    def __len__(self) -> int:
        return len(self.manifest["images"])

    def _view(self, shard: int, place: Sequence[int]) -> np.ndarray:
        offset, height, width = place
        return self._shards[shard][offset:offset + height * width * 3].reshape(height, width, 3)

    def training_images(self, scales: Sequence[int] | None = None) -> list[TrainingImage]:
        """Every image as a :class:`TrainingImage` of read-only memory-mapped views (no copy)."""
        scales = self.scales if scales is None else tuple(scales)
        return [
            TrainingImage(entry["name"], self._view(entry["shard"], entry["hr"]),
                          {s: self._view(entry["shard"], entry["lr"][str(s)]) for s in scales})
            for entry in self.manifest["images"]
        ]

    def release(self) -> None:
        """Drops the mapped pages from this process (``MADV_DONTNEED``; they stay in the page
        cache), so that the resident set does not grow with the part of the store read."""
        for mapping in self._maps:
            mapping.madvise(mmap.MADV_DONTNEED)

    def changed_sources(self) -> list[str] | None:
        """Source files changed or gone since preparation, or None when no source file is
        present on this machine (nothing to compare with)."""
        files = [path for path in self.manifest["files"] if "#" not in path]
        if not any(os.path.exists(path) for path in files):
            return None
        return changed_files(self.manifest["files"])


def open_store(
    path: str | Path,
    *,
    scales: Sequence[int] | None = None,
    convention: str | None = None,
    downscaled_copies: int | None = None,
    check_sources: bool = True,
) -> PatchStore:
    """Opens a prepared store after checking it can serve the request.

    Args:
        scales, convention, downscaled_copies: what the trainer needs (None: anything).
        check_sources: refuse a store whose source files (when present on this machine) have
            changed since preparation: a ``stat`` per file, SHA-256 only when size or mtime differ.

    Raises:
        PathUsageError: no store folder at ``path``.
        StoreError: partial, stale, of another format version, or prepared with other settings.
        DamagedStoreError: its manifest or shards are not what its preparation wrote
            (:mod:`~eusr_perceptual.data.store_integrity`).
    """
    root = Path(path)
    if not root.is_dir():
        raise PathUsageError(f"store not found: {root} (make one with eusr-prepare)")
    manifest = load_json(root, "manifest.json")
    if manifest is None:
        plan = (root / "plan.json").is_file()
        raise StoreError(
            f"store {root} is incomplete (no manifest.json"
            + (f"; {len(list((root / 'shards').glob('*.json')))} shard(s) finished" if plan else "")
            + "): its preparation was interrupted or is still running; run eusr-prepare again with the same arguments"
        )
    version = manifest.get("version") if isinstance(manifest, dict) and manifest.get("format") == STORE_FORMAT else None
    if isinstance(version, int) and not isinstance(version, bool) and version != STORE_VERSION:  # older or newer code's
        raise StoreError(f"store {root} has format {STORE_FORMAT!r} version {version}; "
                         f"this code reads {STORE_FORMAT!r} version {STORE_VERSION}: prepare it again with eusr-prepare")
    store = PatchStore(root, manifest)
    problems = []
    if scales is not None and set(scales) - set(store.scales):
        problems.append(f"scales {sorted(scales)} requested, the store holds {list(store.scales)}")
    if convention is not None and convention != store.settings.convention:
        problems.append(f"resize convention {convention!r} requested, the store's LR were made with "
                        f"{store.settings.convention!r}")
    if downscaled_copies is not None and downscaled_copies != store.settings.downscaled_copies:
        problems.append(f"downscaled copies 1/{downscaled_copies} requested, the store has "
                        + (f"1/{store.settings.downscaled_copies}" if store.settings.downscaled_copies else "none"))
    if problems:
        raise StoreError(f"store {root} does not match this run: {'; '.join(problems)}. "
                         "Prepare a store with these settings (eusr-prepare) or change the run's settings")
    if check_sources:
        changed = store.changed_sources()
        if changed:
            raise StoreError(f"store {root} is stale: {len(changed)} source file(s) changed or removed since "
                             f"preparation (first: {changed[0]}); run eusr-prepare again with the same arguments")
        if changed is None:
            log.info("source files of store %s are not on this machine; not checked", root)
    return store


class StoreSampler(PatchSampler):
    """:class:`~eusr_perceptual.data.patches.PatchSampler` over a store's memory-mapped images.

    Same interface and, for the same images, seed and step, the same batches; only the pixels
    of each step's patches are read. Every ``release_every`` batches the mapped pages are
    dropped from the process (:meth:`PatchStore.release`), which bounds the resident set at
    about that many batches' pages whatever the store's size.
    """

    def __init__(
        self,
        store: PatchStore,
        scales: Sequence[int] | None = None,
        patch_size: int = 48,
        batch_size: int = 16,
        seed: int = 0,
        augment: bool = True,
        report: SkipReport | None = None,
        scale_weights: Sequence[float] | None = None,
        release_every: int = 16,
    ):
        self.store, self.release_every = store, release_every
        self._batches = itertools.count(1)
        scales = store.scales if scales is None else scales
        super().__init__(store.training_images(scales), scales, patch_size, batch_size, seed, augment, report,
                         scale_weights=scale_weights)

    def uint8_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        batch = super().uint8_batch(step)
        if next(self._batches) % self.release_every == 0:
            self.store.release()
        return batch
