"""Input pipelines of the score predictors (4PP-EUSR section 4.2).

"we do not employ the rescaling step and only employ the cropping step to make the input image
have a size of 192x192 pixels, because the objective of our score predictors is to evaluate
the quality of patches, not the whole given image." Hence:

* training: a random 192x192 crop and a random horizontal flip of each image;
* validation: the centre 192x192 crop;
* an image smaller than the crop on a side is **padded**, never rescaled (rescaling would
  change exactly the sharpness and artefacts the predictors judge): the image is centred and
  mirrored outward (symmetric reflection, repeated as often as needed) up to the crop size.

Images are decoded lazily (AVA has 255,000 files) with :func:`load_rgb8` in ``tf.data``, the
project's one image reader, so that the predictors see files as training, evaluation and
upscaling do: upright (EXIF orientation), 16-bit scaled by bit depth, grayscale, RGBA and
palette files as 8-bit RGB. A file that cannot be read (corrupt, truncated, a decompression
bomb) is skipped: it is reported once, with a warning, in the dataset's ``SkipReport``.

Training data follow the convention of :func:`eusr_perceptual.training.runs.fit_run`: the
dataset built for ``start_step`` yields the batches of steps ``start_step, start_step + 1, ...``
exactly as an uninterrupted run would (seeded shuffling per epoch; crops and flips drawn from
stateless seeds derived from the sample's position in the stream).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from eusr_perceptual.data.images import SkipReport, UnreadableImageError, load_rgb8
from nima.datasets.common import ScoredImages


class ImageDecoder:
    """``load_rgb8`` for ``tf.numpy_function``: an unreadable file yields an empty image and is
    reported once, however many epochs read it."""

    def __init__(self, report: SkipReport):
        self.report = report
        self.unreadable: set[str] = set()  # paths as given
        self._lock = threading.Lock()

    def __call__(self, path: bytes) -> np.ndarray:
        name = path.decode()
        try:
            return load_rgb8(name)
        except (UnreadableImageError, FileNotFoundError) as error:
            with self._lock:
                if name not in self.unreadable:
                    self.unreadable.add(name)
                    self.report.skip(Path(name).name, str(error))
            return np.zeros((0, 0, 3), np.uint8)

    def decode(self, path: tf.Tensor) -> tf.Tensor:
        image = tf.numpy_function(self, [path], tf.uint8, stateful=True)
        image.set_shape([None, None, 3])
        return image


def readable_only(images: ScoredImages, decoder: ImageDecoder, workers: int = 8) -> ScoredImages:
    """The images whose files decode (each read once, in threads); the others are reported
    through ``decoder``. Used on the validation set so that every pass over it, and the first
    batch that Keras's ``evaluate`` builds from, hold the same images."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        readable = list(pool.map(lambda path: decoder(path.encode()).size > 0, images.paths))
    return images.subset(np.flatnonzero(readable))


def _mirror_indices(length: tf.Tensor, target: int) -> tf.Tensor:
    """Indices into ``range(length)`` of a symmetric reflection centred in ``max(length, target)``."""
    total = tf.maximum(length, target)
    positions = tf.range(total) - (total - length) // 2
    folded = tf.math.floormod(positions, 2 * length)
    return tf.where(folded < length, folded, 2 * length - 1 - folded)


def pad_to_size(image: tf.Tensor, size: int) -> tf.Tensor:
    """Mirror-pads an [H, W, C] image to at least ``size`` on each side (unchanged if large enough)."""
    shape = tf.shape(image)
    image = tf.gather(image, _mirror_indices(shape[0], size), axis=0)
    return tf.gather(image, _mirror_indices(shape[1], size), axis=1)


def random_crop_and_flip(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A random ``size`` x ``size`` crop, flipped left-right with probability 1/2 (stateless)."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(pad_to_size(image, size), [size, size, 3], crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def centre_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    image = pad_to_size(image, size)
    shape = tf.shape(image)
    return tf.image.crop_to_bounding_box(image, (shape[0] - size) // 2, (shape[1] - size) // 2, size, size)


def _decoded(images: ScoredImages, indices: tf.data.Dataset, decoder: ImageDecoder) -> tf.data.Dataset:
    """(position, image uint8, distribution) for (position, index) elements; unreadable files dropped."""
    paths = tf.constant(images.paths)
    distributions = tf.constant(images.distributions)

    def load(position, index):
        return position, decoder.decode(paths[index]), distributions[index]

    return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE).filter(lambda _, image, __: tf.size(image) > 0)


def training_dataset(
    images: ScoredImages, *, crop_size: int, batch_size: int, seed: int, decoder: ImageDecoder, start_step: int = 0
) -> tf.data.Dataset:
    """Infinite batches (float32 images [B, s, s, 3] in [0, 255], distributions [B, 10]) of
    random crops and flips, reshuffled every epoch, starting at step ``start_step``."""
    first = start_step * batch_size
    indices = (
        tf.data.Dataset.range(len(images))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .skip(first)
        .enumerate(start=first)
    )

    def augment(position, image, distribution):
        sample_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(position, tf.int64)])
        return tf.cast(random_crop_and_flip(image, crop_size, sample_seed), tf.float32), distribution

    return (
        _decoded(images, indices, decoder)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def validation_dataset(
    images: ScoredImages, *, crop_size: int, batch_size: int, decoder: ImageDecoder
) -> tf.data.Dataset:
    """One pass of centre crops (float32 [B, s, s, 3] in [0, 255]) and distributions, in order."""
    indices = tf.data.Dataset.range(len(images)).enumerate()

    def crop(_, image, distribution):
        return tf.cast(centre_crop(image, crop_size), tf.float32), distribution

    return (
        _decoded(images, indices, decoder)
        .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


@contextlib.contextmanager
def unknown_length_is_fine():
    """Silences Keras's "Your input ran out of data" warning, which it gives whenever a
    dataset of unknown length ends, as the validation set does (unreadable files are
    filtered out, so tf.data cannot know its length)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield
