"""Pixel losses between the SR and HR batches: L1, MSE, Charbonnier, Huber.

Images are RGB in [0, 255]. The 4PP-EUSR reconstruction loss (eq. 2) is on that range; the
GAN papers (SRGAN, ESRGAN/BasicSR, DP, AFM) compute on [0, 1], and their weights (e.g.
ESRGAN's L1 weight 1e-2) assume it: ``unit_range=True`` divides both images by 255 first.
SRResNet/SRGAN compute their MSE on [-1, 1] (Ledig et al. 2017, section 3.2: "the MSE loss was
thus calculated on images of intensity range [-1, 1]"): ``signed_unit_range=True`` divides the
difference by 127.5, which makes the MSE 4x the one on [0, 1].
Every loss is a mean over all elements of the batch (the per-replica batch mean).
"""

from __future__ import annotations

import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term


class PixelTerm(LossTerm):
    """A pixel loss ``mean(distance(sr - hr))``; subclasses give ``distance``."""

    def __init__(self, name, weight, resources, unit_range: bool = False, signed_unit_range: bool = False,
                 **options):
        super().__init__(name, weight, resources, **options)
        if unit_range and signed_unit_range:
            raise ValueError("choose one image range: unit_range ([0, 1]) or signed_unit_range ([-1, 1])")
        self.span = 255.0 if unit_range else 127.5 if signed_unit_range else 1.0

    def distance(self, difference: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def compute(self, context):
        difference = tf.cast(context.sr, tf.float32) - tf.cast(context.hr, tf.float32)
        return tf.reduce_mean(self.distance(difference / self.span))


@register_term("l1", group="pixel")
class L1(PixelTerm):
    """Mean absolute difference (4PP-EUSR eq. 2's l_r; ESRGAN/DP l_content with ``unit_range``)."""

    def distance(self, difference):
        return tf.abs(difference)


@register_term("mse", group="pixel")
class MSE(PixelTerm):
    """Mean squared difference (SRResNet-MSE / SRGAN-MSE; Pan eq. 6)."""

    def distance(self, difference):
        return tf.square(difference)


@register_term("charbonnier", group="pixel")
class Charbonnier(PixelTerm):
    """sqrt(d^2 + eps^2), a smooth L1 (LapSRN; BasicSR's ``CharbonnierLoss``, eps 1e-12 there)."""

    def __init__(self, name, weight, resources, epsilon: float = 1e-3, **options):
        super().__init__(name, weight, resources, **options)
        self.epsilon = epsilon

    def distance(self, difference):
        return tf.sqrt(tf.square(difference) + self.epsilon ** 2)


@register_term("huber", group="pixel")
class Huber(PixelTerm):
    """AFM eq. 2's point loss: ``0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``.

    AFM uses delta = 1 on [0, 1] images (``unit_range=True``), where ``|d| < 1`` always, so
    it equals half the MSE there.
    """

    def __init__(self, name, weight, resources, delta: float = 1.0, **options):
        super().__init__(name, weight, resources, **options)
        self.delta = delta

    def distance(self, difference):
        magnitude = tf.abs(difference)
        return tf.where(magnitude < self.delta, 0.5 * tf.square(difference),
                        self.delta * (magnitude - 0.5 * self.delta))
