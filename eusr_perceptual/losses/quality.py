"""4PP-EUSR's quality terms (section 4.3, eqs. 4-7) on a frozen NIMA predictor.

``nima_score`` is l_as / l_ss (eqs. 4, 6), ``nima_representation`` is l_ar / l_sr (eqs. 5,
7); ``predictor`` names the shared network ("aesthetic" = the AVA predictor, "subjective" =
the TID2013 one) the trainer was given. The predictor runs once per step on SR and HR together
and both terms of that predictor read that one result. :func:`score_loss` and
:func:`representation_loss` are the equations on batches of scores and features (float32
whatever the input dtype, batch means). Eq. 2 (l_r) is the ``l1`` term and eq. 3 (l_g) the
``sigmoid_ce`` objective.
"""

from __future__ import annotations

import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term

#: How eqs. 5 and 7 reduce over the features: "sum" (the equations) or "mean" (the authors'
#: code, ``tf.losses.mean_squared_error``; 1/1280 of the sum for MobileNetV2 features).
REPRESENTATION_REDUCTIONS = ("sum", "mean")


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def score_loss(sr_scores: tf.Tensor, hr_scores: tf.Tensor, alpha: float = 0.8, max_score: float = 10.0) -> tf.Tensor:
    """Eqs. 4 and 6, l_as / l_ss: max(0, (S_max - S(SR)) - alpha (S_max - S(HR))), batch mean.

    Zero once the upscaled image's score shortfall is at most ``alpha`` times the ground
    truth's; ``alpha`` < 1 asks for upscaled images scored better than the ground truth.
    """
    sr, hr = _f32(sr_scores), _f32(hr_scores)
    return tf.reduce_mean(tf.maximum(0.0, (max_score - sr) - alpha * (max_score - hr)))


def representation_loss(sr_features: tf.Tensor, hr_features: tf.Tensor, reduction: str = "sum") -> tf.Tensor:
    """Eqs. 5 and 7, l_ar / l_sr: squared L2 distance between the predictor's global-average-
    pooled features (1,280 for MobileNetV2) of SR and HR, batch mean. ``reduction="mean"``
    divides by the feature count, as the authors' code did."""
    if reduction not in REPRESENTATION_REDUCTIONS:
        raise ValueError(f"reduction must be one of {REPRESENTATION_REDUCTIONS}, got {reduction!r}")
    squared = tf.square(_f32(sr_features) - _f32(hr_features))
    per_image = tf.reduce_sum(squared, axis=-1) if reduction == "sum" else tf.reduce_mean(squared, axis=-1)
    return tf.reduce_mean(per_image)


class PredictorTerm(LossTerm):
    """Base: runs the named predictor on [SR; HR] once per step (shared through the context)."""

    def __init__(self, name, weight, resources, predictor: str = "aesthetic", **options):
        super().__init__(name, weight, resources, **options)
        self.predictor_name = predictor
        self.predictor = resources.get(predictor)

    def outputs(self, context):
        """(SR scores, SR features, HR scores, HR features); HR values are constants, computed
        once per HR image and tiled to match the upscalings in ``sr``."""

        def compute():
            outputs = self.predictor(tf.concat([context.sr, context.hr_batch], axis=0), training=False)
            count, repeats = tf.shape(context.sr)[0], context.repeats
            scores, features = outputs["mean_score"], outputs["features"]
            hr_scores = tf.tile(tf.stop_gradient(scores[count:]), [repeats])
            hr_features = tf.tile(tf.stop_gradient(features[count:]), [repeats, 1])
            return scores[:count], features[:count], hr_scores, hr_features

        return context.cached(f"predictor:{self.predictor_name}", compute)


@register_term("nima_score", group="quality")
class NimaScore(PredictorTerm):
    """Eqs. 4 / 6: ``max(0, (S_max - S(SR)) - alpha (S_max - S(HR)))``, batch mean."""

    def __init__(self, name, weight, resources, alpha: float = 0.8, max_score: float = 10.0, **options):
        super().__init__(name, weight, resources, **options)
        self.alpha, self.max_score = alpha, max_score

    def compute(self, context):
        sr_scores, _, hr_scores, _ = self.outputs(context)
        return score_loss(sr_scores, hr_scores, self.alpha, self.max_score)


@register_term("nima_representation", group="quality")
class NimaRepresentation(PredictorTerm):
    """Eqs. 5 / 7: squared L2 of the pooled features; ``reduction`` "sum" (paper) or "mean"
    (the authors' code)."""

    def __init__(self, name, weight, resources, reduction: str = "sum", **options):
        super().__init__(name, weight, resources, **options)
        if reduction not in REPRESENTATION_REDUCTIONS:
            raise ValueError(f"reduction must be one of {REPRESENTATION_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def compute(self, context):
        _, sr_features, _, hr_features = self.outputs(context)
        return representation_loss(sr_features, hr_features, self.reduction)
