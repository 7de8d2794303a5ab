"""Multi-pass upscaling (4PP-EUSR section 3.2, Fig. 4)."""

import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.models.multipass import PATHS, halve, multipass_upscale
from eusr_perceptual.resize import imresize_tf


@pytest.fixture(scope="module")
def generator():
    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, upscale_blocks=0, scale_aware_blocks=1))
    model.build()
    return model


@pytest.fixture(scope="module")
def lr():
    return tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 6, 5, 3)), tf.float32)


def test_three_x4_images_of_the_same_shape(generator, lr):
    outputs = multipass_upscale(generator, lr)
    assert tuple(outputs) == PATHS == ("x4", "x2x2", "x8down")
    for image in outputs.values():
        assert image.shape == (2, 24, 20, 3) and image.dtype == tf.float32


def test_each_path_is_what_the_paper_says(generator, lr):
    for method in ("matlab", "subsample"):
        outputs = multipass_upscale(generator, lr, downscale=method)
        np.testing.assert_allclose(outputs["x4"], generator(lr, scale=4), rtol=1e-6)
        # The second x2 pass takes the first pass's float output (no rounding, no clipping).
        np.testing.assert_allclose(outputs["x2x2"], generator(generator(lr, scale=2), scale=2), rtol=1e-5, atol=1e-3)
        x8 = generator(lr, scale=8)
        expected = imresize_tf(x8, scale=0.5) if method == "matlab" else x8[:, ::2, ::2, :]
        np.testing.assert_allclose(outputs["x8down"], expected, rtol=1e-5, atol=1e-3)


def test_subsample_is_the_authors_tf1_bicubic_halving():
    """TF1 resize_bicubic(align_corners=False) maps output pixel i to input pixel 2i exactly."""
    images = tf.reshape(tf.range(2 * 8 * 6 * 3, dtype=tf.float32), (2, 8, 6, 3))
    halved = halve(images, "subsample")
    assert halved.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(halved, images.numpy()[:, 0::2, 0::2, :])


def test_unknown_downscale_is_rejected(generator, lr):
    with pytest.raises(ValueError, match="downscale"):
        multipass_upscale(generator, lr, downscale="area")


@pytest.mark.parametrize("path", PATHS)
def test_gradients_reach_the_shared_weights_from_each_path(generator, lr, path):
    shared = [*generator.first_conv.trainable_variables, *generator.shared_module.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(multipass_upscale(generator, lr)[path])
    gradients = tape.gradient(loss, shared)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
