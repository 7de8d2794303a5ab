"""Earth Mover's Distance losses and score metrics for 10-bin score distributions.

Scores are the integers 1..10; a distribution ``p`` has the mean score ``sum_i i * p_i`` and
the cumulative distribution ``F_i(p) = p_1 + ... + p_i``.

* :func:`squared_emd` is 4PP-EUSR's loss, paper eq. (1) (the squared EMD of Hou et al.):
  ``E(p, q) = sum_i (F_i(p) - F_i(q))^2``.
* :func:`emd` is the r=2 EMD that NIMA's authors (Talebi & Milanfar) train with:
  ``EMD(p, q) = sqrt(mean_i (F_i(p) - F_i(q))^2)`` over the N=10 bins.
* :func:`threshold_accuracy` is the AVA convention: an image is "high quality" when its mean
  score is above 5, and the accuracy counts agreeing predicted and true classes.

All functions are written with ``keras.ops``: they serve as Keras losses and metrics during
training and run on NumPy arrays for the final evaluation (:mod:`nima.evaluation`).
"""

from __future__ import annotations

import keras
from keras import ops

from nima.config import SCORE_BINS

QUALITY_THRESHOLD = 5.0


def mean_score(distribution):
    """``sum_i i * p_i`` over the last axis (i = 1..10), in the distribution's dtype."""
    scores = ops.arange(1, SCORE_BINS + 1, dtype=distribution.dtype)
    return ops.sum(distribution * scores, axis=-1)


def _cdf_differences(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    return ops.cumsum(y_true, axis=-1) - ops.cumsum(y_pred, axis=-1)


@keras.saving.register_keras_serializable(package="nima")
def squared_emd(y_true, y_pred):
    """Paper eq. (1): the sum over bins of squared CDF differences, one value per row."""
    return ops.sum(ops.square(_cdf_differences(y_true, y_pred)), axis=-1)


@keras.saving.register_keras_serializable(package="nima")
def emd(y_true, y_pred):
    """NIMA's EMD with r=2: the root of the mean over bins of squared CDF differences."""
    return ops.sqrt(ops.mean(ops.square(_cdf_differences(y_true, y_pred)), axis=-1))


@keras.saving.register_keras_serializable(package="nima")
def threshold_accuracy(y_true, y_pred):
    """1 where predicted and true mean scores fall on the same side of 5 (AVA), else 0."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    agree = ops.equal(mean_score(y_true) > QUALITY_THRESHOLD, mean_score(y_pred) > QUALITY_THRESHOLD)
    return ops.cast(agree, y_pred.dtype)


LOSS_FUNCTIONS = {"squared_emd": squared_emd, "emd": emd}


def training_metrics() -> list[keras.metrics.Metric]:
    """Metrics logged during ``fit``, whichever EMD is the loss: both EMDs and the accuracy."""
    return [
        keras.metrics.MeanMetricWrapper(squared_emd, name="squared_emd"),
        keras.metrics.MeanMetricWrapper(emd, name="emd"),
        keras.metrics.MeanMetricWrapper(threshold_accuracy, name="accuracy"),
    ]
