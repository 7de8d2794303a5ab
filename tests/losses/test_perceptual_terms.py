"""VGG19 and ResNet-50 perceptual loss terms: features against hand computations, distances,
rescaling, one shared frozen network, the weights error, the DP authors' batch-statistics mode."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.backbones import (BackboneWeightsUnavailable, BatchStatistics, feature_distance,
                                              measure_terms, with_batch_statistics)
from eusr_perceptual.losses.registry import Resources
from eusr_perceptual.losses.resnet import ResNetLoss
from eusr_perceptual.losses.vgg import SRGAN_RESCALE, VGGLoss
from eusr_perceptual.training.context import StepContext

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def random_resources() -> Resources:
    resources = Resources()
    resources.backbone_weights = None
    return resources


@pytest.fixture(scope="module")
def resources():
    """One set of random-weight backbones for the module (building them is the slow part)."""
    return random_resources()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    sr = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    hr = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    return sr, hr


def context(sr, hr, repeats=1):
    return StepContext(None, tf.constant(hr), tf.constant(sr) if not isinstance(sr, tf.Variable) else sr, None,
                       repeats=repeats)


def caffe(images):
    """Keras' VGG/ResNet 'caffe' preprocessing written out: RGB -> BGR, ImageNet mean removed."""
    return images[..., ::-1] - CAFFE_MEAN_BGR


def conv3x3_same(x, kernel, bias):
    """A 'same' 3x3 stride-1 convolution (cross-correlation, as Keras) in numpy, float64."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy:dy + height, dx:dx + width, :] @ kernel[dy, dx].astype(np.float64)
    return out + bias


def test_vgg_features_are_the_conv_computed_by_hand(resources, images):
    sr, hr = images
    pre = VGGLoss("vgg_pre", 1.0, resources, layer="block2_conv2", before_activation=True, distance="l1")
    post = VGGLoss("vgg_post", 1.0, resources, layer="block2_conv2", before_activation=False, distance="l1")
    vgg = pre.network.model
    conv = vgg.get_layer("block2_conv2")
    layer_input = keras.Model(vgg.input, conv.input)
    kernel, bias = (np.array(v) for v in conv.weights)

    hand = {name: conv3x3_same(np.array(layer_input(caffe(x))), kernel, bias) for name, x in (("sr", sr), ("hr", hr))}
    step = context(sr, hr)
    sr_pre, hr_pre = pre.features(step)
    np.testing.assert_allclose(sr_pre, hand["sr"], rtol=1e-4, atol=1e-3 * np.abs(hand["sr"]).max())
    np.testing.assert_allclose(hr_pre, hand["hr"], rtol=1e-4, atol=1e-3 * np.abs(hand["hr"]).max())
    assert (hand["sr"] < 0).mean() > 0.2  # pre-activation maps really have negative values

    sr_post, _ = post.features(step)
    np.testing.assert_allclose(sr_post, np.maximum(hand["sr"], 0), rtol=1e-4, atol=1e-3 * np.abs(hand["sr"]).max())
    fused = keras.Model(vgg.input, conv.output)(caffe(sr))  # Keras' own conv + ReLU
    np.testing.assert_allclose(sr_post, fused, rtol=1e-4, atol=1e-4 * np.abs(fused).max())

    np.testing.assert_allclose(float(pre(step)), np.abs(hand["sr"] - hand["hr"]).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(post(step)), np.abs(np.maximum(hand["sr"], 0) - np.maximum(hand["hr"], 0)).mean(),
                               rtol=1e-4)


def test_feature_distances_by_hand():
    sr = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])  # [1, 1, 2, 2]: two positions, two channels
    hr = tf.constant([[[[0.0, 0.0], [1.0, 7.0]]]])
    # differences 1, 2 | 2, -3
    assert float(feature_distance(sr, hr, "l1")) == pytest.approx((1 + 2 + 2 + 3) / 4)
    assert float(feature_distance(sr, hr, "mse")) == pytest.approx((1 + 4 + 4 + 9) / 4)
    assert float(feature_distance(sr, hr, "squared_l2")) == pytest.approx(((1 + 4) + (4 + 9)) / 2)
    with pytest.raises(ValueError, match="distance"):
        feature_distance(sr, hr, "l2")


def test_rescale_and_distance_options(resources, images):
    step = context(*images)
    terms = {(distance, rescale): VGGLoss(f"v_{distance}_{rescale}", 1.0, resources, layer="block3_conv1",
                                          distance=distance, rescale=rescale)
             for distance in ("l1", "mse", "squared_l2") for rescale in (1.0, SRGAN_RESCALE)}
    values = {key: float(term(step)) for key, term in terms.items()}
    assert values[("mse", SRGAN_RESCALE)] == pytest.approx(values[("mse", 1.0)] / 12.75 ** 2, rel=1e-5)
    assert values[("l1", SRGAN_RESCALE)] == pytest.approx(values[("l1", 1.0)] / 12.75, rel=1e-5)
    assert values[("squared_l2", 1.0)] == pytest.approx(256 * values[("mse", 1.0)], rel=1e-5)  # block3: 256 channels


def test_one_frozen_vgg_shared_by_every_term_and_one_forward_pass(caplog):
    resources = random_resources()
    with caplog.at_level(logging.WARNING, logger="eusr_perceptual.losses.backbones"):
        vgg22 = VGGLoss("vgg22", 1.0, resources, layer="block2_conv2")
        vgg54 = VGGLoss("vgg54", 1.0, resources, layer="block5_conv4", before_activation=True, distance="l1")
    assert [key for key, _ in resources.items()] == ["vgg19:random"]
    assert vgg22.network is vgg54.network
    assert sum("random weights" in record.getMessage() for record in caplog.records) == 1
    network = vgg22.network
    assert not network.model.trainable and network.model.trainable_weights == []
    assert set(network.extractor.output) == {"block2_conv2:input", "block5_conv4:input"}

    rng = np.random.default_rng(0)
    sr = tf.Variable(rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32))
    hr = tf.Variable(rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32))
    step = StepContext(None, hr, sr, None)
    with tf.GradientTape(persistent=True) as tape:
        total = vgg22(step) + vgg54(step)
    assert [key for key in step._cache if key.startswith("vgg19")] == ["vgg19:random:caffe:2"]
    assert not np.any(tape.gradient(total, hr))  # HR features are constants
    assert np.abs(tape.gradient(total, sr)).sum() > 0
    assert measure_terms([vgg22, vgg54], step) == pytest.approx({"vgg22": float(vgg22(step)),
                                                                  "vgg54": float(vgg54(step))})


def test_hr_features_are_tiled_for_multipass_repeats(resources, images):
    sr, hr = images
    term = VGGLoss("vgg", 1.0, resources, layer="block1_conv2")
    stacked_sr = np.concatenate([sr, sr[::-1], sr * 0.5])
    tiled = float(term(context(stacked_sr, np.concatenate([hr] * 3))))
    assert float(term(context(stacked_sr, hr, repeats=3))) == pytest.approx(tiled, rel=1e-6)


def test_layer_must_be_a_vgg_convolution(resources):
    with pytest.raises(ValueError, match="block5_conv4"):
        VGGLoss("vgg", 1.0, resources, layer="block1_pool")
    with pytest.raises(ValueError, match="no layer"):
        VGGLoss("vgg", 1.0, resources, layer="conv5_4")


@pytest.mark.parametrize("application, constructor, filename", [
    ("vgg", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("resnet", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_missing_imagenet_weights_name_the_file_and_the_way_out(monkeypatch, application, constructor, filename):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setattr(keras.applications, constructor, offline)
    resources = Resources()
    resources.backbone_weights = "imagenet"
    term = VGGLoss if application == "vgg" else ResNetLoss
    with pytest.raises(BackboneWeightsUnavailable) as error:
        term(application, 1.0, resources)
    message = str(error.value)
    assert filename in message and ".keras/models" in message and "--backbone-weights none" in message


def test_resnet_loss_is_the_mean_absolute_difference_of_the_bottleneck_output(resources, images):
    sr, hr = images
    term = ResNetLoss("resnet", 1.0, resources)  # paper: beta_{3,6}, L1, Caffe input, inference mode
    model = term.network.model
    stage = keras.Model(model.input, model.get_layer("conv4_block6_out").output)
    expected = np.abs(np.array(stage(caffe(sr))) - np.array(stage(caffe(hr)))).mean()
    assert float(term(context(sr, hr))) == pytest.approx(expected, rel=1e-5)

    squared = ResNetLoss("resnet_sq", 1.0, resources, beta="3,6", distance="squared_l2")
    expected = np.square(np.array(stage(caffe(sr))) - np.array(stage(caffe(hr)))).sum(-1).mean()
    assert float(squared(context(sr, hr))) == pytest.approx(expected, rel=1e-5)


def test_resnet_betas_map_to_keras_layers_and_sum(resources, images):
    step = context(*images)
    single = {beta: float(ResNetLoss(f"r{beta}", 1.0, resources, beta=beta)(step)) for beta in ("1,3", "4,3")}
    both = ResNetLoss("r_both", 1.0, resources, beta=["1,3", "conv5_block3_out"])
    assert both.layers == ("conv2_block3_out", "conv5_block3_out")
    assert float(both(step)) == pytest.approx(single["1,3"] + single["4,3"], rel=1e-5)
    with pytest.raises(ValueError, match="no layer"):
        ResNetLoss("bad", 1.0, resources, beta="5,1")


def test_resnet_authors_mode_uses_batch_statistics_and_leaves_the_network_unchanged(resources, images):
    sr, hr = images
    term = ResNetLoss("resnet_authors", 1.0, resources, mode="authors")
    assert term.layers == ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out")
    base, view = resources.get("resnet50:random"), term.network
    assert view.model is base.model  # the same frozen weights

    # The view's BatchNormalization normalises each batch by its own moments (gamma 1, beta 0 here).
    first_bn = keras.Model(base.model.input, base.model.get_layer("conv1_bn").output)
    normalised = np.array(with_batch_statistics(first_bn)(sr / 255.0))
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    assert np.abs(normalised.var(axis=(0, 1, 2)) - 1.0).max() < 0.02
    inference = np.array(first_bn(sr / 255.0))
    assert np.abs(inference.mean(axis=(0, 1, 2))).max() > 0.05  # moving statistics would not normalise
    assert any(isinstance(layer, BatchStatistics) for layer in view.extractor.layers)

    before = [np.array(v) for v in base.model.weights]
    variable = tf.Variable(sr)
    with tf.GradientTape() as tape:
        value = term(StepContext(None, tf.constant(hr), variable, None))
    assert np.abs(tape.gradient(value, variable)).sum() > 0
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, base.model.weights))

    # SR and HR are normalised separately: the SR features do not depend on the HR batch.
    features_a, _ = view.features(context(sr, hr), "unit")
    features_b, _ = view.features(context(sr, hr[::-1] * 0.3), "unit")
    np.testing.assert_allclose(features_a["conv2_block3_out:output"], features_b["conv2_block3_out:output"], atol=1e-5)
    per_stage = [ResNetLoss(f"ra{beta}", 1.0, resources, mode="authors", beta=beta)(context(sr, hr))
                 for beta in ("1,3", "2,4", "3,6")]
    assert float(term(context(sr, hr))) == pytest.approx(float(sum(per_stage)), rel=1e-5)


def test_mixed_precision_backbone_gives_float32_values_close_to_float32(resources, images):
    step = context(*images)
    reference = float(VGGLoss("vgg", 1.0, resources, layer="block3_conv2", before_activation=True, distance="l1")(step))
    keras.mixed_precision.set_dtype_policy("mixed_float16")  # the autouse fixture restores float32
    half = VGGLoss("vgg", 1.0, random_resources(), layer="block3_conv2", before_activation=True, distance="l1")
    half.network.model.set_weights(resources.get("vgg19:random").model.get_weights())
    assert half.network.model.compute_dtype == "float16"
    value = half(step)
    assert value.dtype == tf.float32 and float(value) == pytest.approx(reference, rel=1e-2)
