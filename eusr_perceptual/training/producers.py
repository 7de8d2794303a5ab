"""Producers: how a GAN trainer makes SR images from an LR batch.

* :class:`SinglePath` runs one path, ``generator(lr, scale=s)`` (SRGAN, ESRGAN, ...); on a
  multi-scale EUSR only that path's variables are trained.
* :class:`MultiPass` is 4PP-EUSR's multi-pass upscaling (section 3.2): the x4, x2-x2 and
  x8-down images stacked along the batch, so ``repeats`` = 3.

``producer(generator, lr, training)`` returns float32 SR images; ``producer.variables(g)``
the generator variables a step updates.
"""

from __future__ import annotations

import tensorflow as tf

from eusr_perceptual.models.multipass import DOWNSCALE_METHODS, PATHS, multipass_upscale


class SinglePath:
    """SR = ``generator(lr, scale=scale)``."""

    repeats = 1

    def __init__(self, scale: int = 4):
        self.scale = int(scale)

    def __call__(self, generator, lr, training: bool = True) -> tf.Tensor:
        return tf.cast(generator(lr, scale=self.scale, training=training), tf.float32)

    def variables(self, generator) -> list:
        by_path = getattr(generator, "path_variables", None)
        return by_path(self.scale) if by_path is not None else generator.trainable_variables

    def describe(self) -> str:
        return f"x{self.scale}"


class MultiPass:
    """4PP-EUSR's three x4 images (:func:`multipass_upscale`) stacked in :data:`PATHS` order."""

    repeats = len(PATHS)
    scale = 4

    def __init__(self, downscale: str = "matlab"):
        if downscale not in DOWNSCALE_METHODS:
            raise ValueError(f"downscale must be one of {DOWNSCALE_METHODS}, got {downscale!r}")
        self.downscale = downscale

    def __call__(self, generator, lr, training: bool = True) -> tf.Tensor:
        outputs = multipass_upscale(generator, lr, self.downscale)
        return tf.concat([tf.cast(outputs[path], tf.float32) for path in PATHS], axis=0)

    def split(self, sr: tf.Tensor) -> dict[str, tf.Tensor]:
        """The stacked images back as ``{path: [B, ...]}``."""
        return dict(zip(PATHS, tf.split(sr, self.repeats, axis=0)))

    def variables(self, generator) -> list:
        return generator.trainable_variables

    def describe(self) -> str:
        return f"multi-pass {'/'.join(PATHS)} ({self.downscale} downscale)"


def make_producer(kind: str, scale: int = 4, downscale: str = "matlab"):
    """``"single"`` -> :class:`SinglePath` (``scale``); ``"multipass"`` -> :class:`MultiPass`."""
    if kind == "single":
        return SinglePath(scale)
    if kind == "multipass":
        return MultiPass(downscale)
    raise ValueError(f"producer must be 'single' or 'multipass', got {kind!r}")
