"""Saving a trained predictor for the 4PP-EUSR fine-tuning (which loads it with
:func:`nima.model.load_predictor`) and for TF Serving.

Two files of the same predictor (:func:`nima.model.inference_model`: no Dropout, images of
any size, float32 [B, H, W, 3] in [0, 255]):

* ``<name>.keras``: the Keras file (needs :mod:`nima.model` imported to load: it registers
  the ``MeanScore`` layer);
* ``<name>_savedmodel/``: a SavedModel with two signatures, dynamic batch and size:

  - ``serve`` (= ``serving_default``) takes ``images`` and returns ``distribution`` [B, 10],
    ``mean_score`` [B] and ``features`` [B, 1280];
  - ``score_png`` takes encoded images, ``images_bytes`` [B] of ``tf.string`` (PNG, JPEG,
    BMP, GIF; TF Serving's REST ``{"b64": ...}`` values; sizes may differ within a batch), and
    returns ``mean_score`` [B] and ``distribution`` [B, 10] of each image scored on its own at
    its size, at least 32x32 (:mod:`eusr_perceptual.serving.codec`: grayscale and 16-bit PNG
    as the project's image reader; alpha composited on black as
    :func:`eusr_perceptual.data.images.to_rgb8`; a smaller image or a non-image payload fails
    with an ``InvalidArgument`` error naming it). An image whose header says more pixels
    than the request budget allows (:mod:`eusr_perceptual.serving.limits`: MobileNetV2's
    estimated peak memory per pixel, default budget 2048 MiB) is refused before decoding;
    the limit is in ``assets.extra/request_limits.json``. :func:`write_saved_model`
    re-exports a saved ``.keras`` predictor with another budget.

  With tensorflow-serving-api installed (the ``export`` extra) it also holds TF Serving's
  warm-up file ``assets.extra/tf_serving_warmup_requests`` (one request per signature). TF
  Serving wants numbered versions: serve it as ``<model base>/<version>/`` (docs/serving.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from eusr_perceptual.serving.codec import IMAGES_BYTES, composite_on_black, encoded_images_spec, map_decoded
from eusr_perceptual.serving.limits import PixelLimit, RequestBudget, untiled_limit, write_limits
from eusr_perceptual.serving.memory import bytes_per_pixel
from eusr_perceptual.serving.warmup import MissingExtra, warmup_image, write_warmup_requests
from nima.config import SCORE_BINS
from nima.model import HEAD, MEAN_SCORE, SAVED_MODEL_ENDPOINT, float32_nima, inference_model

log = logging.getLogger(__name__)

#: The encoded-image signature of the SavedModel.
SCORE_PNG_ENDPOINT = "score_png"
#: Smallest side MobileNetV2 scores (Keras's minimum input; smaller images give NaN or noise).
MIN_SIDE = 32


@dataclass(frozen=True)
class ExportedPredictor:
    keras_file: Path
    saved_model: Path


def score_encoded(score, images_bytes: tf.Tensor, limit: PixelLimit) -> dict:
    """``{"mean_score": [B], "distribution": [B, 10]}`` of a ``[B]`` batch of encoded images,
    each scored on its own by ``score`` (float32 ``[1, H, W, 3]`` -> the predictor's dict):
    images of one batch may differ in size; images over ``limit`` are refused."""

    def one(image):
        message = f"NIMA scores images of at least {MIN_SIDE}x{MIN_SIDE} pixels; got height, width"
        check = tf.debugging.assert_greater_equal(tf.shape(image.color)[:2], MIN_SIDE, message=message)
        with tf.control_dependencies([check]):
            scores = score(composite_on_black(image)[None])
        return {MEAN_SCORE: scores[MEAN_SCORE][0], HEAD: scores[HEAD][0]}

    spec = {MEAN_SCORE: tf.TensorSpec([], tf.float32), HEAD: tf.TensorSpec([SCORE_BINS], tf.float32)}
    return map_decoded(images_bytes, one, spec, limit)


def export_predictor(model: keras.Model, directory: str | Path, name: str, warmup: bool = True,
                     budget: RequestBudget = RequestBudget()) -> ExportedPredictor:
    """Writes ``model`` (a NIMA model from :func:`nima.model.build_nima`) in both formats.

    What is saved is a float32 copy (:func:`nima.model.float32_nima`): the predictor computes
    in float32 whatever policy it was trained with, and, built outside the training's
    ``tf.distribute`` scope, holds plain variables. ``warmup`` writes TF Serving's warm-up
    requests (needs tensorflow-serving-api; without it a warning is logged and the file is
    left out); ``budget`` sets the largest image ``score_png`` accepts.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    predictor = inference_model(float32_nima(model))
    keras_file = directory / f"{name}.keras"
    predictor.save(keras_file)
    saved_model = directory / f"{name}_savedmodel"
    write_saved_model(predictor, saved_model, name, warmup, budget)
    return ExportedPredictor(keras_file, saved_model)


def write_saved_model(predictor: keras.Model, saved_model: str | Path, name: str, warmup: bool = True,
                      budget: RequestBudget = RequestBudget()) -> Path:
    """Writes the SavedModel of a float32 predictor (what :func:`export_predictor` saves as
    ``<name>.keras``; load it with ``keras.saving.load_model`` after importing :mod:`nima.model`)
    to ``saved_model``; ``name`` is the model name of the warm-up requests."""
    limit = untiled_limit(budget, bytes_per_pixel(lambda images: predictor(images, training=False)), SCORE_PNG_ENDPOINT,
                          "downscale it, or re-export with a larger budget (nima.export.write_saved_model)")

    # score_png calls the traced serve function: MobileNetV2 is traced once, not per endpoint.
    serve = tf.function(
        lambda images: predictor(images, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        autograph=False,
    )
    serve.get_concrete_function()
    archive = keras.export.ExportArchive()
    archive.track(predictor)
    archive.add_endpoint(name=SAVED_MODEL_ENDPOINT, fn=serve)
    archive.add_endpoint(
        name=SCORE_PNG_ENDPOINT, fn=lambda images_bytes: score_encoded(serve, images_bytes, limit), input_signature=[encoded_images_spec()]
    )
    archive.write_out(str(saved_model), verbose=False)
    write_limits(saved_model, [limit])
    if warmup:
        image = warmup_image()
        requests = [
            (SAVED_MODEL_ENDPOINT, {"images": image[None].astype("float32")}),
            (SCORE_PNG_ENDPOINT, {IMAGES_BYTES: [tf.io.encode_png(image).numpy()]}),
        ]
        try:
            write_warmup_requests(saved_model, name, requests)
        except MissingExtra as error:
            log.warning("%s: exported without warm-up requests: %s", saved_model, error)
    return Path(saved_model)
