"""Loading a trained generator from whatever a run or an export left on disk.

Every generator of the project follows one protocol: ``model(x, scale=s)`` maps float
``[B, H, W, 3]`` in [0, 255] to float32 ``[B, sH, sW, 3]`` (unclipped), and ``model.scales``
lists the scales it has a path for. :func:`load_generator` returns such an object from

* a ``.keras`` file (``model.save``), e.g. ``<run_dir>/generator.keras``;
* a run folder holding ``generator.keras`` (what the pretraining and fine-tuning scripts write);
* a SavedModel folder written by :mod:`eusr_perceptual.export` (or a ``saved_models/<name>``
  folder of numbered versions, whose newest version is taken): its float32 signatures are
  wrapped by :class:`SavedModelGenerator`, which needs neither Keras nor the model's code.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import tensorflow as tf

__all__ = ["GeneratorLoadError", "SavedModelGenerator", "load_generator", "float_signature_name"]

RUN_GENERATOR_FILE = "generator.keras"


class GeneratorLoadError(ValueError):
    """A path exists but holds no generator that can be loaded."""


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
        self.path = Path(path)
        self._loaded = tf.saved_model.load(str(self.path))
        found = [re.fullmatch(r"upscale_x(\d+)_float", key) for key in self._loaded.signatures]
        self.scales = tuple(sorted(int(match.group(1)) for match in found if match))
        if not self.scales:
            raise GeneratorLoadError(
                f"{self.path} is a SavedModel without upscale_x<s>_float signatures (found "
                f"{sorted(self._loaded.signatures)}); export it with scripts/export_savedmodel.py"
            )
        self.name = self.path.parent.name if self.path.name.isdigit() else self.path.name

    def __call__(self, images, scale: int = 4) -> tf.Tensor:
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


def _load_keras(path: Path):
    import keras

    _register_project_models()
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, OSError) as error:
        raise GeneratorLoadError(f"cannot load the Keras model {path}: {error}") from error
    if not hasattr(model, "scales"):
        raise GeneratorLoadError(
            f"{path} holds a {type(model).__name__}, not a generator of this project (no `scales`)"
        )
    return model


def _newest_version(folder: Path) -> Path | None:
    versions = [child for child in folder.iterdir() if child.name.isdigit() and (child / "saved_model.pb").is_file()]
    return max(versions, key=lambda child: int(child.name)) if versions else None


def load_generator(path: str | Path):
    """Loads a generator from a ``.keras`` file, a run folder or a SavedModel folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        GeneratorLoadError: ``path`` exists but holds no loadable generator.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_file():
        if path.suffix != ".keras":
            raise GeneratorLoadError(
                f"{path}: expected a .keras file, a run folder with {RUN_GENERATOR_FILE}, or a SavedModel folder"
            )
        return _load_keras(path)
    if (path / RUN_GENERATOR_FILE).is_file():
        return _load_keras(path / RUN_GENERATOR_FILE)
    if (path / "saved_model.pb").is_file():
        return SavedModelGenerator(path)
    newest = _newest_version(path)
    if newest is not None:
        return SavedModelGenerator(newest)
    hint = " (the run has not finished?)" if (path / "checkpoints").is_dir() else ""
    raise GeneratorLoadError(
        f"{path} holds neither {RUN_GENERATOR_FILE}{hint}, nor saved_model.pb, nor numbered SavedModel versions"
    )
