"""Callbacks shared by the trainers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf


class TensorBoardImages(keras.callbacks.Callback):
    """Writes sample images to TensorBoard at the end of every epoch (checkpoint interval).

    ``render()`` returns ``{tag: uint8 array [H, W, 3] or [N, H, W, 3]}``; each tag becomes an
    image summary at the run's global step (epoch end x ``steps_per_epoch``), so a resumed
    run continues the same x-axis.
    """

    def __init__(self, log_dir: str | Path, render: Callable[[], Mapping[str, np.ndarray]], steps_per_epoch: int):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))
        self.render, self.steps_per_epoch = render, steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_epoch
        with self.writer.as_default():
            for tag, image in self.render().items():
                batch = image if image.ndim == 4 else image[None]
                tf.summary.image(tag, batch, step=step, max_outputs=len(batch))
        self.writer.flush()


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """Concatenates same-height uint8 images horizontally (e.g. bicubic | SR | HR)."""
    return np.concatenate(images, axis=1)
