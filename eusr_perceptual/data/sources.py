"""Where training images come from: a folder, DIV2K's release layout, TFDS ``div2k``, or the
photographs scikit-image ships inside its wheel (the embedded default for demos and tests).

Every source returns :class:`TrainingImage` records (HR uint8 RGB plus any LR images the
source ships). Unreadable files are skipped with one warning each and counted; a source that
yields nothing raises :class:`EmptySourceError` before any training starts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from eusr_perceptual.data.images import SkipReport, list_image_files, load_many, load_rgb8

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
    "them into one folder."
)


class EmptySourceError(ValueError):
    """A data source produced no usable image."""


@dataclass
class TrainingImage:
    """One HR image and the LR versions its source ships, keyed by scale."""

    name: str
    hr: np.ndarray
    lr: dict[int, np.ndarray] = field(default_factory=dict)


def skimage_photograph_paths(split: str = "train") -> list[Path]:
    """Paths of scikit-image's bundled photographs: ``train``, ``held_out`` or ``all``."""
    import skimage.data

    names = {"train": SKIMAGE_TRAIN, "held_out": SKIMAGE_HELD_OUT, "all": SKIMAGE_TRAIN + SKIMAGE_HELD_OUT}[split]
    return [Path(skimage.data.data_dir) / name for name in names]


def _records(paths: Sequence[Path], report: SkipReport, min_side: int) -> list[TrainingImage]:
    def accept(path: Path, image: np.ndarray) -> str | None:
        if min(image.shape[:2]) < min_side:
            return f"{image.shape[1]}x{image.shape[0]} is smaller than the {min_side} px the patches need"
        return None

    return [TrainingImage(path.stem, image) for path, image in load_many(paths, report, accept)]


def _div2k_records(root: Path, splits: Sequence[str], scales: Sequence[int], report: SkipReport, min_side: int):
    records = []
    for split in splits:
        hr_dir = root / f"DIV2K_{split}_HR"
        if not hr_dir.is_dir():
            raise FileNotFoundError(f"missing {hr_dir}. {DIV2K_HELP}")
        for record in _records(list_image_files(hr_dir), report, min_side):
            for scale in scales:
                lr_path = root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{record.name}x{scale}.png"
                if lr_path.is_file():
                    record.lr[scale] = load_rgb8(lr_path)
            records.append(record)
    return records


def _tfds_records(name: str, split: str, data_dir: str | None, min_side: int, report: SkipReport):
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises several types for "not prepared here"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} ({split}) is not prepared in {data_dir or '~/tensorflow_datasets'}: {error}. "
            f"Run `tfds build {name}` on a machine with internet access and copy the data dir here, "
            f"or use the DIV2K folder layout instead. {DIV2K_HELP}"
        ) from error
    records = []
    for index, example in enumerate(tfds.as_numpy(dataset)):
        hr = example["hr"]
        if min(hr.shape[:2]) < min_side:
            report.skip(f"{name}[{index}]", f"smaller than {min_side} px")
            continue
        records.append(TrainingImage(f"{name}_{index:04d}", hr))
    return records


def load_training_images(
    spec: str | Path, *, scales: Sequence[int] = (2, 4, 8), min_side: int = 0, report: SkipReport | None = None
) -> list[TrainingImage]:
    """Loads a training source.

    Args:
        spec: ``"skimage"`` / ``"skimage:held_out"`` (embedded photographs), ``"div2k:<root>"``
            optionally followed by ``:train``, ``:valid`` or ``:train+valid``, ``"tfds:div2k"``
            (optionally ``tfds:div2k/bicubic_x4:train@<data_dir>``), or a folder of images
            (PNG/JPEG/BMP/TIFF, searched recursively).
        scales: which shipped LR versions to pick up (DIV2K layout).
        min_side: images whose shorter side is below this are skipped with a warning.

    Raises:
        FileNotFoundError: the folder or layout is missing (the message says what is expected).
        EmptySourceError: nothing usable was found.
    """
    report = report if report is not None else SkipReport()
    spec = str(spec)
    if spec == "skimage" or spec.startswith("skimage:"):
        split = spec.split(":", 1)[1] if ":" in spec else "train"
        records = _records(skimage_photograph_paths(split), report, min_side)
    elif spec.startswith("div2k:"):
        match = re.fullmatch(r"div2k:(.+?)(?::(train|valid|train\+valid))?", spec)
        root, splits = Path(match.group(1)), (match.group(2) or "train").split("+")
        records = _div2k_records(root, splits, scales, report, min_side)
    elif spec.startswith("tfds:"):
        body, _, data_dir = spec[len("tfds:"):].partition("@")
        name, _, split = body.partition(":")
        records = _tfds_records(name if "/" in name else f"{name}/bicubic_x2", split or "train", data_dir or None, min_side, report)
    else:
        records = _records(list_image_files(spec), report, min_side)
    if not records:
        raise EmptySourceError(
            f"no usable training image in {spec!r} ({report.count} skipped"
            + (f": {report.skipped[0][1]}" if report.skipped else "")
            + ")"
        )
    if report.count:
        log.warning("%d file(s) skipped in %s", report.count, spec)
    return records


def with_downscaled_copies(images: Sequence[TrainingImage], factor: int = 2) -> list[TrainingImage]:
    """Adds each image's MATLAB-bicubic 1/``factor`` version as an extra HR image.

    4PP-EUSR section 4.3: the 900 DIV2K images plus their 2x-downscaled versions, 1,800 in
    all, are the fine-tuning ground truth. Shipped LR images belong to the original size and
    are not carried over.
    """
    from eusr_perceptual.resize import imresize

    copies = [TrainingImage(f"{image.name}_down{factor}", imresize(image.hr, 1.0 / factor)) for image in images]
    return [*images, *copies]
