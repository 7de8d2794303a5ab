"""Scoring methods on a benchmark: per-image PSNR, SSIM, NIQE (and LPIPS) and their means.

As 4PP-EUSR section 5: every SR image is rounded to uint8 (as saved outputs are), PSNR and
SSIM compare its Y channel with the HR image's and NIQE scores its Y channel, all with 4
pixels cropped at each border. LPIPS compares the RGB images with the same crop.

Generated LR images and the bicubic baseline follow one resize convention
(:func:`~eusr_perceptual.resize.imresize_uint8`): ``"double"``, the default, reproduces
4PP-EUSR Table 2's bicubic rows; ``"uint8"`` is MATLAB's native uint8 ``imresize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import keras
import numpy as np

from eusr_perceptual.data.images import SkipReport, UnreadableImageError
from eusr_perceptual.evaluation.benchmarks import Benchmark, load_pair, lr_description
from eusr_perceptual.evaluation.results import ResultFolder, ResultsMismatchError
from eusr_perceptual.inference import check_route, make_tile_function, route_factor, upscale_image
from eusr_perceptual.metrics.fidelity import SSIM_WINDOW_SIZE, psnr, ssim
from eusr_perceptual.metrics.niqe import niqe
from eusr_perceptual.metrics.vif import vifp
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION, RESIZE_CONVENTIONS, imresize_uint8

__all__ = ["BORDER", "DatasetResult", "ImageScores", "Method", "SummaryRow", "evaluate_dataset", "summarize"]

#: Pixels cropped at each border before every metric (4PP-EUSR section 5).
BORDER = 4


@dataclass
class Method:
    """An upscaler to score: MATLAB bicubic (``model=None``), a generator along a route, or
    the SR images of a result folder (``results``, :mod:`.results`; route ``x<scale>``)."""

    label: str
    route: str = "x4"
    model: object | None = None
    tile: int | None = 128
    overlap: int = 32
    self_ensemble: bool = False
    results: ResultFolder | None = None
    _tile_function: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.model is not None:
            check_route(self.model, self.route)

    @property
    def scale(self) -> int:
        return route_factor(self.route)

    def upscale(self, lr: np.ndarray, convention: str = DEFAULT_RESIZE_CONVENTION) -> np.ndarray:
        """uint8 SR image of a uint8 LR image (bicubic: under the resize ``convention``)."""
        if self.model is None:
            return imresize_uint8(lr, self.scale, convention)
        if self._tile_function is None:
            self._tile_function = make_tile_function(self.model, self.route, self.self_ensemble)
        return upscale_image(
            self.model, lr, self.route, tile=self.tile, overlap=self.overlap, tile_function=self._tile_function
        )


@dataclass(frozen=True)
class ImageScores:
    dataset: str
    method: str
    image: str
    psnr: float
    ssim: float
    niqe: float  # NaN when the cropped image is smaller than a NIQE block
    lpips: float | None
    vif: float  # pixel-domain VIF on Y (AFM Tables I, IV); NaN when the crop is too small


@dataclass(frozen=True)
class SummaryRow:
    method: str
    images: int
    psnr: float
    ssim: float
    niqe: float
    lpips: float | None
    niqe_images: int
    vif: float = math.nan


@dataclass
class DatasetResult:
    benchmark: Benchmark
    scale: int
    scores: list[ImageScores]
    skips: SkipReport
    #: For the crop figure: image name -> {"LR", "HR", method label...} -> uint8 image.
    kept: dict[str, dict[str, np.ndarray]]
    #: The resize convention of generated LR images and of the bicubic baseline.
    lr_convention: str = DEFAULT_RESIZE_CONVENTION

    @property
    def lr_source(self) -> str:
        """Where the LR images come from (shipped, or bicubic under which convention)."""
        return lr_description(self.benchmark, self.lr_convention)

    @property
    def title(self) -> str:
        """The table title: dataset, scale, protocol and the LR source."""
        return f"{self.benchmark.name} x{self.scale} (Y channel, 4-px border cropped; {self.lr_source})"


def _score(sr: np.ndarray, hr: np.ndarray, lpips) -> tuple[float, float, float, float | None, float]:
    try:
        niqe_value = niqe(sr, border=BORDER)
    except ValueError:
        niqe_value = math.nan
    try:
        vif_value = vifp(hr, sr, border=BORDER)
    except ValueError:
        vif_value = math.nan
    crop = slice(BORDER, -BORDER)
    lpips_value = None if lpips is None else float(lpips(sr[crop, crop], hr[crop, crop]))
    return psnr(sr, hr, BORDER), ssim(sr, hr, BORDER), niqe_value, lpips_value, vif_value


def scorable_side(lpips=None) -> int:
    """The smallest HR side an image may have: the border crop on both sides, then SSIM's
    window (and LPIPS' backbone when LPIPS is scored) must fit."""
    return 2 * BORDER + max(SSIM_WINDOW_SIZE, lpips.min_side if lpips is not None else 0)


def evaluate_dataset(
    benchmark: Benchmark,
    methods: Sequence[Method],
    lpips=None,
    keep: Sequence[str] = (),
    progress: bool = True,
    lr_convention: str = DEFAULT_RESIZE_CONVENTION,
    skip_mismatched: bool = False,
) -> DatasetResult:
    """Scores every method on every image of ``benchmark``, with a progress bar.

    A result-folder method's files must match the images one to one, at the HR size: a
    missing, extra or mis-sized file is a :class:`~.results.ResultsMismatchError`, or with
    ``skip_mismatched`` a counted skip (the image, for all methods; an extra file, alone).

    All methods must share one scale. Unreadable images, LR/HR pairs that do not fit and
    images too small to score (:func:`scorable_side`) are skipped, logged and counted in the
    result's ``skips``. SR images of the images named in
    ``keep`` are kept for figures. ``lr_convention`` (one of
    :data:`~eusr_perceptual.resize.RESIZE_CONVENTIONS`) makes the LR images a dataset does
    not ship and the bicubic baseline.
    """
    if lr_convention not in RESIZE_CONVENTIONS:
        raise ValueError(f"unknown LR convention {lr_convention!r}; use one of {RESIZE_CONVENTIONS}")
    scales = {method.scale for method in methods}
    if len(scales) != 1:
        raise ValueError(f"methods of one evaluation must share a scale, got {sorted(scales)}")
    scale = scales.pop()
    skips, scores, kept, smallest = SkipReport(), [], {}, scorable_side(lpips)
    supplied_by = [method for method in methods if method.results is not None]
    for method in supplied_by:
        for extra in method.results.extra_files([image.name for image in benchmark.images]):
            message = f"{method.label}: {extra} matches no image of {benchmark.name}"
            if not skip_mismatched:
                raise ResultsMismatchError(message)
            skips.skip(str(extra), message)
    if progress:
        print(f"{benchmark.name} (x{scale}, {benchmark.layout}): {len(benchmark.images)} images, {len(methods)} methods")
    bar = keras.utils.Progbar(len(benchmark.images) * len(methods), unit_name="image") if progress else None
    for image in benchmark.images:
        try:
            lr, hr = load_pair(image, scale, lr_convention)
            if min(hr.shape[:2]) < smallest:
                raise ValueError(f"{hr.shape[1]}x{hr.shape[0]} is too small to score: the {BORDER}-px border crop "
                                 f"leaves less than the {smallest - 2 * BORDER} px the metrics need")
            supplied = {method.label: method.results.load(image.name, hr.shape) for method in supplied_by}
        except (UnreadableImageError, FileNotFoundError, ValueError) as error:
            if isinstance(error, ResultsMismatchError) and not skip_mismatched:
                raise
            skips.skip(str(image.hr_path), str(error))
            if bar:
                bar.add(len(methods))
            continue
        if image.name in keep:
            kept[image.name] = {"LR": lr, "HR": hr}
        for method in methods:
            sr = supplied[method.label] if method.results is not None else method.upscale(lr, lr_convention)
            scores.append(ImageScores(benchmark.name, method.label, image.name, *_score(sr, hr, lpips)))
            if image.name in keep:
                kept[image.name][method.label] = sr
            if bar:
                bar.add(1)
    return DatasetResult(benchmark, scale, scores, skips, kept, lr_convention)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(result: DatasetResult) -> list[SummaryRow]:
    """Mean scores per method, in the order the methods were scored (NIQE over the images
    large enough for it)."""
    rows = []
    for label in dict.fromkeys(score.method for score in result.scores):
        mine = [score for score in result.scores if score.method == label]
        lpips_values = [s.lpips for s in mine if s.lpips is not None]
        rows.append(
            SummaryRow(
                label,
                len(mine),
                _mean([s.psnr for s in mine]),
                _mean([s.ssim for s in mine]),
                _mean([s.niqe for s in mine]),
                _mean(lpips_values) if lpips_values else None,
                sum(not math.isnan(s.niqe) for s in mine),
                _mean([s.vif for s in mine]),
            )
        )
    return rows
