"""Saving a trained predictor for the 4PP-EUSR fine-tuning (which loads it with
:func:`nima.model.load_predictor`).

Two files of the same predictor (:func:`nima.model.inference_model`: no Dropout, images of
any size, float32 [B, H, W, 3] in [0, 255]):

* ``<name>.keras``: the Keras file (needs :mod:`nima.model` imported to load: it registers
  the ``MeanScore`` layer);
* ``<name>_savedmodel/``: a SavedModel whose ``serve`` (= ``serving_default``) signature takes
  ``images`` and returns ``distribution`` [B, 10], ``mean_score`` [B] and ``features`` [B, 1280].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from nima.model import SAVED_MODEL_ENDPOINT, float32_copy, inference_model


@dataclass(frozen=True)
class ExportedPredictor:
    keras_file: Path
    saved_model: Path


def export_predictor(model: keras.Model, directory: str | Path, name: str) -> ExportedPredictor:
    """Writes ``model`` (a NIMA model from :func:`nima.model.build_nima`) in both formats.

    What is saved is a float32 copy (:func:`nima.model.float32_copy`): the predictor computes
    in float32 whatever policy it was trained with, and, built outside the training's
    ``tf.distribute`` scope, holds plain variables.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    predictor = inference_model(float32_copy(model))
    keras_file = directory / f"{name}.keras"
    predictor.save(keras_file)

    archive = keras.export.ExportArchive()  # tracks the variables its endpoint uses
    archive.add_endpoint(
        name=SAVED_MODEL_ENDPOINT,
        fn=lambda images: predictor(images, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
    )
    saved_model = directory / f"{name}_savedmodel"
    archive.write_out(str(saved_model), verbose=False)
    return ExportedPredictor(keras_file, saved_model)
