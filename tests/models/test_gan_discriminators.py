"""The SRGAN, VGG-style (ESRGAN/BasicSR) and AFM discriminators, and the 4PP-EUSR one's
features: pinned counts, exact layer lists, pre-activation feature maps, input checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.models.gan_discriminators import (
    build_afm_discriminator, build_srgan_discriminator, build_vgg_style_discriminator)
from eusr_perceptual.models.registry import build_network, registered_networks, with_features

TINY = {"base_channels": 2, "dense_units": 4}


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def _layer_list(model):
    rows = []
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            rows.append(("conv", layer.filters, layer.kernel_size[0], layer.strides[0], layer.padding, layer.use_bias))
        elif isinstance(layer, keras.layers.BatchNormalization):
            rows.append(("bn", layer.momentum, layer.epsilon))
        elif isinstance(layer, keras.layers.LeakyReLU):
            rows.append(("lrelu", layer.negative_slope))
        elif isinstance(layer, keras.layers.Dense):
            rows.append(("dense", layer.units, layer.use_bias))
        else:
            rows.append((type(layer).__name__,))
    return rows


def _expected(convs, dense_units):
    """convs: (filters, kernel, stride, bias, bn) per block."""
    rows = [("InputSizeCheck",), ("Rescaling",)]
    for filters, kernel, stride, bias, bn in convs:
        rows.append(("conv", filters, kernel, stride, "same", bias))
        rows += [("bn", 0.9, 1e-5)] if bn else []
        rows.append(("lrelu", 0.2))
    return rows + [("Flatten",), ("dense", dense_units, True), ("lrelu", 0.2), ("dense", 1, True)]


CHANNELS_8 = (64, 64, 128, 128, 256, 256, 512, 512)


def test_srgan_discriminator_at_96():
    model = build_srgan_discriminator()
    convs = [(c, 3, 1 + i % 2, True, i > 0) for i, c in enumerate(CHANNELS_8)]
    assert _layer_list(model) == _expected(convs, 1024)
    assert _trainable(model) == 23_565_505
    assert model.get_layer("flatten").output.shape == (None, 6 * 6 * 512)


@pytest.mark.parametrize("size, trainable", [(128, 14_499_401), (96, 14_141_001), (64, 13_885_001)])
def test_vgg_style_discriminator_at_128_and_pans_64_and_96(size, trainable):
    model = build_vgg_style_discriminator(size)
    channels = (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    convs = [(c, 3 if i % 2 == 0 else 4, 1 + i % 2, i == 0, i > 0) for i, c in enumerate(channels)]
    assert _layer_list(model) == _expected(convs, 100)
    assert _trainable(model) == trainable  # the first Dense layer's input follows the size
    side = size // 32
    assert model.get_layer("flatten").output.shape == (None, side * side * 512)
    assert _trainable(model) == 14_499_401 - (16 - side * side) * 512 * 100


def test_afm_discriminator_at_96():
    model = build_afm_discriminator()
    convs = [(c, 3 if i % 2 == 0 else 4, 1 + i % 2, False, i > 0) for i, c in enumerate(CHANNELS_8)]
    assert _layer_list(model) == _expected(convs, 1024)
    assert _trainable(model) == 26_000_705
    assert model.count_params() == 26_004_417  # + BN moving statistics
    kernels = np.concatenate([model.get_layer(f"conv{i}").kernel.numpy().ravel() for i in (7, 8)])
    assert kernels.mean() == pytest.approx(0.0, abs=1e-3) and kernels.std() == pytest.approx(0.02, rel=0.02)
    gamma = model.get_layer("bn8").gamma.numpy()
    assert gamma.mean() == pytest.approx(1.0, abs=0.005) and gamma.std() == pytest.approx(0.02, rel=0.2)


def test_without_batch_norm_the_convs_get_biases_and_features_are_conv_outputs():
    model = build_vgg_style_discriminator(128, batch_norm=False)
    channels = (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    convs = [(c, 3 if i % 2 == 0 else 4, 1 + i % 2, True, False) for i, c in enumerate(channels)]
    assert _layer_list(model) == _expected(convs, 100)
    bn_parameters = 2 * sum(channels[1:])  # gammas and betas, replaced by as many conv biases - the first's
    assert _trainable(model) == 14_499_401 - bn_parameters + sum(channels[1:])
    assert model.feature_layer_names == tuple(f"conv{i // 2}_{i % 2}" for i in range(10))
    for builder in (build_srgan_discriminator, build_afm_discriminator):
        tiny = builder(32, batch_norm=False, **TINY)
        assert tiny.feature_layer_names == tuple(f"conv{i}" for i in range(1, 9))
        assert not [layer for layer in tiny.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_input_normalisation():
    white = np.full((1, 2, 2, 3), 255.0, np.float32)
    srgan = build_srgan_discriminator(32, **TINY).get_layer("to_minus1_1")
    np.testing.assert_allclose(srgan(white), 1.0)
    np.testing.assert_allclose(srgan(np.zeros_like(white)), -1.0)
    np.testing.assert_allclose(build_vgg_style_discriminator(32, **TINY).get_layer("to_0_1")(white), 1.0)
    mean = np.array([0.4488, 0.4371, 0.4040], np.float32) * 255
    afm = build_afm_discriminator(32, **TINY).get_layer("mean_shift")
    np.testing.assert_allclose(afm(np.broadcast_to(mean, (1, 2, 2, 3))), 0.0, atol=1e-6)
    np.testing.assert_allclose(afm(white)[0, 0, 0], 1.0 - mean / 255, rtol=1e-6)


@pytest.mark.parametrize("builder, size, names, shapes", [
    (build_srgan_discriminator, 32, ["conv1"] + [f"bn{i}" for i in range(2, 9)],
     [(32, 2), (16, 2), (16, 4), (8, 4), (8, 8), (4, 8), (4, 16), (2, 16)]),
    (build_afm_discriminator, 32, ["conv1"] + [f"bn{i}" for i in range(2, 9)],
     [(32, 2), (16, 2), (16, 4), (8, 4), (8, 8), (4, 8), (4, 16), (2, 16)]),
    (build_vgg_style_discriminator, 64,
     ["conv0_0", "bn0_1", "bn1_0", "bn1_1", "bn2_0", "bn2_1", "bn3_0", "bn3_1", "bn4_0", "bn4_1"],
     [(64, 2), (32, 2), (32, 4), (16, 4), (16, 8), (8, 8), (8, 16), (4, 16), (4, 16), (2, 16)]),
])
def test_pre_activation_features(builder, size, names, shapes):
    model = builder(size, **TINY)
    assert list(model.feature_layer_names) == names
    for name in names:  # BN output where there is BN (else the conv's), then the activation
        layer = model.get_layer(name)
        assert isinstance(layer, keras.layers.BatchNormalization if name.startswith("bn") else keras.layers.Conv2D)
        consumers = [node.operation for node in layer._outbound_nodes]
        assert len(consumers) == 1 and isinstance(consumers[0], keras.layers.LeakyReLU)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    logits, *features = with_features(model)(images)
    assert logits.shape == (2, 1) and logits.dtype == tf.float32
    assert [tuple(f.shape) for f in features] == [(2, s, s, c) for s, c in shapes]
    np.testing.assert_allclose(logits.numpy(), model(images).numpy(), rtol=1e-5, atol=1e-6)
    assert all(float(tf.reduce_min(f)) < 0 for f in features), "pre-activation maps keep negative values"


def test_4pp_eusr_discriminator_declares_its_features():
    model = build_network({"type": "4pp_eusr", "input_size": 32, "base_channels": 2, "dense_units": 4},
                          "discriminator")
    assert model.feature_layer_names == tuple(f"conv{i}" for i in range(1, 11))
    logits, *features = with_features(model)(np.zeros((1, 32, 32, 3), np.float32))
    assert len(features) == 10 and features[-1].shape == (1, 1, 1, 32)


def test_wrong_input_sizes_are_clear_errors():
    model = build_vgg_style_discriminator(64, **TINY)
    with pytest.raises(ValueError, match=r"built for 64x64 images, got 128x128; it takes square images with a side "
                                         r"divisible by 32 \(BasicSR: 128; Pan's x2/x3: 64, 96\)"):
        model(np.zeros((1, 128, 128, 3), np.float32))
    traced = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    assert traced(tf.zeros((2, 64, 64, 3))).shape == (2, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="built for 64x64 images, got another size"):
        traced(tf.zeros((1, 96, 96, 3)))
    with pytest.raises(ValueError, match=r"srgan discriminator takes .* divisible by 16 \(paper: 96\), got "
                                         r"input_size=100"):
        build_srgan_discriminator(100)
    with pytest.raises(ValueError, match="built for 96x96 images, got 64x64"):
        build_afm_discriminator(96, **TINY)(np.zeros((1, 64, 64, 3), np.float32))


def test_registry_and_mixed_precision_logits():
    assert {"4pp_eusr", "srgan", "vgg_style", "afm"} <= set(registered_networks("discriminator"))
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    for name in ("srgan", "vgg_style", "afm"):
        model = build_network({"type": name, "input_size": 32, **TINY}, "discriminator")
        assert model.get_layer("flatten").compute_dtype == "float16"
        logits = model(np.full((2, 32, 32, 3), 100.0, np.float32))
        assert logits.dtype == tf.float32 and logits.shape == (2, 1)
