"""Pan's TV loss (eq. 5) against a hand count on a 3x3 image."""

import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.registry import Resources
from eusr_perceptual.losses.total_variation import TotalVariation
from eusr_perceptual.training.context import StepContext

# z (one channel):      right differences   lower differences   per-pixel terms (beta = 2)
#   0 1 3               1  2                2  1                1+4 = 5   4+1 = 5
#   2 2 0               0 -2               -1  2                0+1 = 1   4+4 = 8
#   1 4 4                                                       sum 19 over the 2x2 pixels with both neighbours
IMAGE = np.array([[0, 1, 3], [2, 2, 0], [1, 4, 4]], np.float32)
TERMS = np.array([5.0, 5.0, 1.0, 8.0])


def tv(sr, **options) -> float:
    term = TotalVariation("tv", 1.0, Resources(), **options)
    return float(term(StepContext(None, tf.zeros_like(sr), sr, None)))


def batch(*images) -> tf.Tensor:
    return tf.constant(np.stack(images)[..., None])


def test_hand_count_on_a_3x3_image():
    image = batch(IMAGE)
    assert tv(image, reduction="sum", unit_range=False) == pytest.approx(19.0)
    assert tv(image, reduction="mean", unit_range=False) == pytest.approx(19.0 / 4)
    assert tv(image, beta=1.0, reduction="sum", unit_range=False) == pytest.approx(np.sqrt(TERMS).sum(), rel=1e-6)
    assert tv(image * 255.0, reduction="sum") == pytest.approx(19.0, rel=1e-6)  # unit_range: [0, 255] -> [0, 1]


def test_reductions_over_batch_and_channels():
    flat = np.zeros_like(IMAGE)
    two = batch(IMAGE, flat)
    assert tv(two, reduction="sum", unit_range=False) == pytest.approx(19.0 / 2)  # per image, batch mean
    assert tv(two, reduction="mean", unit_range=False) == pytest.approx(19.0 / 8)  # per pixel
    rgb = tf.constant(np.stack([IMAGE, flat, 2 * IMAGE], axis=-1)[None])  # channels count separately
    assert tv(rgb, reduction="sum", unit_range=False) == pytest.approx(19.0 * (1 + 0 + 4))


def test_gradient_by_hand():
    # d/dz00 of (z01 - z00)^2 + (z10 - z00)^2 = -2 (1 - 0) - 2 (2 - 0) = -6;
    # z22 appears in no term (z12 and z21, whose neighbour it is, lack the other neighbour): gradient 0.
    image = tf.Variable(batch(IMAGE))
    term = TotalVariation("tv", 1.0, Resources(), reduction="sum", unit_range=False)
    with tf.GradientTape() as tape:
        value = term(StepContext(None, tf.zeros_like(image), image, None))
    gradient = tape.gradient(value, image).numpy()[0, ..., 0]
    assert gradient[0, 0] == pytest.approx(-6.0)
    assert gradient[2, 2] == 0.0


def test_options_are_checked():
    with pytest.raises(ValueError, match="reduction"):
        TotalVariation("tv", 1.0, Resources(), reduction="max")
    with pytest.raises(ValueError, match="beta"):
        TotalVariation("tv", 1.0, Resources(), beta=0)
