"""Finding the (HR, LR) pairs of a benchmark folder.

Layouts understood, for scale ``s``:

* ``HR/`` with ``LR_bicubic/X<s>/`` (DIV2K's release and the usual Set5 / Set14 / BSD100 /
  Urban100 packages): the LR of ``HR/baby.png`` is ``LR_bicubic/X4/babyx4.png`` or
  ``LR_bicubic/X4/baby.png``; an HR image without its LR gets a generated one;
* ``image_SRF_<s>/`` with ``<name>_HR.<ext>`` and ``<name>_LR.<ext>`` (Huang et al.'s
  distribution of the same sets);
* any other folder: every image under it is an HR image.

Generated LR images are MATLAB-bicubic downscales of the HR image cropped to a multiple of
``s`` (:func:`eusr_perceptual.resize.make_lr`), like the published ones, under a resize
convention (:data:`~eusr_perceptual.resize.RESIZE_CONVENTIONS`; the default ``"double"``
reproduces 4PP-EUSR Table 2) that :func:`lr_description` records in every table. ``skimage``
names the embedded held-out photographs (never trained on) as a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eusr_perceptual.errors import PathUsageError
from eusr_perceptual.data.images import check_folder, list_image_files, load_rgb8
from eusr_perceptual.resize import make_lr
from eusr_perceptual.data.sources import lr_size_mismatch, skimage_photograph_paths
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION

__all__ = ["EMBEDDED_DATASET", "Benchmark", "BenchmarkImage", "discover_benchmark", "load_pair", "lr_description"]

#: Dataset name that stands for scikit-image's held-out photographs.
EMBEDDED_DATASET = "skimage"


@dataclass(frozen=True)
class BenchmarkImage:
    """One test image: its HR file and, when the dataset ships one, its LR file."""

    name: str
    hr_path: Path
    lr_path: Path | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    layout: str
    images: tuple[BenchmarkImage, ...]


def _paired_hr_lr(root: Path, scale: int) -> Benchmark:
    lr_dir = next((d for d in (root / "LR_bicubic" / f"X{scale}", root / "LR_bicubic" / f"x{scale}") if d.is_dir()), None)
    lr_files = {p.stem: p for p in list_image_files(lr_dir)} if lr_dir else {}
    images = []
    for hr in list_image_files(root / "HR"):
        lr = lr_files.get(f"{hr.stem}x{scale}") or lr_files.get(hr.stem)
        images.append(BenchmarkImage(hr.stem, hr, lr))
    layout = f"HR + LR_bicubic/X{scale}" if lr_files else "HR (LR made with MATLAB bicubic)"
    return Benchmark(root.name, layout, tuple(images))


def _srf_pairs(root: Path, folder: Path) -> Benchmark:
    files = list_image_files(folder)
    lr_by_name = {p.stem[: -len("_LR")]: p for p in files if p.stem.endswith("_LR")}
    images = tuple(
        BenchmarkImage(p.stem[: -len("_HR")], p, lr_by_name.get(p.stem[: -len("_HR")])) for p in files if p.stem.endswith("_HR")
    )
    return Benchmark(root.name, folder.name, images)


def discover_benchmark(folder: str | Path, scale: int) -> Benchmark:
    """The images of a benchmark folder (or of ``"skimage"``) for LR scale ``scale``.

    Raises:
        PathUsageError (a FileNotFoundError): the folder does not exist, is a file, or holds no image.
    """
    if str(folder) == EMBEDDED_DATASET:
        paths = skimage_photograph_paths("held_out")
        return Benchmark(EMBEDDED_DATASET, "embedded photographs (LR made with MATLAB bicubic)", tuple(BenchmarkImage(p.stem, p) for p in paths))
    root = check_folder(folder, "benchmark folder")
    if (root / "HR").is_dir():
        benchmark = _paired_hr_lr(root, scale)
    elif (root / f"image_SRF_{scale}").is_dir():
        benchmark = _srf_pairs(root, root / f"image_SRF_{scale}")
    else:
        paths = list_image_files(root)
        benchmark = Benchmark(root.name, "HR only (LR made with MATLAB bicubic)", tuple(BenchmarkImage(p.stem, p) for p in paths))
    if not benchmark.images:
        raise PathUsageError(f"no image found in {root} (layout {benchmark.layout})")
    return benchmark


def lr_description(benchmark: Benchmark, convention: str = DEFAULT_RESIZE_CONVENTION) -> str:
    """Where the LR images of an evaluation come from, for table titles and CSV files."""
    made = f"MATLAB bicubic LR, {convention} convention"
    shipped = sum(image.lr_path is not None for image in benchmark.images)
    if not shipped:
        return made
    return "shipped LR" if shipped == len(benchmark.images) else f"shipped LR, else {made}"


def load_pair(image: BenchmarkImage, scale: int, convention: str = DEFAULT_RESIZE_CONVENTION) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, hr)`` uint8 with ``hr`` cropped to exactly ``scale`` times ``lr``; an LR image
    that is not shipped is made by :func:`~eusr_perceptual.resize.make_lr` under ``convention``.

    Raises:
        UnreadableImageError / FileNotFoundError: a file cannot be read.
        ValueError: the shipped LR does not fit the HR image at this scale, or the HR image
            is smaller than ``scale`` pixels.
    """
    hr = load_rgb8(image.hr_path)
    if min(hr.shape[:2]) < scale:
        raise ValueError(f"{hr.shape[1]}x{hr.shape[0]} is too small for x{scale}")
    if image.lr_path is None:
        lr = make_lr(hr, scale, convention)
    else:
        lr = load_rgb8(image.lr_path)
        problem = lr_size_mismatch((hr.shape[1], hr.shape[0]), (lr.shape[1], lr.shape[0]), scale)
        if problem:
            raise ValueError(problem)
    return lr, hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
