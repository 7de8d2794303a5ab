"""What both score datasets produce: image paths with 10-bin score distributions, split in two.

Shared helpers check a data folder's layout (naming every file that is missing and where the
dataset comes from), look up image files case-insensitively and report the labelled images
whose files are missing in one warning (a partial AVA download misses most of 255,000).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eusr_perceptual.errors import PathUsageError, ValueUsageError
from eusr_perceptual.data.images import SkipReport
from nima.config import SCORE_BINS

log = logging.getLogger(__name__)

#: How many missing files the one warning names.
SHOWN_MISSING = 5


class DatasetLayoutError(PathUsageError):
    """A data folder does not hold the files of the dataset release (a usage error)."""


class LabelFileError(ValueUsageError):
    """A label file cannot be used at all (not merely a few malformed lines; a usage error)."""


@dataclass(frozen=True)
class ScoredImages:
    """Image files and their score distributions over the scores 1..10 (rows sum to 1)."""

    paths: tuple[str, ...]
    distributions: np.ndarray

    def __post_init__(self):
        if self.distributions.shape != (len(self.paths), SCORE_BINS):
            raise ValueError(f"expected {len(self.paths)}x{SCORE_BINS} distributions, got {self.distributions.shape}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def mean_scores(self) -> np.ndarray:
        return self.distributions @ np.arange(1, SCORE_BINS + 1, dtype=np.float64)

    def subset(self, indices) -> "ScoredImages":
        indices = np.asarray(indices, dtype=np.int64)
        return ScoredImages(tuple(self.paths[i] for i in indices), self.distributions[indices])


@dataclass
class ScoreDataset:
    """A dataset split for training, with every file or label line left out so far.

    ``report`` keeps counting: images that fail to decode during training are added to it.
    """

    name: str
    train: ScoredImages
    validation: ScoredImages
    report: SkipReport = field(default_factory=SkipReport)


@dataclass(frozen=True)
class Layout:
    """The files a dataset release must have in its folder, and where to get the release."""

    dataset: str
    entries: dict[str, str]  # relative path ("images/" for a folder) -> what it holds
    source: str

    def describe(self) -> str:
        lines = [f"The {self.dataset} data folder (--data-dir) must contain:"]
        lines += [f"  {name:<22} {purpose}" for name, purpose in self.entries.items()]
        lines.append(f"Get it from: {self.source}")
        return "\n".join(lines)

    def check(self, data_dir: str | Path) -> Path:
        """Returns ``data_dir`` as a Path, or raises :class:`DatasetLayoutError` naming what is
        missing, or that it is a file."""
        data_dir = Path(data_dir)
        if data_dir.is_file():
            raise DatasetLayoutError(f"{self.dataset} data folder {data_dir} is a file, expected a folder")
        missing = [name for name in self.entries if not _present(data_dir / name.rstrip("/"), name.endswith("/"))]
        if missing:
            raise DatasetLayoutError(f"{data_dir} is not a {self.dataset} folder: missing {', '.join(missing)}.\n{self.describe()}")
        return data_dir


def _present(path: Path, is_folder: bool) -> bool:
    return path.is_dir() if is_folder else path.is_file()


def skip_missing(report: SkipReport, names: list[str], data_dir: Path) -> None:
    """Counts ``names`` (labelled images without a file, relative to ``data_dir``) as skipped in
    ``report`` with one warning: their number and the first :data:`SHOWN_MISSING`."""
    if not names:
        return
    report.skipped.extend((name, "missing") for name in names)
    more = f" and {len(names) - SHOWN_MISSING:,} more" if len(names) > SHOWN_MISSING else ""
    log.warning("skipping %s labelled image(s) missing from %s: %s%s", f"{len(names):,}", data_dir,
                ", ".join(names[:SHOWN_MISSING]), more)


def index_folder(folder: Path) -> dict[str, str]:
    """Lower-cased file name -> path for every file directly in ``folder`` (one listing, no stat per file)."""
    with os.scandir(folder) as entries:
        return {entry.name.lower(): entry.path for entry in entries if entry.is_file()}

