"""What a ``--data`` source holds, as a digest a run records when it starts (in ``config.json``),
so that ``--resume`` notices data that changed underneath the run and refuses it, naming it.

The batch of every step is a pure function of (images, seed, step); a checkpoint continued on
other images is another run, which exact resume would hide. The digest covers:

* ``store:<path>``: the store's key (its settings and source list) and its manifest's shard and
  image tables (a store prepared again from other sources has another key);
* a folder, ``div2k:`` / ``flickr2k:`` and ``skimage``: the sorted list of the image files (HR,
  and the shipped LR of the trained scales) with their sizes, relative to their common folder,
  so that the same files in a moved or copied folder are the same data;
* ``tfds:``: the dataset's name, version and the split's number of examples.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from eusr_perceptual.data.sources import parse_tfds_spec, source_files
from eusr_perceptual.errors import ValueUsageError

__all__ = ["DataChangedError", "check_same_data", "data_identity"]


class DataChangedError(ValueUsageError):
    """``--resume`` of a run whose ``--data`` no longer holds the images it started with."""


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _store_identity(root: Path) -> tuple[str, str]:
    manifest = json.loads((root / "manifest.json").read_text())
    images = manifest.get("images") or []
    payload = {key: manifest.get(key) for key in ("key", "shards", "images")}
    return _digest(payload), f"store key {str(manifest.get('key'))[:12]}, {len(images)} images"


def _tfds_identity(spec: str) -> tuple[str, str]:
    import tensorflow_datasets as tfds  # lazy: slow to import, and only tfds: sources need it

    name, split, data_dir = parse_tfds_spec(spec)
    info = tfds.builder(name, data_dir=data_dir).info
    examples = info.splits[split].num_examples
    return _digest([name, str(info.version), split, examples]), f"{name} {info.version}, {examples} examples"


def _files_identity(spec: str, scales: Sequence[int]) -> tuple[str, str]:
    files = source_files(spec, scales)
    paths = [path for file in files for path in (file.hr, *(file.lr[s] for s in sorted(file.lr)))]
    if not paths:
        return _digest([]), "no image files"
    root = os.path.commonpath([str(path) for path in paths]) if len(paths) > 1 else str(paths[0].parent)
    entries = [f"{os.path.relpath(path, root)}\t{path.stat().st_size}" for path in paths]
    size = sum(int(entry.rsplit("\t", 1)[1]) for entry in entries)
    return _digest(entries), f"{len(files)} images in {len(paths)} files of {size:,} bytes"


def data_identity(spec: str | Path, scales: Sequence[int]) -> dict[str, str]:
    """``{"data": spec, "digest": SHA-256 hex, "what": a short description}`` of a training
    source (see the module docstring); ``scales``: the LR versions the run picks up."""
    spec = str(spec)
    if spec.startswith("store:"):
        digest, what = _store_identity(Path(spec[len("store:"):]))
    elif spec.startswith("tfds:"):
        digest, what = _tfds_identity(spec)
    else:
        digest, what = _files_identity(spec, scales)
    return {"data": spec, "digest": digest, "what": what}


def check_same_data(recorded: dict | None, current: dict) -> None:
    """Raises :class:`DataChangedError`, naming the data and what changed, when ``current``
    (:func:`data_identity` now) differs from what the run recorded when it started (nothing
    to compare with when it recorded none: a run of an older version)."""
    if recorded is None or recorded.get("digest") == current["digest"]:
        return
    raise DataChangedError(
        f"--resume: the data behind --data {current['data']} changed since the run started: it held "
        f"{recorded.get('what')} (digest {str(recorded.get('digest'))[:12]}), it now holds {current['what']} "
        f"(digest {current['digest'][:12]}). A resumed run must see the images it started with: restore them, "
        "or start a new run in another --run-dir"
    )
