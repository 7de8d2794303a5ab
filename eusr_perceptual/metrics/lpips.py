"""LPIPS, the Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018), in Keras.

The distance of version 0.1 with the AlexNet or VGG16 backbone, as the authors' package
computes it (``lpips.LPIPS(net=..., version='0.1')``):

1. images in [-1, 1] pass LPIPS's scaling layer, ``(x - shift) / scale`` with
   ``shift = [-.030, -.088, -.188]`` and ``scale = [.458, .448, .450]``;
2. the backbone's ReLU outputs are tapped after each of its 5 stages (AlexNet: relu1-relu5 of
   ``torchvision.models.alexnet().features``; VGG16: relu1_2, relu2_2, relu3_3, relu4_3,
   relu5_3), with torchvision's exact padding and pooling;
3. each tapped feature is divided by its L2 norm over channels (``+ 1e-10``); the squared
   difference of the two images' features is weighted per channel by the non-negative 1x1
   "lin" layer, averaged over space, and the 5 layers are summed. Lower is more similar.

No weights ship with the project and none are ever random: :func:`load_lpips` reads the
``.npz`` that ``scripts/convert_lpips_weights.py`` writes from the published weights
(LPIPS's ``weights/v0.1/<net>.pth`` and torchvision's ImageNet backbone); without it
evaluation shows "n/a" and the reason (:class:`LPIPSUnavailable`).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

__all__ = ["BACKBONE_CONVS", "CHANNELS", "LPIPS", "LPIPSUnavailable", "MIN_SIDE", "build_backbone", "load_lpips"]

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10

#: Channels of the 5 tapped layers.
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
#: The smallest image side each backbone's pooling accepts (measured: AlexNet fails at 30 px and
#: runs at 31, VGG16 fails at 15 and runs at 16; a smaller image can abort the process).
MIN_SIDE = {"alex": 31, "vgg": 16}
#: Convolutions of each backbone, in torchvision order, with the name used in weight files.
BACKBONE_CONVS = {
    "alex": ("conv1", "conv2", "conv3", "conv4", "conv5"),
    "vgg": tuple(
        f"block{block}_conv{i}" for block, count in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, count + 1)
    ),
}
_VGG_TAPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")

WEIGHTS_HELP = (
    "convert the published weights with scripts/convert_lpips_weights.py (see docs/evaluation.md) "
    "and pass the .npz it writes"
)


class LPIPSUnavailable(RuntimeError):
    """LPIPS cannot be computed (no weights file, or an unusable one); the message says why."""


def _alexnet() -> keras.Model:
    """``torchvision.models.alexnet().features`` up to relu5, tapping relu1..relu5."""
    inputs = keras.Input((None, None, 3))
    x = layers.ZeroPadding2D(2)(inputs)
    relu1 = layers.Conv2D(64, 11, strides=4, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(3, strides=2)(relu1)
    relu2 = layers.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2)(relu2)
    relu3 = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    relu4 = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(relu3)
    relu5 = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(relu4)
    return keras.Model(inputs, [relu1, relu2, relu3, relu4, relu5], name="lpips_alex")


def _vgg16() -> keras.Model:
    """``torchvision.models.vgg16().features`` up to relu5_3 (Keras' VGG16 has the same
    3x3 'same' convolutions and 2x2 pools), tapping relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    return keras.Model(vgg.input, [vgg.get_layer(name).output for name in _VGG_TAPS], name="lpips_vgg")


def build_backbone(net: str) -> keras.Model:
    """The multi-output feature extractor of ``net`` (``"alex"`` or ``"vgg"``), unweighted."""
    builders = {"alex": _alexnet, "vgg": _vgg16}
    if net not in builders:
        raise ValueError(f"LPIPS backbone must be one of {sorted(builders)}, got {net!r}")
    return builders[net]()


class LPIPS:
    """LPIPS distance with loaded weights; ``lpips(x0, x1)`` -> float32 ``[B]``.

    Inputs are RGB ``[B, H, W, 3]`` (or ``[H, W, 3]``) in [0, 255], uint8 or float, of at least
    :attr:`min_side` pixels per side (ValueError otherwise).
    """

    def __init__(self, net: str, backbone: keras.Model, linear: list[np.ndarray]):
        if [len(w) for w in linear] != list(CHANNELS[net]):
            raise ValueError(f"LPIPS-{net} needs lin weights of sizes {CHANNELS[net]}")
        self.net, self.backbone = net, backbone
        self.linear = [tf.constant(np.asarray(w, np.float32)) for w in linear]
        self._distance = tf.function(self._batch_distance, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2)

    def _features(self, images: tf.Tensor) -> list[tf.Tensor]:
        scaled = (images / 127.5 - 1.0 - tf.constant(SHIFT)) / tf.constant(SCALE)
        return self.backbone(scaled, training=False)

    def _batch_distance(self, x0: tf.Tensor, x1: tf.Tensor) -> tf.Tensor:
        total = 0.0
        for f0, f1, weight in zip(self._features(x0), self._features(x1), self.linear):
            f0 = f0 / (tf.sqrt(tf.reduce_sum(f0 * f0, axis=-1, keepdims=True)) + _EPS)
            f1 = f1 / (tf.sqrt(tf.reduce_sum(f1 * f1, axis=-1, keepdims=True)) + _EPS)
            total += tf.reduce_mean(tf.reduce_sum(tf.square(f0 - f1) * weight, axis=-1), axis=[1, 2])
        return total

    @property
    def min_side(self) -> int:
        return MIN_SIDE[self.net]

    def __call__(self, x0, x1) -> tf.Tensor:
        x0, x1 = (tf.cast(tf.convert_to_tensor(x), tf.float32) for x in (x0, x1))
        if min(x0.shape[-3:-1]) < self.min_side:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {self.min_side} px per side, "
                             f"got {x0.shape[-2]}x{x0.shape[-3]}")
        if x0.shape.rank == 3:
            return self._distance(x0[None], x1[None])[0]
        return self._distance(x0, x1)


def load_lpips(path: str | Path | None) -> LPIPS:
    """Builds LPIPS from a converted weights file (``.npz``: ``net``, ``<conv>/kernel``,
    ``<conv>/bias``, ``lin0``..``lin4``).

    Raises:
        LPIPSUnavailable: no path given, the file is missing, or its content does not fit.
    """
    if path is None:
        raise LPIPSUnavailable(f"no LPIPS weights given: {WEIGHTS_HELP}")
    path = Path(path)
    if not path.is_file():
        raise LPIPSUnavailable(f"LPIPS weights file not found: {path}; {WEIGHTS_HELP}")
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise LPIPSUnavailable(f"cannot read LPIPS weights {path}: {error}") from error
    net = str(arrays.get("net", ""))
    if net not in CHANNELS:
        raise LPIPSUnavailable(f"{path} names no LPIPS backbone ('net' must be one of {sorted(CHANNELS)})")
    missing = [k for conv in BACKBONE_CONVS[net] for k in (f"{conv}/kernel", f"{conv}/bias") if k not in arrays]
    missing += [f"lin{i}" for i in range(5) if f"lin{i}" not in arrays]
    if missing:
        raise LPIPSUnavailable(f"{path} lacks {', '.join(missing)}; {WEIGHTS_HELP}")
    backbone = build_backbone(net)
    try:
        for conv in BACKBONE_CONVS[net]:
            backbone.get_layer(conv).set_weights([arrays[f"{conv}/kernel"], arrays[f"{conv}/bias"]])
        return LPIPS(net, backbone, [arrays[f"lin{i}"] for i in range(5)])
    except ValueError as error:
        raise LPIPSUnavailable(f"{path} does not fit LPIPS-{net}: {error}") from error
