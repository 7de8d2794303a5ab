"""AVA (Murray et al., CVPR 2012): aesthetic vote distributions of DPChallenge photographs.

Used for the aesthetic score predictor (4PP-EUSR sections 3.4 and 4.2): "the AVA dataset
provides exact score distributions", and "we use about 5,000 images of the AVA dataset for
validation and the remaining 250,000 images for training".

``AVA.txt`` has one line per image of 15 integers separated by spaces: index, image id, the
numbers of votes for the scores 1..10, semantic tag 1, semantic tag 2, challenge id. The
images are ``images/<image id>.jpg``. The split is a permutation of the label lines seeded by
``seed``: the first ``validation_size`` lines are validation, the rest training, so the split
does not depend on which image files happen to be present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eusr_perceptual.data.images import SkipReport
from nima.datasets.common import Layout, LabelFileError, ScoreDataset, ScoredImages, index_folder, skip_missing
from nima.config import SCORE_BINS

LAYOUT = Layout(
    "AVA",
    {
        "AVA.txt": "one line per image: index, image id, 10 vote counts, 2 semantic tags, challenge id",
        "images/": "<image id>.jpg for the images of AVA.txt",
    },
    "the AVA dataset release of Murray et al. (Aesthetic Visual Analysis, CVPR 2012), e.g. through "
    "the mirror and scripts of https://github.com/mtobeiyf/ava_downloader",
)
FIELDS = 2 + SCORE_BINS + 3
INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _parse_line(fields: list[str]) -> tuple[int, np.ndarray]:
    """(image id, vote counts) of one split line; ValueError says what is wrong."""
    if len(fields) != FIELDS:
        raise ValueError(
            f"expected {FIELDS} fields (index, image id, {SCORE_BINS} vote counts, 2 tags, challenge id), found {len(fields)}"
        )
    try:
        values = [int(value) for value in fields]
    except ValueError:
        raise ValueError(f"non-integer field in {' '.join(fields)!r}") from None
    votes = values[2 : 2 + SCORE_BINS]
    if any(not INT64_MIN <= value <= INT64_MAX for value in values) or sum(votes) > INT64_MAX:
        raise ValueError(f"a number (or the vote total) does not fit in int64 (largest {INT64_MAX})")
    if min(votes) < 0:
        raise ValueError("negative vote count")
    if sum(votes) == 0:
        raise ValueError("no votes")
    return values[1], np.asarray(votes, dtype=np.int64)


def read_ava_labels(path: str | Path, report: SkipReport) -> tuple[np.ndarray, np.ndarray]:
    """Image ids [N] and vote distributions [N, 10] of ``AVA.txt``.

    Malformed lines (wrong field count, non-integers, numbers or vote totals that overflow
    int64, no votes) and repeated image ids are skipped through ``report`` with a warning
    naming the line number ("AVA.txt:17: ...").

    Raises:
        LabelFileError: no line of the file is usable.
    """
    path = Path(path)
    ids, counts, first_line = [], [], {}
    with open(path, encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                image_id, votes = _parse_line(line.split())
            except ValueError as error:
                report.skip(f"{path.name}:{number}", str(error))
                continue
            if image_id in first_line:
                report.skip(f"{path.name}:{number}", f"image id {image_id} already on line {first_line[image_id]}")
                continue
            first_line[image_id] = number
            ids.append(image_id)
            counts.append(votes)
    if not ids:
        raise LabelFileError(f"{path} has no usable line ({report.count} malformed); is it AVA.txt?")
    counts = np.stack(counts).astype(np.float64)
    return np.asarray(ids, dtype=np.int64), (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def _existing(ids: np.ndarray, distributions: np.ndarray, files: dict[str, str]) -> tuple[ScoredImages, list[str]]:
    """The labelled images whose files exist, and the names of the missing ones."""
    keep, paths, missing = [], [], []
    for row, image_id in enumerate(ids):
        path = files.get(f"{image_id}.jpg")
        if path is None:
            missing.append(f"images/{image_id}.jpg")
        else:
            keep.append(row)
            paths.append(path)
    return ScoredImages(tuple(paths), distributions[keep]), missing


def load_ava(
    data_dir: str | Path, *, validation_size: int = 5000, seed: int = 2018, report: SkipReport | None = None
) -> ScoreDataset:
    """AVA split into training and validation images (section 4.2).

    Missing image files are counted as skipped, with one warning giving their number and the
    first few names; files that fail to decode are
    skipped later, when the input pipeline reads them (:mod:`nima.preprocessing`).
    """
    data_dir = LAYOUT.check(data_dir)
    report = report if report is not None else SkipReport()
    ids, distributions = read_ava_labels(data_dir / "AVA.txt", report)
    if not 0 < validation_size < len(ids):
        raise ValueError(f"validation_size must be between 1 and {len(ids) - 1} (AVA.txt has {len(ids)} images), got {validation_size}")
    order = np.random.default_rng(seed).permutation(len(ids))
    files = index_folder(data_dir / "images")
    split, missing = {}, []
    for name, rows in (("validation", np.sort(order[:validation_size])), ("train", np.sort(order[validation_size:]))):
        split[name], absent = _existing(ids[rows], distributions[rows], files)
        missing += absent
    skip_missing(report, missing, data_dir)
    for name, images in split.items():
        if not len(images):
            raise LabelFileError(f"none of the {name} images of {data_dir / 'AVA.txt'} is in {data_dir / 'images'}")
    return ScoreDataset("ava", split["train"], split["validation"], report)
