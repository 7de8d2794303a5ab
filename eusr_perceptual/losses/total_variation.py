"""The total-variation loss of Pan (2023) eq. 5, term kind "tv".

    TV(z) = sum_{i,j} ((z_{i,j+1} - z_{i,j})^2 + (z_{i+1,j} - z_{i,j})^2)^(beta/2)

on the SR images only (a smoothness regulariser; HR is not used), per colour channel. The sum
runs over the pixels that have both a right and a lower neighbour, (H-1) x (W-1) of them, as
the equation is written (Mahendran and Vedaldi's form). beta = 2 (the paper's default) makes
it the sum of squared horizontal and vertical differences; for beta < 2 a tiny
:data:`EPSILON` inside the power keeps the gradient finite on flat regions.

``reduction``: "mean" (default) divides by the number of summed terms, per pixel and channel,
then averages the batch: the paper gives neither the reduction nor the weight, and the mean
makes one weight fit the 64, 96 and 128 px HR patches of Pan's x2/x3/x4 models and sit on the
scale of eq. 6's mean pixel MSE. "sum" is the equation as printed (per image, batch mean).
``unit_range`` (default True, as Pan's [0, 1] images) divides the [0, 255] images by 255 first.
"""

from __future__ import annotations

import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term

REDUCTIONS = ("mean", "sum")
#: Added inside the power when beta != 2.
EPSILON = 1e-8


@register_term("tv", group="regulariser")
class TotalVariation(LossTerm):
    """Pan eq. 5 on ``context.sr`` (module docstring)."""

    def __init__(self, name, weight, resources, beta: float = 2.0, reduction: str = "mean", unit_range: bool = True,
                 **options):
        super().__init__(name, weight, resources, **options)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.beta, self.reduction, self.unit_range = float(beta), reduction, unit_range

    def compute(self, context):
        z = tf.cast(context.sr, tf.float32)
        if self.unit_range:
            z = z / 255.0
        corner = z[:, :-1, :-1, :]
        squared = tf.square(z[:, :-1, 1:, :] - corner) + tf.square(z[:, 1:, :-1, :] - corner)
        terms = squared if self.beta == 2.0 else tf.pow(squared + EPSILON, self.beta / 2.0)
        if self.reduction == "mean":
            return tf.reduce_mean(terms)
        return tf.reduce_mean(tf.reduce_sum(terms, axis=[1, 2, 3]))
