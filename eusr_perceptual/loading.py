"""Loading a trained generator from whatever a run or an export left on disk.

Every generator of the project follows one protocol: ``model(x, scale=s)`` maps float
``[B, H, W, 3]`` in [0, 255] to float32 ``[B, sH, sW, 3]`` (unclipped), and ``model.scales``
lists the scales it has a path for. :func:`load_generator` returns such an object from

* a ``.keras`` file (``model.save``), e.g. ``<run_dir>/generator.keras``;
* a run folder holding ``generator.keras`` (what the pretraining and fine-tuning scripts write);
* a SavedModel folder written by :mod:`eusr_perceptual.serving.savedmodel` (or a ``saved_models/<name>``
  folder of numbered versions, whose newest version is taken): its float32 signatures are
  wrapped by :class:`SavedModelGenerator`, which needs neither Keras nor the model's code but
  TensorFlow, imported when a SavedModel is loaded (a ``.keras`` file loads on any backend);
* a released weights file (the 4PP-EUSR authors' frozen ``.pb`` graphs, ESRGAN / BasicSR
  ``.pth`` state dicts), converted in memory by :func:`eusr_perceptual.importers.import_network`.

Every generator loaded from a released file, or from a ``.keras`` file that
``eusr-import-weights`` wrote, has a ``provenance`` dict (source file name, sha256, format,
key), kept in the ``.keras`` archive as the entry :data:`~eusr_perceptual.importers.PROVENANCE_ENTRY`; other models have
``provenance = None``.

:func:`check_model_path` answers, cheaply and before any data is loaded, whether a path can
hold a model at all (a PNG given as a model, a corrupt or truncated ``.keras`` file, a folder
without a model): the entry points call it first, so such mistakes are one-line usage errors.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import zipfile
import zlib
from pathlib import Path

import keras

from eusr_perceptual.errors import PathUsageError, ValueUsageError
from eusr_perceptual.importers import IMPORTABLE_SUFFIXES, PROVENANCE_ENTRY, import_network, is_importable

__all__ = ["GeneratorLoadError", "SavedModelGenerator", "check_model_path", "float_signature_name",
           "load_generator", "read_provenance"]

RUN_GENERATOR_FILE = "generator.keras"


class GeneratorLoadError(ValueUsageError):
    """A path exists but holds no model that can be loaded."""


def float_signature_name(route: str) -> str:
    """Name of the float32 serving signature of an upscaling route (see :mod:`..export`)."""
    prefix = "upscale" if re.fullmatch(r"x\d+", route) else "path"
    return f"{prefix}_{route}_float"


class SavedModelGenerator:
    """An exported SavedModel seen through the generator protocol.

    ``self(x, scale=s)`` runs the ``upscale_x<s>_float`` signature (float32 in [0, 255] in,
    the model's unclipped float32 output out), so multi-pass routes compose exactly as with
    the Keras model.
    """

    def __init__(self, path: str | Path):
        import tensorflow as tf  # lazy: only SavedModels need TensorFlow; .keras files load on any backend (issue 23)

        self.path = Path(path)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise GeneratorLoadError(f"{self.path} cannot be read as a SavedModel: {error}") from error
        found = [re.fullmatch(r"upscale_x(\d+)_float", key) for key in self._loaded.signatures]
        self.scales = tuple(sorted(int(match.group(1)) for match in found if match))
        if not self.scales:
            raise GeneratorLoadError(
                f"{self.path} is a SavedModel without upscale_x<s>_float signatures (found "
                f"{sorted(self._loaded.signatures)}); export it with scripts/export_savedmodel.py"
            )
        self.name = self.path.parent.name if self.path.name.isdigit() else self.path.name

    def __call__(self, images, scale: int = 4):
        import tensorflow as tf  # lazy: only SavedModels need TensorFlow; .keras files load on any backend (issue 23)

        if scale not in self.scales:
            raise ValueError(f"this SavedModel has paths {self.scales}, not x{scale}")
        signature = self._loaded.signatures[float_signature_name(f"x{scale}")]
        return signature(images=tf.cast(images, tf.float32))["upscaled"]


def _register_project_models() -> None:
    """Imports every module of :mod:`eusr_perceptual.models`, which registers its Keras classes
    (``.keras`` files name them as ``eusr_perceptual>Class``), whatever generators exist."""
    package = importlib.import_module("eusr_perceptual.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def _check_keras_archive(path: Path, what: str) -> None:
    """A ``.keras`` file is a zip archive holding ``config.json``; anything else is refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            readable = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        readable = False
    if not readable:
        raise GeneratorLoadError(
            f"{what} {path} cannot be read as a Keras model: it is not a .keras archive (corrupt or truncated file?)"
        )


def read_provenance(path: str | Path) -> dict | None:
    """The :data:`PROVENANCE_ENTRY` of a ``.keras`` archive, or None when it has none."""
    with zipfile.ZipFile(path) as archive:
        if PROVENANCE_ENTRY not in archive.namelist():
            return None
        return json.loads(archive.read(PROVENANCE_ENTRY))


def _load_keras(path: Path):
    _register_project_models()
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, OSError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise GeneratorLoadError(f"{path} cannot be read as a Keras model: {error}") from error
    if not hasattr(model, "scales"):
        raise GeneratorLoadError(
            f"{path} holds a {type(model).__name__}, not a generator of this project (no `scales`)"
        )
    model.provenance = read_provenance(path)
    return model


def _newest_version(folder: Path) -> Path | None:
    versions = [child for child in folder.iterdir() if child.name.isdigit() and (child / "saved_model.pb").is_file()]
    return max(versions, key=lambda child: int(child.name)) if versions else None


def check_model_path(path: str | Path, what: str = "model", run_file: str | None = RUN_GENERATOR_FILE) -> Path:
    """The ``.keras`` file or SavedModel folder ``path`` stands for, checked without loading it.

    Accepted: a ``.keras`` archive; a run folder holding ``run_file`` (None: not accepted);
    a SavedModel folder; a folder of numbered SavedModel versions (the newest is returned);
    with ``run_file`` (a generator), a released ``.pb`` / ``.pth`` / ``.pt`` weights file.
    The fine-tuning script checks its model arguments with it before loading any data:
    ``check_model_path(config.generator, "--generator")`` and, for the NIMA predictors (a
    ``.keras`` file or a SavedModel folder), ``check_model_path(config.aesthetic, "--aesthetic",
    run_file=None)``.

    Raises:
        PathUsageError: ``path`` does not exist.
        GeneratorLoadError: ``path`` cannot hold a model (an image or other non-``.keras`` file,
            a corrupt or truncated ``.keras`` file, a folder without a model).
    """
    path = Path(path)
    if not path.exists():
        raise PathUsageError(f"{what} not found: {path}")
    accepted = f"a .keras file, a run folder with {run_file}, or a SavedModel folder" if run_file else "a .keras file or a SavedModel folder"
    if path.is_file():
        if run_file and is_importable(path):
            return path
        if run_file:
            accepted += f", or a released weights file ({', '.join(IMPORTABLE_SUFFIXES)})"
        if path.suffix != ".keras":
            raise GeneratorLoadError(f"{what} {path} is not a model file: expected {accepted}")
        _check_keras_archive(path, what)
        return path
    if run_file and (path / run_file).is_file():
        return check_model_path(path / run_file, what, run_file)
    if (path / "saved_model.pb").is_file():
        return path
    newest = _newest_version(path)
    if newest is not None:
        return newest
    hint = " (the run has not finished?)" if (path / "checkpoints").is_dir() else ""
    raise GeneratorLoadError(f"{what} {path} holds no model{hint}: expected {accepted} (or numbered SavedModel versions)")


def load_generator(path: str | Path, what: str = "model"):
    """Loads a generator from a ``.keras`` file, a run folder, a SavedModel folder or a
    released weights file (converted in memory, see the module docstring).

    Raises:
        PathUsageError (a FileNotFoundError): ``path`` does not exist.
        GeneratorLoadError: ``path`` exists but holds no loadable generator.
        WeightsImportError (a UsageError): a released file that does not convert.
    """
    target = check_model_path(path, what)
    if target.is_file() and target.suffix != ".keras":
        imported = import_network(target)
        if not hasattr(imported.model, "scales"):
            raise GeneratorLoadError(f"{what} {path} holds a {imported.provenance['arch']} discriminator, not a generator")
        imported.model.provenance = imported.provenance
        return imported.model
    if target.is_file():
        return _load_keras(target)
    model = SavedModelGenerator(target)
    model.provenance = None
    return model


def start_discriminator_from(discriminator, path: str | Path, what: str = "--init-d-from") -> None:
    """Copies the weights of a saved or released discriminator into ``discriminator`` (the
    preset's D, built by the registry): a ``.keras`` discriminator, or BasicSR's released
    VGG-style ``net_d`` ``.pth`` (converted in memory by :mod:`eusr_perceptual.importers`), so a
    GAN stage can start from a released D. Every array must have the shape of the preset's.

    Raises:
        PathUsageError: ``path`` does not exist.
        GeneratorLoadError: ``path`` is neither a ``.keras`` file nor a released weights file.
        ValueUsageError: its arrays do not fit the preset's discriminator (another input size,
            width or type), naming the first one that differs.
    """
    path = Path(path)
    if not path.is_file():
        raise PathUsageError(f"{what} not found: {path}")
    if is_importable(path):
        source = import_network(path).model
    elif path.suffix == ".keras":
        _check_keras_archive(path, what)
        source = keras.models.load_model(path, compile=False)
    else:
        raise GeneratorLoadError(f"{what} {path} is not a discriminator file: expected a .keras file or a released "
                                 f".pth ({', '.join(IMPORTABLE_SUFFIXES)})")
    ours, theirs = discriminator.weights, source.weights
    for index in range(max(len(ours), len(theirs))):
        mine = tuple(ours[index].shape) if index < len(ours) else None
        given = tuple(theirs[index].shape) if index < len(theirs) else None
        if mine != given:
            name = ours[index].path if index < len(ours) else theirs[index].path
            raise ValueUsageError(f"{what} {path} does not fit the preset's discriminator: array {index} ({name}) is "
                                  f"{given} in the file and {mine} in the preset (another input size, width or type?)")
    discriminator.set_weights(source.get_weights())
