"""BatchNormalization recalibration of a briefly trained predictor ("precise BN")."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from eusr_perceptual.data.images import load_rgb8
from nima.model import backbone_of


def recalibrate_batch_norm(keras_file: Path, image_paths, crop: int, seed: int = 0, count: int = 128) -> Path:
    """Sets a predictor's BatchNormalization moving statistics to those of training crops.

    A MobileNetV2 trained from scratch for a few dozen steps keeps moving statistics near
    their initial values (momentum 0.999), so in inference mode its features vanish and its
    score is constant: no gradient for the fine-tuning. One forward pass in training mode with
    momentum 0 over ``count`` random crops fixes that ("precise BN"). Writes
    ``<name>_recalibrated.keras`` beside ``keras_file`` and returns it.
    """
    rng = np.random.default_rng(seed)
    crops = []
    for index in rng.permutation(len(image_paths))[:count]:
        image = load_rgb8(image_paths[index])
        y, x = (rng.integers(0, side - crop + 1) for side in image.shape[:2])
        crops.append(image[y:y + crop, x:x + crop])
    model = keras.saving.load_model(keras_file, compile=False)
    model.trainable = True
    layers = [layer for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(np.stack(crops).astype(np.float32), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    target = keras_file.with_name(f"{keras_file.stem}_recalibrated.keras")
    model.save(target)
    return target


