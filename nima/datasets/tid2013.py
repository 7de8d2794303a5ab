"""TID2013 (Ponomarenko et al., 2015): subjective quality of distorted images, mean and std only.

Used for the subjective score predictor (4PP-EUSR sections 3.4 and 4.2): "the TID2013 dataset
only provides the mean and standard deviation of the scores. Therefore, we approximate a
Gaussian distribution with the mean and standard deviation [...] we adjust the score range of
the TID2013 dataset from [0, 9] to [1, 10]". Split: "the first three reference images and
their degraded versions [...] (360 score distributions) for validation and the remaining 22
reference images and their degraded versions (2,640 score distributions) for training".

Release layout: ``mos_with_names.txt`` ("MOS filename" per line, e.g. ``5.51429 i01_01_1.bmp``),
``mos_std.txt`` (one standard deviation per line, same order), ``distorted_images/iRR_DD_L.bmp``
(reference RR, distortion DD, level L) and ``reference_images/IRR.BMP``. File names are matched
case-insensitively. The reference images carry no scores and are not trained on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from eusr_perceptual.data.images import SkipReport
from nima.datasets.common import Layout, LabelFileError, ScoreDataset, ScoredImages, index_folder, skip_missing
from nima.config import SCORE_BINS

LAYOUT = Layout(
    "TID2013",
    {
        "mos_with_names.txt": "lines 'MOS filename', e.g. '5.51429 i01_01_1.bmp'",
        "mos_std.txt": "one MOS standard deviation per line, in the order of mos_with_names.txt",
        "distorted_images/": "i01_01_1.bmp ... i25_24_5.bmp (3,000 distorted images)",
        "reference_images/": "I01.BMP ... I25.BMP (the 25 reference images)",
    },
    "the TID2013 release of Ponomarenko et al., http://www.ponomarenko.info/tid2013.htm",
)
DISTORTED_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)
MOS_RANGE = (0.0, 9.0)
SCORE_OFFSET = 1.0  # [0, 9] -> [1, 10]


def gaussian_distribution(means, stds) -> np.ndarray:
    """Discretised Gaussians over the scores 1..10 with the given means and standard deviations.

    Score ``i`` gets the probability of the interval [i - 1/2, i + 1/2] under N(mu', sigma^2),
    score 1 also everything below and score 10 everything above, so each row sums to 1. The
    location mu' is solved for (bisection; the mean is increasing in mu') so that the discrete
    distribution's mean equals ``mean`` exactly: truncation at the ends and the integer bins
    would otherwise pull it towards the nearest score.

    Args:
        means: [N] means on the 1..10 scale (strictly between 1 and 10).
        stds: [N] standard deviations, positive.

    Returns:
        [N, 10] float32.
    """
    means = np.asarray(means, dtype=np.float64)
    stds = np.asarray(stds, dtype=np.float64)
    if (stds <= 0).any() or (means <= 1).any() or (means >= SCORE_BINS).any():
        raise ValueError("means must lie strictly inside (1, 10) and standard deviations must be positive")
    inner_edges = np.arange(1.5, SCORE_BINS, 1.0)
    scores = np.arange(1, SCORE_BINS + 1, dtype=np.float64)

    def discretise(locations):
        cdf = ndtr((inner_edges - locations[:, None]) / stds[:, None])
        return np.diff(cdf, prepend=0.0, append=1.0, axis=1)

    low = np.full_like(means, 1.0 - SCORE_BINS) - 20 * stds
    high = np.full_like(means, 2.0 * SCORE_BINS) + 20 * stds
    for _ in range(100):
        middle = 0.5 * (low + high)
        too_high = discretise(middle) @ scores > means
        high = np.where(too_high, middle, high)
        low = np.where(too_high, low, middle)
    return discretise(0.5 * (low + high)).astype(np.float32)


@dataclass(frozen=True)
class TidLabels:
    """The usable lines of the label files: file name, reference index, MOS and std (0..9 scale)."""

    names: tuple[str, ...]
    references: np.ndarray
    mos: np.ndarray
    std: np.ndarray


def _read_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _parse(mos_line: str, std_line: str) -> tuple[str, int, float, float]:
    fields = mos_line.split()
    if len(fields) != 2:
        raise ValueError(f"expected 'MOS filename', found {mos_line.strip()!r}")
    try:
        mos, std = float(fields[0]), float(std_line)
    except ValueError:
        raise ValueError(f"not a number in {mos_line.strip()!r} / std {std_line.strip()!r}") from None
    match = DISTORTED_NAME.match(fields[1])
    if match is None:
        raise ValueError(f"{fields[1]!r} is not a distorted-image name like i01_01_1.bmp")
    if not math.isfinite(mos) or not math.isfinite(std):
        raise ValueError(f"MOS {mos} / standard deviation {std} is not a finite number")
    if not MOS_RANGE[0] < mos < MOS_RANGE[1]:
        raise ValueError(f"MOS {mos} outside ({MOS_RANGE[0]:g}, {MOS_RANGE[1]:g})")
    if not std > 0:
        raise ValueError(f"standard deviation {std} is not positive")
    return fields[1], int(match.group(1)), mos, std


def read_tid2013_labels(data_dir: str | Path, report: SkipReport) -> TidLabels:
    """The labels of ``mos_with_names.txt`` and ``mos_std.txt``, line by line.

    Malformed lines (including a non-finite MOS or standard deviation, e.g. ``inf``, which would
    make the training loss NaN) are skipped through ``report`` with a warning naming the line
    number. A name labelled twice (compared case-insensitively, as files are looked up) keeps
    its first line; the repeat is skipped naming both line numbers.

    Raises:
        LabelFileError: the two files have different numbers of lines (the pairing of means
            and standard deviations would be unknown), or no line is usable.
    """
    data_dir = Path(data_dir)
    mos_lines = _read_lines(data_dir / "mos_with_names.txt")
    std_lines = _read_lines(data_dir / "mos_std.txt")
    if len(mos_lines) != len(std_lines):
        raise LabelFileError(
            f"mos_with_names.txt has {len(mos_lines)} lines but mos_std.txt has {len(std_lines)}: "
            "they must pair line by line"
        )
    rows, first_line = [], {}
    for number, (mos_line, std_line) in enumerate(zip(mos_lines, std_lines), start=1):
        if not mos_line.strip() and not std_line.strip():
            continue
        where = f"mos_with_names.txt/mos_std.txt line {number}"
        try:
            row = _parse(mos_line, std_line)
        except ValueError as error:
            report.skip(where, str(error))
            continue
        name = row[0].lower()
        if name in first_line:
            report.skip(where, f"{row[0]} is labelled twice: lines {first_line[name]} and {number} (the first is kept)")
            continue
        first_line[name] = number
        rows.append(row)
    if not rows:
        raise LabelFileError(f"no usable line in {data_dir / 'mos_with_names.txt'}")
    names, references, mos, std = zip(*rows)
    return TidLabels(names, np.asarray(references), np.asarray(mos), np.asarray(std))


def load_tid2013(
    data_dir: str | Path, *, validation_references: int = 3, report: SkipReport | None = None
) -> ScoreDataset:
    """TID2013 split by reference image (section 4.2): the distorted versions of the first
    ``validation_references`` references validate, the others train.

    Missing image files are counted as skipped, with one warning giving their number and the
    first few names; files that fail to decode are
    skipped later, when the input pipeline reads them (:mod:`nima.preprocessing`).
    """
    data_dir = LAYOUT.check(data_dir)
    report = report if report is not None else SkipReport()
    labels = read_tid2013_labels(data_dir, report)
    references = np.unique(labels.references)
    if not 0 < validation_references < len(references):
        raise ValueError(
            f"validation_references must be between 1 and {len(references) - 1} "
            f"({len(references)} reference images are labelled), got {validation_references}"
        )
    distributions = gaussian_distribution(labels.mos + SCORE_OFFSET, labels.std)
    files = index_folder(data_dir / "distorted_images")
    present = [row for row, name in enumerate(labels.names) if name.lower() in files]
    skip_missing(report, [f"distorted_images/{name}" for name in labels.names if name.lower() not in files], data_dir)
    present = np.asarray(present, dtype=np.int64)
    images = ScoredImages(tuple(files[labels.names[row].lower()] for row in present), distributions[present])
    is_validation = np.isin(labels.references[present], references[:validation_references])
    split = {"train": np.flatnonzero(~is_validation), "validation": np.flatnonzero(is_validation)}
    for name, rows in split.items():
        if not len(rows):
            raise LabelFileError(f"no {name} image of {data_dir / 'mos_with_names.txt'} is in {data_dir / 'distorted_images'}")
    return ScoreDataset("tid2013", images.subset(split["train"]), images.subset(split["validation"]), report)
