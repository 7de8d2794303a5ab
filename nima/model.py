"""The NIMA score predictor on MobileNetV2 (4PP-EUSR sections 3.4 and 4.2), and its loading API.

"This approach replaces the last layer of a well-known image classifier [...] with a
fully-connected layer with the softmax activation, which produces probabilities of 10 score
classes. In our implementation, MobileNetV2 is used as the base image classifier" (section 3.4),
"pre-trained on the ImageNet dataset with a width multiplier of 1", input 192x192 (section 4.2).

Network: images in [0, 255] -> ``Rescaling`` to [-1, 1] (MobileNetV2's own input range) ->
MobileNetV2 without its top, global average pooling (the 1280-d representation) ->
Dropout(0.75) -> Dense(10, softmax). One call returns a dict:

* ``"distribution"``: [B, 10] float32, probabilities of the scores 1..10;
* ``"mean_score"``: [B] float32, ``sum_i i * p_i``;
* ``"features"``: [B, 1280] float32, the pooled MobileNetV2 representation.

All three are float32 under the ``mixed_float16`` policy too (the head and the output layers
run in float32).

API used by the 4PP-EUSR fine-tuning:

* :func:`build_nima` ``(weights="imagenet" | None | path, input_shape=(192, 192, 3),
  dropout=0.75)``: the trainable network. Its input has ``input_shape``; the MobileNetV2 inside
  accepts any size. ``weights="imagenet"`` loads Keras's ImageNet weights for the input
  resolution (192 -> the 192x192 release) and raises :class:`PretrainedWeightsUnavailable`,
  which says how to supply the file, when they cannot be downloaded.
* :func:`inference_model` ``(model)``: the same layers without Dropout, for images of any
  height and width (what :mod:`nima.export` saves).
* :func:`load_predictor` ``(path)``: loads an exported ``.keras`` file or SavedModel folder and
  returns a frozen (``trainable=False``) model with the dict output above, deterministic
  whatever ``training`` flag it is called with (no Dropout; BatchNormalization of a frozen
  layer runs in inference mode).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import keras
import numpy as np

from eusr_perceptual.errors import UsageError
from nima.config import SCORE_BINS
from nima.losses import mean_score

BACKBONE = "mobilenetv2"
PREPROCESS = "preprocess"
DROPOUT = "dropout"
HEAD = "distribution"
MEAN_SCORE = "mean_score"
FEATURES = "features"
FEATURE_SIZE = 1280
SAVED_MODEL_ENDPOINT = "serve"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
IMAGENET_RESOLUTIONS = (96, 128, 160, 192, 224)


class PretrainedWeightsUnavailable(UsageError, RuntimeError):
    """The ImageNet weights of MobileNetV2 could not be downloaded or read."""


@keras.saving.register_keras_serializable(package="nima")
class MeanScore(keras.layers.Layer):
    """The mean score ``sum_i i * p_i`` of a [B, 10] score distribution."""

    def call(self, distribution):
        return mean_score(distribution)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


def _imagenet_weights_file(input_shape) -> str:
    rows = input_shape[0] if input_shape[0] == input_shape[1] and input_shape[0] in IMAGENET_RESOLUTIONS else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def _weights_help(input_shape) -> str:
    name = _imagenet_weights_file(input_shape)
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    return (
        f"the ImageNet weights of MobileNetV2 could not be downloaded ({name}). Either copy that "
        f"file from {WEIGHTS_URL}{name} (or from the Keras cache of a machine with internet access) "
        f"into {cache}/, or pass its path with --weights /path/to/{name}, or train from random "
        "initialisation with --weights none (far from the paper's results)"
    )


def _mobilenet(weights, input_shape) -> keras.Model:
    return keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=1.0, include_top=False, weights=weights, pooling="avg", name=BACKBONE
    )


def _backbone(weights: str | None, input_shape) -> keras.Model:
    """MobileNetV2 (alpha 1.0, no top, average pooling) that accepts any image size.

    Keras chooses the ImageNet weight file by input resolution, so the pretrained network is
    built at ``input_shape`` and its weights are copied into an any-size network.
    """
    any_size = (None, None, 3)
    if weights is None:
        return _mobilenet(None, any_size)
    if weights != "imagenet":
        if not Path(weights).is_file():
            raise FileNotFoundError(f"MobileNetV2 weights file not found: {weights}")
        return _mobilenet(str(weights), any_size)
    try:
        pretrained = _mobilenet("imagenet", tuple(input_shape))
    except Exception as error:  # Keras's get_file raises a bare Exception when offline.
        raise PretrainedWeightsUnavailable(_weights_help(input_shape)) from error
    backbone = _mobilenet(None, any_size)
    backbone.set_weights(pretrained.get_weights())
    return backbone


def _outputs(images, preprocess, backbone, head, mean, features, dropout=None) -> dict:
    pooled = backbone(preprocess(images))
    distribution = head(dropout(pooled) if dropout is not None else pooled)
    return {HEAD: distribution, MEAN_SCORE: mean(distribution), FEATURES: features(pooled)}


def build_nima(
    weights: str | None = "imagenet",
    input_shape: tuple = (192, 192, 3),
    dropout: float = 0.75,
    seed: int | None = None,
    name: str = "nima",
) -> keras.Model:
    """The NIMA network of section 3.4 with the dict output described in the module docstring.

    Args:
        weights: "imagenet" (the paper), None (random initialisation), or a weights file path.
        input_shape: the training input shape; (None, None, 3) accepts any size.
        dropout: rate of the Dropout before the new Dense layer (NIMA: 0.75).
        seed: seeds the Dense initialiser and the Dropout masks.

    Raises:
        PretrainedWeightsUnavailable: ``weights="imagenet"`` and the download failed.
    """
    images = keras.Input(shape=tuple(input_shape), dtype="float32", name="images")
    outputs = _outputs(
        images,
        keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=PREPROCESS),
        _backbone(weights, input_shape),
        keras.layers.Dense(
            SCORE_BINS,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            bias_initializer=keras.initializers.Zeros(),
            dtype="float32",
            name=HEAD,
        ),
        MeanScore(dtype="float32", name=MEAN_SCORE),
        keras.layers.Activation("linear", dtype="float32", name=FEATURES),
        dropout=keras.layers.Dropout(dropout, seed=seed, name=DROPOUT),
    )
    return keras.Model(images, outputs, name=name)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets the global Keras dtype policy (e.g. "mixed_float16") for the layers built inside."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def float32_nima(model: keras.Model) -> keras.Model:
    """A NIMA model with the weights of ``model`` under the float32 policy, in the current
    distribution scope (a model trained with ``mixed_float16`` keeps float32 variables, so
    the copy is exact)."""
    with dtype_policy("float32"):
        copy = build_nima(None, model.input_shape[1:], model.get_layer(DROPOUT).rate, name=model.name)
    copy.set_weights(model.get_weights())
    return copy


def backbone_of(model: keras.Model) -> keras.Model:
    """The MobileNetV2 inside a NIMA model (frozen in training phase 1)."""
    return model.get_layer(BACKBONE)


def inference_model(model: keras.Model) -> keras.Model:
    """The layers of ``model`` (shared, not copied) without Dropout, for images of any size."""
    images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
    layers = (model.get_layer(layer) for layer in (PREPROCESS, BACKBONE, HEAD, MEAN_SCORE, FEATURES))
    return keras.Model(images, _outputs(images, *layers), name=model.name)


def load_predictor(path: str | Path) -> keras.Model:
    """Loads an exported predictor (``.keras`` file or SavedModel folder), frozen.

    The returned model maps float32 images [B, H, W, 3] in [0, 255] to the dict
    ``{"distribution": [B, 10], "mean_score": [B], "features": [B, 1280]}``.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
        images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
        layer = keras.layers.TFSMLayer(str(path), call_endpoint=SAVED_MODEL_ENDPOINT, dtype="float32", name=path.name)
        predictor = keras.Model(images, layer(images), name=path.name)
    elif path.is_file():
        predictor = inference_model(keras.saving.load_model(path, compile=False))
    else:
        raise FileNotFoundError(f"no NIMA predictor at {path} (expected a .keras file or a SavedModel folder)")
    predictor.trainable = False
    return predictor


def count_parameters(variables) -> int:
    """The number of scalars in ``variables`` (e.g. ``model.trainable_weights``)."""
    return int(sum(np.prod(variable.shape) for variable in variables))
