"""Validation metrics of a score predictor on the whole validation set (4PP-EUSR section 4.2).

The paper reports the average squared EMD (eq. 1) for the AVA predictor (0.075) and the
SROCC of mean scores for the TID2013 predictor (0.780), both on centre-cropped validation
images. The table adds NIMA's r=2 EMD, the linear correlation (LCC) of mean scores and the
binary accuracy at the mean-score threshold 5 (AVA convention).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
import numpy as np
from scipy import stats

from eusr_perceptual.evaluation.tables import render_table
from nima.datasets.common import ScoredImages
from nima.losses import emd, mean_score, squared_emd, threshold_accuracy
from nima.preprocessing import ImageDecoder, unknown_length_is_fine, validation_dataset

PAPER_RESULTS = {"ava": {"squared_emd": 0.075}, "tid2013": {"srocc": 0.780}}


@dataclass(frozen=True)
class ScoreMetrics:
    images: int
    squared_emd: float
    emd: float
    srocc: float
    lcc: float
    accuracy: float

    def as_dict(self) -> dict:
        """The fields, with NaN (an undefined correlation) as None so that the JSON is valid."""
        return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in asdict(self).items()}


def _correlation(function, a: np.ndarray, b: np.ndarray) -> float:
    """``function(a, b)[0]``, or NaN where it is undefined (fewer than 2 values or a constant)."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(function(a, b)[0])


def srocc(predicted: np.ndarray, target: np.ndarray) -> float:
    """Spearman's rank-order correlation (ties get average ranks); NaN if undefined."""
    return _correlation(stats.spearmanr, np.asarray(predicted), np.asarray(target))


def lcc(predicted: np.ndarray, target: np.ndarray) -> float:
    """Pearson's linear correlation; NaN if undefined."""
    return _correlation(stats.pearsonr, np.asarray(predicted), np.asarray(target))


def score_metrics(true_distributions: np.ndarray, predicted_distributions: np.ndarray) -> ScoreMetrics:
    """All metrics of the table from [N, 10] ground-truth and predicted distributions."""
    y_true = np.asarray(true_distributions, dtype=np.float64)
    y_pred = np.asarray(predicted_distributions, dtype=np.float64)

    def average(function) -> float:
        return float(np.mean(keras.ops.convert_to_numpy(function(y_true, y_pred))))

    true_means = keras.ops.convert_to_numpy(mean_score(y_true))
    predicted_means = keras.ops.convert_to_numpy(mean_score(y_pred))
    return ScoreMetrics(
        images=len(y_true),
        squared_emd=average(squared_emd),
        emd=average(emd),
        srocc=srocc(predicted_means, true_means),
        lcc=lcc(predicted_means, true_means),
        accuracy=average(threshold_accuracy),
    )


def evaluate_predictor(
    model: keras.Model,
    images: ScoredImages,
    *,
    crop_size: int,
    batch_size: int,
    decoder: ImageDecoder,
    verbose: int | str = 0,
) -> ScoreMetrics:
    """The metrics of ``model`` (images -> distributions, compiled) on the centre crops of
    ``images``; unreadable files are skipped through ``decoder``.

    ``model.predict`` splits batches over the replicas of a ``tf.distribute`` strategy and
    keeps their order, so the predictions line up with the readable images.
    """
    dataset = validation_dataset(images, crop_size=crop_size, batch_size=batch_size, decoder=decoder)
    with unknown_length_is_fine():
        predictions = model.predict(dataset, verbose=verbose)
    readable = [row for row, path in enumerate(images.paths) if path not in decoder.unreadable]
    if not readable:
        raise ValueError("the validation set has no readable image")
    return score_metrics(images.distributions[readable], predictions)


def format_table(title: str, metrics: ScoreMetrics, paper: dict[str, float] | None = None) -> str:
    """A plain-text table of ``metrics`` with the paper's value where it reports one."""
    paper = paper or {}
    rows = [
        ("squared EMD (eq. 1)", "squared_emd"),
        ("EMD, r=2 (NIMA)", "emd"),
        ("SROCC of mean scores", "srocc"),
        ("LCC of mean scores", "lcc"),
        ("accuracy at score 5", "accuracy"),
    ]
    body = [[label, "n/a" if math.isnan(getattr(metrics, key)) else f"{getattr(metrics, key):.4f}",
             f"{paper[key]:.3f}" if key in paper else ""] for label, key in rows]
    body.append(["validation images", str(metrics.images), ""])
    notes = (["n/a: undefined, the predicted (or true) mean scores are all equal"]
             if any(math.isnan(getattr(metrics, key)) for _, key in rows) else [])
    return render_table(title, ("metric", "value", "paper"), body, notes)
