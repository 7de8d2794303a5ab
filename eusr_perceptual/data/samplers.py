"""What a ``--data`` spec gives a trainer: its images (:func:`load_training_images`) or its
per-step patch sampler (:func:`make_sampler`), from a source in memory or from a prepared store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from eusr_perceptual.data.images import EmptySourceError, SkipReport, TrainingImage
from eusr_perceptual.data.patches import PatchSampler
from eusr_perceptual.data.sources import load_source_images, with_downscaled_copies
from eusr_perceptual.data.store import StoreSampler, open_store
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION

log = logging.getLogger(__name__)


def load_training_images(
    spec: str | Path, *, scales: Sequence[int] = (2, 4, 8), min_side: int = 0, report: SkipReport | None = None
) -> list[TrainingImage]:
    """Loads a training source.

    Args:
        spec: ``"skimage"`` / ``"skimage:held_out"`` (embedded photographs), ``"div2k:<root>"``
            optionally followed by ``:train``, ``:valid`` or ``:train+valid``,
            ``"flickr2k:<root>"``, ``"tfds:div2k"`` (optionally
            ``tfds:div2k/bicubic_x4:train@<data_dir>``), ``"store:<path>"`` (a prepared store:
            its images memory-mapped, LR included; :func:`make_sampler` is the streaming way to
            train on it), or a folder of images (PNG/JPEG/BMP/TIFF, searched recursively).
        scales: which shipped LR versions to pick up (DIV2K/Flickr2K layout, stores).
        min_side: images whose shorter side is below this are skipped with a warning.

    Raises:
        FileNotFoundError: the folder or layout is missing (the message says what is expected).
        EmptySourceError: nothing usable was found.
    """
    report = report if report is not None else SkipReport()
    spec = str(spec)
    if spec.startswith("store:"):
        records = []
        for image in open_store(spec[len("store:"):], scales=scales).training_images(scales):
            if min(image.hr.shape[:2]) < min_side:
                report.skip(image.name, f"smaller than the {min_side} px the patches need")
            else:
                records.append(image)
    else:
        records = load_source_images(spec, scales, min_side, report)
    if not records:
        raise EmptySourceError(
            f"no usable training image in {spec!r} ({report.count} skipped"
            + (f": {report.skipped[0][1]}" if report.skipped else "")
            + ")"
        )
    if report.count:
        log.warning("%d file(s) skipped in %s", report.count, spec)
    return records


def make_sampler(
    data: str | Path,
    scales: Sequence[int],
    patch_size: int,
    batch_size: int,
    seed: int = 0,
    scale_weights: Sequence[float] | None = None,
    *,
    downscaled_copies: int = 0,
    augment: bool = True,
    lr_convention: str = DEFAULT_RESIZE_CONVENTION,
):
    """The per-step patch sampler of a ``--data`` source, for every trainer.

    ``store:<path>`` gives a :class:`~eusr_perceptual.data.store.StoreSampler` (memory-mapped,
    bounded memory, start-up in milliseconds; the store must hold ``scales`` and, when
    ``downscaled_copies`` is set, have been prepared with the same factor). Any other source is
    loaded into memory, given its MATLAB-bicubic 1/``downscaled_copies`` copies when asked
    (4PP-EUSR section 4.3), and sampled by a :class:`~eusr_perceptual.data.patches.PatchSampler`
    that makes missing LR images under ``lr_convention`` (a store must have been prepared under
    it). Both give the same batch for the same images, seed and step.
    """
    data = str(data)
    if data.startswith("store:"):
        store = open_store(data[len("store:"):], scales=scales, convention=lr_convention,
                           downscaled_copies=downscaled_copies)
        return StoreSampler(store, scales, patch_size, batch_size, seed, augment, scale_weights=scale_weights)
    images = load_training_images(data, scales=scales, min_side=patch_size * max(scales))
    if downscaled_copies:
        images = with_downscaled_copies(images, downscaled_copies)
    return PatchSampler(images, scales, patch_size, batch_size, seed, augment, scale_weights=scale_weights,
                        lr_convention=lr_convention)
