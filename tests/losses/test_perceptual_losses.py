"""4PP-EUSR loss terms (section 4.3, eqs. 2-7) against hand-computed values: eq. 2 is the
registered ``l1`` term, eq. 3 and the discriminator loss the ``sigmoid_ce`` objective, eqs. 4-7
the quality terms' functions."""

import math

import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.adversarial import get_objective
from eusr_perceptual.losses.pixel import L1
from eusr_perceptual.losses.quality import representation_loss, score_loss
from eusr_perceptual.losses.registry import Resources
from eusr_perceptual.training.context import StepContext


def reconstruction_loss(hr, sr):
    """Eq. 2 as the 4PP-EUSR preset computes it: the registered ``l1`` term on [0, 255]."""
    return L1("l_r", 1.0, Resources())(StepContext(None, hr, sr, None))


def adversarial_loss(fake_logits):
    """Eq. 3, l_g = -log D(SR): the ``sigmoid_ce`` objective's generator loss."""
    return get_objective("sigmoid_ce").g_loss(None, fake_logits)


def discriminator_loss(real_logits, fake_logits):
    return get_objective("sigmoid_ce").d_loss(real_logits, fake_logits)

LN3 = math.log(3.0)


def test_reconstruction_is_l1_on_pixel_values():
    hr = tf.zeros((2, 1, 2, 3))
    sr = tf.constant([[[[1, -2, 3], [0, 0, 6]]], [[[-12, 0, 0], [0, 0, 0]]]], tf.float32)
    assert float(reconstruction_loss(hr, sr)) == pytest.approx((1 + 2 + 3 + 6 + 12) / 12)


def test_adversarial_is_minus_log_d_of_the_upscaled_images():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4: l_g = mean(-log 1/2, -log 3/4).
    logits = tf.constant([[0.0], [LN3]])
    assert float(adversarial_loss(logits)) == pytest.approx((math.log(2) - math.log(0.75)) / 2, rel=1e-6)


def test_adversarial_averages_the_per_position_logits():
    logits = tf.constant([[0.0, LN3], [LN3, 0.0]])
    assert float(adversarial_loss(logits)) == pytest.approx((math.log(2) - math.log(0.75)) / 2, rel=1e-6)


def test_discriminator_loss_real_against_one_fake_against_zero():
    real = tf.constant([[0.0], [LN3]])
    fake = tf.constant([[0.0], [LN3], [-LN3]])
    real_term = (math.log(2) - math.log(0.75)) / 2
    fake_term = (math.log(2) - math.log(0.25) - math.log(0.75)) / 3
    assert float(discriminator_loss(real, fake)) == pytest.approx(real_term + fake_term, rel=1e-6)


def test_score_loss_with_alpha_0_8():
    sr = tf.constant([6.0, 9.0, 5.0])
    hr = tf.constant([7.0, 5.0, 10.0])
    # (10-6) - 0.8 (10-7) = 1.6; (10-9) - 0.8 (10-5) = -3 -> 0; (10-5) - 0.8 (10-10) = 5.
    assert float(score_loss(sr, hr, alpha=0.8, max_score=10.0)) == pytest.approx((1.6 + 0.0 + 5.0) / 3, rel=1e-6)


def test_score_loss_hinge_at_zero():
    hr = tf.constant([5.0, 5.0])
    # S(SR) = 6 is exactly at the hinge ((10-6) = 0.8 (10-5)); S(SR) = 7 is past it.
    sr = tf.Variable([6.0, 7.0])
    with tf.GradientTape() as tape:
        loss = score_loss(sr, hr)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, sr), [0.0, 0.0])
    # Below the expected level the loss is linear with slope -1 per image (batch mean).
    sr.assign([4.0, 7.0])
    with tf.GradientTape() as tape:
        loss = score_loss(sr, hr)
    assert float(loss) == pytest.approx(2.0 / 2, rel=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, sr), [-0.5, 0.0])


def test_score_loss_alpha_one_asks_for_the_ground_truth_level():
    assert float(score_loss(tf.constant([4.0]), tf.constant([5.0]), alpha=1.0)) == pytest.approx(1.0)
    assert float(score_loss(tf.constant([5.0]), tf.constant([5.0]), alpha=1.0)) == 0.0


def test_representation_is_squared_l2_summed_over_features():
    sr = tf.constant([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    hr = tf.constant([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    assert float(representation_loss(sr, hr)) == pytest.approx((8 + 3) / 2)
    assert float(representation_loss(sr, hr, reduction="mean")) == pytest.approx((8 / 3 + 1) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        representation_loss(sr, hr, reduction="max")


def test_float16_inputs_are_computed_in_float32():
    hr = tf.fill((1, 2, 2, 3), tf.constant(250.0, tf.float16))
    sr = tf.fill((1, 2, 2, 3), tf.constant(250.125, tf.float16))
    loss = reconstruction_loss(hr, sr)
    assert loss.dtype == tf.float32 and float(loss) == pytest.approx(0.125)
    assert adversarial_loss(tf.constant([[0.0]], tf.float16)).dtype == tf.float32
    assert score_loss(tf.constant([5.0], tf.float16), tf.constant([5.0], tf.float16)).dtype == tf.float32
