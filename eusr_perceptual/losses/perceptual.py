"""The 4PP-EUSR loss terms (Choi et al. 2018, section 4.3) and the discriminator loss.

Every function takes batches and returns a float32 scalar: the per-image loss averaged over
the batch. The fine-tuning stacks the three multi-pass outputs along the batch axis, so this
average is "calculated for all the three upscaled images and then averaged". Inputs of any
float dtype are computed in float32.
"""

from __future__ import annotations

import tensorflow as tf

#: How eqs. 5 and 7 reduce over the features: "sum" (the equations) or "mean" (the authors'
#: code, ``tf.losses.mean_squared_error``; 1/1280 of the sum for MobileNetV2 features).
REPRESENTATION_REDUCTIONS = ("sum", "mean")


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def reconstruction_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Eq. 2, l_r: mean absolute difference of the [0, 255] pixel values (all channels)."""
    return tf.reduce_mean(tf.abs(_f32(hr) - _f32(sr)))


def adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Eq. 3, l_g = -log D(SR): sigmoid cross-entropy of the upscaled images' logits against
    "real", averaged over images and (for the per-position head) positions."""
    logits = _f32(fake_logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits))


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Sigmoid cross-entropy of the discriminator (section 4.3, as in SRGAN): ground truth
    against "real" plus upscaled images against "fake", each term averaged over its images
    (2 HR and 6 upscaled images per paper step, the authors' weighting)."""
    real, fake = _f32(real_logits), _f32(fake_logits)
    real_term = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(real), logits=real)
    fake_term = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake)
    return tf.reduce_mean(real_term) + tf.reduce_mean(fake_term)


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
