"""Where training images come from: a folder, DIV2K's or Flickr2K's release layout, TFDS
``div2k``, or the photographs scikit-image ships inside its wheel (the embedded default for
demos and tests). A prepared store (``store:<path>``) is read by :mod:`eusr_perceptual.data.store`;
:mod:`eusr_perceptual.data.samplers` dispatches a ``--data`` spec to either.

Every source returns :class:`~eusr_perceptual.data.images.TrainingImage` records (HR uint8
RGB plus any LR images the source ships). Unreadable files are skipped with one warning each
and counted; a source that yields nothing raises
:class:`~eusr_perceptual.data.images.EmptySourceError` before any training starts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import skimage.data

from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.data.images import (
    SkipReport, TrainingImage, UnreadableImageError, header_size, list_image_files, load_many, load_rgb8,
)
from eusr_perceptual.resize import imresize

log = logging.getLogger(__name__)

#: Embedded photographs used for training in the demo (scikit-image's bundled files).
SKIMAGE_TRAIN = (
    "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg",
    "retina.jpg", "camera.png", "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png",
)
#: Embedded photographs held out for evaluation (never trained on).
SKIMAGE_HELD_OUT = ("astronaut.png", "chelsea.png", "coffee.png")

DIV2K_HELP = (
    "DIV2K is expected in its release layout: <root>/DIV2K_train_HR/0001.png ... and optionally "
    "<root>/DIV2K_train_LR_bicubic/X2/0001x2.png (likewise X4, X8; and DIV2K_valid_*). Download "
    "the archives from the NTIRE 2017 DIV2K page (data.vision.ee.ethz.ch/cvl/DIV2K) and unzip "
    "them into one folder. Flickr2K likewise: <root>/Flickr2K_HR/000001.png and optionally "
    "<root>/Flickr2K_LR_bicubic/X2/000001x2.png."
)




class MisfitLRError(ValueUsageError):
    """Shipped LR images whose size is not their HR image's divided by the scale."""




def skimage_photograph_paths(split: str = "train") -> list[Path]:
    """Paths of scikit-image's bundled photographs: ``train``, ``held_out`` or ``all``."""
    names = {"train": SKIMAGE_TRAIN, "held_out": SKIMAGE_HELD_OUT, "all": SKIMAGE_TRAIN + SKIMAGE_HELD_OUT}[split]
    return [Path(skimage.data.data_dir) / name for name in names]


@dataclass(frozen=True)
class SourceFile:
    """One training image file and the LR files its source ships, keyed by scale."""

    name: str
    hr: Path
    lr: dict[int, Path] = field(default_factory=dict)


def lr_size_mismatch(hr_size: tuple[int, int], lr_size: tuple[int, int], scale: int, hr_name: str = "") -> str | None:
    """Why an image of ``lr_size`` cannot be the x``scale`` LR of an HR image of ``hr_size``
    (both ``(width, height)``), or None when it fits.

    The convention of the published LR images (DIV2K, Flickr2K, the benchmark packages) and of
    :func:`~eusr_perceptual.resize.make_lr`: the HR image is cropped to a multiple of the
    scale, so each side of the LR is the HR side floor-divided by the scale.
    """
    expected = (hr_size[0] // scale, hr_size[1] // scale)
    if tuple(lr_size) == expected:
        return None
    return (f"LR is {lr_size[0]}x{lr_size[1]} but HR {hr_name + ' ' if hr_name else ''}{hr_size[0]}x{hr_size[1]} "
            f"at x{scale} needs {expected[0]}x{expected[1]}: wrong scale folder?")


def check_shipped_lr(files: Sequence[SourceFile]) -> None:
    """Refuses shipped LR images that do not fit their HR image, from the file headers (no pixel
    is decoded). Unchecked, a wrong ``X2/`` folder trains silently on misaligned pairs, and a wrong
    ``X4/`` crashes mid-run inside ``tf.data``. Unreadable files are left to the loaders.

    Raises:
        MisfitLRError: naming the first misfit file and the size it needs, and their number.
    """
    misfits = []
    for file in files:
        try:
            hr_size = header_size(file.hr) if file.lr else None
            misfits.extend(f"{path}: {problem}" for scale, path in sorted(file.lr.items())
                           if (problem := lr_size_mismatch(hr_size, header_size(path), scale, file.hr.name)))
        except (UnreadableImageError, FileNotFoundError):
            continue
    if misfits:
        raise MisfitLRError(f"{len(misfits)} shipped LR image(s) do not fit their HR image; first: {misfits[0]}")


def _release_files(root: Path, sets: Sequence[str], scales: Sequence[int]) -> list[SourceFile]:
    """DIV2K/Flickr2K release layout: ``<root>/<set>_HR/<name>.png`` and, when shipped,
    ``<root>/<set>_LR_bicubic/X<s>/<name>x<s>.png`` (checked by :func:`check_shipped_lr`)."""
    files = []
    for name in sets:
        hr_dir = root / f"{name}_HR"
        if not hr_dir.is_dir():
            raise FileNotFoundError(f"missing {hr_dir}. {DIV2K_HELP}")
        for path in list_image_files(hr_dir):
            shipped = {scale: root / f"{name}_LR_bicubic" / f"X{scale}" / f"{path.stem}x{scale}.png" for scale in scales}
            files.append(SourceFile(path.stem, path, {s: p for s, p in shipped.items() if p.is_file()}))
    check_shipped_lr(files)
    return files


def source_files(spec: str | Path, scales: Sequence[int] = (2, 4, 8)) -> list[SourceFile]:
    """The image files of a file-based source (every ``--data`` form but ``tfds:`` and ``store:``).

    Raises:
        FileNotFoundError: the folder or layout is missing (the message says what is expected).
        MisfitLRError: a shipped LR image's size does not fit its HR image.
    """
    spec = str(spec)
    if spec == "skimage" or spec.startswith("skimage:"):
        split = spec.split(":", 1)[1] if ":" in spec else "train"
        return [SourceFile(path.stem, path) for path in skimage_photograph_paths(split)]
    if spec.startswith("div2k:"):
        match = re.fullmatch(r"div2k:(.+?)(?::(train|valid|train\+valid))?", spec)
        splits = (match.group(2) or "train").split("+")
        return _release_files(Path(match.group(1)), [f"DIV2K_{split}" for split in splits], scales)
    if spec.startswith("flickr2k:"):
        return _release_files(Path(spec[len("flickr2k:"):]), ["Flickr2K"], scales)
    return [SourceFile(path.stem, path) for path in list_image_files(spec)]


def _records(files: Sequence[SourceFile], report: SkipReport, min_side: int) -> list[TrainingImage]:
    def accept(path: Path, image: np.ndarray) -> str | None:
        if min(image.shape[:2]) < min_side:
            return f"{image.shape[1]}x{image.shape[0]} is smaller than the {min_side} px the patches need"
        return None

    by_path = {file.hr: file for file in files}
    return [
        TrainingImage(by_path[path].name, image, {s: load_rgb8(p) for s, p in by_path[path].lr.items()})
        for path, image in load_many(list(by_path), report, accept)
    ]


def parse_tfds_spec(spec: str) -> tuple[str, str, str | None]:
    """``tfds:<name>[:<split>][@<data_dir>]`` as (name with config, split, data dir)."""
    body, _, data_dir = spec[len("tfds:"):].partition("@")
    name, _, split = body.partition(":")
    return (name if "/" in name else f"{name}/bicubic_x2"), split or "train", data_dir or None


def tfds_hr_images(name: str, split: str, data_dir: str | None, start: int = 0, count: int | None = None):
    """Yields ``(index, hr)`` for examples ``start, start + 1, ...`` (``count`` of them, or all)."""
    import tensorflow_datasets as tfds  # lazy: slow to import, and only tfds: sources need it

    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises several types for "not prepared here"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} ({split}) is not prepared in {data_dir or '~/tensorflow_datasets'}: {error}. "
            f"Run `tfds build {name}` on a machine with internet access and copy the data dir here, "
            f"or use the DIV2K folder layout instead. {DIV2K_HELP}"
        ) from error
    dataset = dataset.skip(start).take(-1 if count is None else count)
    for offset, example in enumerate(tfds.as_numpy(dataset)):
        yield start + offset, example["hr"]


def _tfds_records(name: str, split: str, data_dir: str | None, min_side: int, report: SkipReport):
    records = []
    for index, hr in tfds_hr_images(name, split, data_dir):
        if min(hr.shape[:2]) < min_side:
            report.skip(f"{name}[{index}]", f"smaller than {min_side} px")
            continue
        records.append(TrainingImage(f"{name}_{index:04d}", hr))
    return records


def load_source_images(spec: str, scales: Sequence[int], min_side: int, report: SkipReport) -> list[TrainingImage]:
    """The images of a ``--data`` source other than a store (folder, DIV2K/Flickr2K layout,
    ``skimage``, ``tfds:``), shipped LR included; too-small and unreadable files are counted in
    ``report`` (:func:`~eusr_perceptual.data.samplers.load_training_images` is the entry point)."""
    if spec.startswith("tfds:"):
        return _tfds_records(*parse_tfds_spec(spec), min_side, report)
    return _records(source_files(spec, scales), report, min_side)


def with_downscaled_copies(images: Sequence[TrainingImage], factor: int = 2) -> list[TrainingImage]:
    """Adds each image's MATLAB-bicubic 1/``factor`` version as an extra HR image.

    4PP-EUSR section 4.3: the 900 DIV2K images plus their 2x-downscaled versions, 1,800 in
    all, are the fine-tuning ground truth. Shipped LR images belong to the original size and
    are not carried over.
    """
    copies = [TrainingImage(f"{image.name}_down{factor}", imresize(image.hr, 1.0 / factor)) for image in images]
    return [*images, *copies]
