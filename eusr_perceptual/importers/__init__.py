"""Released weights in, the project's networks out: one module per source format.

* :mod:`.torch_files`: PyTorch files read without PyTorch (restricted unpickler, bounds-checked
  tensors), also what the LPIPS converter reads with;
* :mod:`.pytorch`: PyTorch ``.pth`` / ``.pt`` state dicts of the ESRGAN and BasicSR releases
  (RRDBNet, MSRResNet, the VGG-style discriminator);
* :mod:`.tf1_graph`: frozen TensorFlow 1 ``.pb`` graphs of the 4PP-EUSR authors (EUSR);
* :mod:`.weights`: the checked assignment both use.

:func:`import_network` picks the importer by the file (``.pb``: a graph; ``.pth``, ``.pt`` or
any torch zip/legacy file: a state dict) and returns an :class:`Imported` network with its
provenance (file name, sha256, format, key). :func:`save_imported` writes it as a ``.keras``
file that :func:`~eusr_perceptual.loading.load_generator` (generators) or
``keras.models.load_model`` (discriminators) reads back, the provenance as the archive entry
:data:`PROVENANCE_ENTRY`. ``load_generator`` also takes a
released file itself and converts it in memory with :func:`import_network`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eusr_perceptual.errors import PathUsageError
from eusr_perceptual.importers.pytorch import import_state_dict
from eusr_perceptual.importers.tf1_graph import import_frozen_graph
from eusr_perceptual.importers.torch_files import read_torch_state_dict
from eusr_perceptual.importers.weights import WeightsImportError

__all__ = ["ARCHES", "GRAPH_SUFFIXES", "IMPORTABLE_SUFFIXES", "Imported", "WeightsImportError", "import_network",
           "is_importable", "save_imported"]

GRAPH_SUFFIXES = (".pb",)
TORCH_SUFFIXES = (".pth", ".pt")
IMPORTABLE_SUFFIXES = GRAPH_SUFFIXES + TORCH_SUFFIXES
#: The entry of an imported ``.keras`` archive that records where its weights came from.
PROVENANCE_ENTRY = "provenance.json"
#: What ``--arch`` may name: the graphs hold an EUSR, the state dicts the rest.
ARCHES = ("eusr", "rrdbnet", "msrresnet", "vgg_style")
GRAPH_FORMAT = "tf1_frozen_graph"


@dataclass(frozen=True)
class Imported:
    """A network converted from a released file and where it came from."""

    model: object
    provenance: dict


def is_importable(path: str | Path) -> bool:
    """Whether ``path`` is a file an importer reads (by its suffix)."""
    path = Path(path)
    return path.suffix.lower() in IMPORTABLE_SUFFIXES and path.name != "saved_model.pb"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_network(path: str | Path, arch: str | None = None, scale: int | None = None,
                   key: str | None = None) -> Imported:
    """The project's network holding the weights of the released file ``path``.

    Args:
        arch: the architecture the file must hold (:data:`ARCHES`; default: what it says).
        scale: only where the file cannot tell (an RRDBNet with one upsampling conv).
        key: the entry of a wrapped state dict (default ``params_ema``, else ``params``).

    Raises:
        PathUsageError: ``path`` does not exist.
        WeightsImportError (a UsageError): the file is not a supported release, or a key / node
            is unknown, missing or of the wrong shape (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise PathUsageError(f"weights file not found: {path}")
    if arch is not None and arch not in ARCHES:
        raise WeightsImportError(f"--arch must be one of {', '.join(ARCHES)}, got {arch!r}")
    provenance = {"source": path.name, "sha256": _sha256(path)}
    if path.suffix.lower() in GRAPH_SUFFIXES:
        if arch not in (None, "eusr"):
            raise WeightsImportError(f"{path.name}: a frozen graph holds an EUSR, not a {arch}")
        if scale is not None or key is not None:
            raise WeightsImportError(f"{path.name}: a frozen graph holds its scales and has no entries: drop --scale / --key")
        model = import_frozen_graph(path, path.name)
        return Imported(model, {**provenance, "format": GRAPH_FORMAT, "arch": "eusr", "scales": list(model.scales)})
    if arch == "eusr":
        raise WeightsImportError(f"{path.name}: EUSR is imported from the authors' frozen .pb graphs, not from PyTorch")
    result = import_state_dict(read_torch_state_dict(path), path.name, arch, scale, key)
    info = {"format": result.naming, "arch": result.arch, "key": result.key}
    if hasattr(result.model, "scales"):
        info["scales"] = list(result.model.scales)
    return Imported(result.model, {**provenance, **info})


def save_imported(imported: Imported, out: str | Path) -> Path:
    """Writes ``imported`` as the ``.keras`` file ``out`` with its provenance entry, atomically
    (a temporary file in the same folder, renamed once complete)."""
    out = Path(out)
    if out.suffix != ".keras":
        raise PathUsageError(f"--out {out} must end with .keras")
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=out.parent)
    os.close(handle)
    try:
        imported.model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(PROVENANCE_ENTRY, json.dumps(imported.provenance, indent=2))
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return out
