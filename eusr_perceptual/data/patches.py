"""Random LR/HR patch batches for training, deterministic per step (4PP-EUSR section 4.1).

The batch of training step ``b`` is a pure function of ``(seed, b)``: its scale, the images,
the crop positions and the rot90/flip augmentation are drawn from a generator seeded with
both. A run resumed at step ``b`` therefore sees exactly the batches of the uninterrupted run,
and every step's scale is known before the step runs (the multi-scale trainer needs that to
pick the path to train).

LR images are made once per image and scale, with MATLAB-compatible bicubic downscaling of
the HR image cropped to a multiple of the scale, unless the source ships its own LR (DIV2K's
``X2``/``X4``/``X8`` folders). Images too small for one patch at the largest scale are
skipped with a warning and counted.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import cv2
import numpy as np
import tensorflow as tf

from eusr_perceptual.data.images import EmptySourceError, SkipReport, TrainingImage
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION, make_lr

log = logging.getLogger(__name__)




def _rotate(code: int):
    return lambda patch, out: cv2.rotate(patch, code, dst=out)


def _flip(code: int):
    return lambda patch, out: cv2.flip(patch, code, dst=out)


#: ``np.rot90(a, k)`` followed, when flipped, by ``[:, ::-1]``, as OpenCV copies (k, flip).
_AUGMENTATIONS = {
    (1, False): _rotate(cv2.ROTATE_90_COUNTERCLOCKWISE), (2, False): _flip(-1),
    (3, False): _rotate(cv2.ROTATE_90_CLOCKWISE), (0, True): _flip(1),
    (1, True): lambda patch, out: cv2.flip(cv2.transpose(patch), -1, dst=out),  # the anti-transpose
    (2, True): _flip(0), (3, True): lambda patch, out: cv2.transpose(patch, dst=out),
}


def augment_into(patch: np.ndarray, out: np.ndarray, rotations: int, flip: bool) -> None:
    """Writes ``np.rot90(patch, rotations)`` (counter-clockwise quarter turns), then, when
    ``flip``, its horizontal mirror, into the C-contiguous uint8 array ``out`` of the result's shape.

    OpenCV's SIMD copies, which release the GIL and are faster than PIL's or numpy's strided
    views. The patch copies are most of a batch's cost, and the tf.data workers run them in
    parallel only when the GIL is free (``benchmarks/data_pipeline.py``; the timings, per patch
    and in batches/s before and after, are in docs/distributed.md).
    """
    operation = _AUGMENTATIONS.get((rotations % 4, bool(flip)))
    if operation is None:
        out[...] = patch
    else:
        operation(patch, out)


class PatchSampler:
    """Builds the per-step batches of (LR patch, HR patch) in [0, 255] float32.

    Args:
        images: the training images (from :func:`~eusr_perceptual.data.samplers.load_training_images`).
        scales: the scales a step may train; each step draws one.
        scale_weights: relative probabilities of the scales (default: uniform, as the paper).
        patch_size: LR patch side (48 in the paper); HR patches are ``patch_size * scale``.
        batch_size: patches per step (16 in the paper).
        seed: the run's data seed.
        augment: random rot90 and flips, identical for LR and HR.
        lr_convention: how LR images are made when the source ships none (:func:`make_lr`).
    """

    def __init__(
        self,
        images: Sequence[TrainingImage],
        scales: Sequence[int] = (2, 4, 8),
        patch_size: int = 48,
        batch_size: int = 16,
        seed: int = 0,
        augment: bool = True,
        report: SkipReport | None = None,
        workers: int = 8,
        scale_weights: Sequence[float] | None = None,
        lr_convention: str = DEFAULT_RESIZE_CONVENTION,
    ):
        self.scales = tuple(int(s) for s in scales)
        self.lr_convention = lr_convention
        weights = np.ones(len(self.scales)) if scale_weights is None else np.asarray(scale_weights, np.float64)
        if weights.shape != (len(self.scales),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"scale_weights must be {len(self.scales)} non-negative numbers, got {scale_weights}")
        self.scale_probabilities = weights / weights.sum()
        self.patch_size, self.batch_size, self.seed, self.augment = patch_size, batch_size, seed, augment
        report = report if report is not None else SkipReport()
        needed = patch_size * max(self.scales)
        usable = []
        for image in images:
            if min(image.hr.shape[:2]) < needed:
                report.skip(image.name, f"{image.hr.shape[1]}x{image.hr.shape[0]} is smaller than one {needed} px HR patch")
            else:
                usable.append(image)
        if not usable:
            raise EmptySourceError(f"no training image is at least {needed} px on each side ({report.count} skipped)")
        self.images = usable
        self.lr = self._make_lr_cache(workers)

    def _make_lr_cache(self, workers: int) -> dict[int, list[np.ndarray]]:
        """LR images, made once per image and scale (parallel; numpy releases the GIL)."""

        def lr_for(args):
            image, scale = args
            return image.lr[scale] if scale in image.lr else make_lr(image.hr, scale, self.lr_convention)

        jobs = [(image, scale) for scale in self.scales for image in self.images]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            made = list(pool.map(lr_for, jobs))
        n = len(self.images)
        return {scale: made[i * n:(i + 1) * n] for i, scale in enumerate(self.scales)}

    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(step)])

    def _draw_scale(self, rng: np.random.Generator) -> int:
        return self.scales[rng.choice(len(self.scales), p=self.scale_probabilities)]

    def scale_for_step(self, step: int) -> int:
        """The scale trained at ``step`` (the first draw of that step's generator)."""
        return self._draw_scale(self._rng(step))

    def uint8_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The (LR, HR) uint8 batch of ``step``: [B, P, P, 3] and [B, P*s, P*s, 3]."""
        rng = self._rng(step)
        scale = self._draw_scale(rng)
        p, hp = self.patch_size, self.patch_size * scale
        lr_batch = np.empty((self.batch_size, p, p, 3), np.uint8)
        hr_batch = np.empty((self.batch_size, hp, hp, 3), np.uint8)
        for i in range(self.batch_size):
            index = rng.integers(len(self.images))
            lr_image, hr_image = self.lr[scale][index], self.images[index].hr
            y, x = rng.integers(lr_image.shape[0] - p + 1), rng.integers(lr_image.shape[1] - p + 1)
            rotations, flip = (int(rng.integers(4)), bool(rng.integers(2))) if self.augment else (0, False)
            augment_into(lr_image[y:y + p, x:x + p], lr_batch[i], rotations, flip)
            augment_into(hr_image[y * scale:y * scale + hp, x * scale:x * scale + hp], hr_batch[i], rotations, flip)
        return lr_batch, hr_batch

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of ``step`` as the trainers receive it: float32 in [0, 255]."""
        return tuple(array.astype(np.float32) for array in self.uint8_batch(step))

    def dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """Infinite dataset whose k-th element is the batch of step ``start_step + k``.

        The patches are cut in uint8 (a quarter of the bytes through ``numpy_function``) and
        cast to float32 by a TensorFlow op, outside the GIL.
        """
        p = self.patch_size
        hr_side = p * self.scales[0] if len(self.scales) == 1 else None

        def fetch(step):
            lr, hr = tf.numpy_function(self.uint8_batch, [step], [tf.uint8, tf.uint8], stateful=False)
            lr.set_shape((self.batch_size, p, p, 3))
            hr.set_shape((self.batch_size, hr_side, hr_side, 3))
            return tf.cast(lr, tf.float32), tf.cast(hr, tf.float32)

        return (
            tf.data.Dataset.counter(start_step, dtype=tf.int64)
            .map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
