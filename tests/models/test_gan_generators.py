"""SRResNet, MSRResNet, the AFM generator and RRDBNet: pinned parameter counts, the generator
protocol (scales, scale=, [0, 255] in/out, float32 under mixed precision, .keras and
SavedModel round trips), normalisation, residual scaling and initialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.serving.savedmodel import export_savedmodel
from eusr_perceptual.models.common import upsample_factors
from eusr_perceptual.models.eusr import EUSR
from eusr_perceptual.loading import load_generator
from eusr_perceptual.models.registry import build_network, registered_networks
from eusr_perceptual.models.rrdbnet import RRDB, RRDBNet, ResidualDenseBlock
from eusr_perceptual.models.srresnet import AFM_RGB_MEAN, AFMSRResNet, MSRResNet, SRResNet

TINY = {
    SRResNet: {"num_feat": 4, "num_block": 2},
    MSRResNet: {"num_feat": 4, "num_block": 2},
    AFMSRResNet: {"num_feat": 4, "num_block": 2},
    RRDBNet: {"num_feat": 4, "num_block": 1, "num_grow": 2},
}
SCALES = {SRResNet: (2, 4), MSRResNet: (2, 3, 4), AFMSRResNet: (2, 4), RRDBNet: (2, 3, 4)}


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


@pytest.mark.parametrize("cls, count", [
    (SRResNet, 1_550_659),  # 1,549,443 + 19 per-channel PReLUs x 64
    (MSRResNet, 1_517_571),
    (AFMSRResNet, 1_542_528),
    (RRDBNet, 16_697_987),
])
def test_paper_size_parameter_counts_at_x4(cls, count):
    model = cls()
    model.build()
    assert _trainable(model) == count
    assert model.scales == (4,)


def test_tiny_counts_follow_the_architectures():
    def conv(k, cin, cout, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    c = 4
    srresnet = SRResNet(4, c, 2)
    srresnet.build()
    block = 2 * (conv(3, c, c) + 2 * c) + c  # 2 x (conv + BN gamma, beta) + one PReLU
    assert _trainable(srresnet) == (conv(9, 3, c) + c + 2 * block + conv(3, c, c) + 2 * c
                                   + 2 * (conv(3, c, 4 * c) + c) + conv(9, c, 3))
    msr = MSRResNet(3, c, 2)
    msr.build()
    assert _trainable(msr) == conv(3, 3, c) + 2 * 2 * conv(3, c, c) + conv(3, c, 9 * c) + conv(3, c, c) + conv(3, c, 3)
    afm = AFMSRResNet(2, c, 2)
    afm.build()
    assert _trainable(afm) == (conv(9, 3, c, False) + 4 * conv(3, c, c, False) + conv(3, c, c, False)
                              + conv(3, c, 4 * c, False) + conv(9, c, 3, False))
    assert not [v for v in afm.trainable_variables if "bias" in v.path]
    g = 2
    rrdb = RRDBNet(3, c, 1, g)
    rrdb.build()
    dense = sum(conv(3, c + i * g, g) for i in range(4)) + conv(3, c + 4 * g, c)
    assert _trainable(rrdb) == conv(3, 3, c) + 3 * dense + conv(3, c, c) + conv(3, c, c) + conv(3, c, c) + conv(3, c, 3)


@pytest.mark.parametrize("cls", list(TINY))
def test_every_supported_scale_upscales_and_others_are_refused(cls):
    x = tf.random.uniform((2, 5, 7, 3), 0, 255)
    for scale in SCALES[cls]:
        model = cls(scale=scale, **TINY[cls])
        assert model.scales == (scale,)
        out = model(x, scale=scale)
        assert out.shape == (2, 5 * scale, 7 * scale, 3) and out.dtype == tf.float32
        np.testing.assert_array_equal(model(x).numpy(), out.numpy())  # scale defaults to the model's one
        with pytest.raises(ValueError, match=f"x{scale} path only, not x8"):
            model(x, scale=8)
    with pytest.raises(ValueError, match="supports scales"):
        cls(scale=8, **TINY[cls])


def test_upsampling_steps():
    assert [upsample_factors(s) for s in (2, 3, 4, 8)] == [(2,), (3,), (2, 2), (2, 2, 2)]
    assert [len(RRDBNet(s, **TINY[RRDBNet]).upconvs) for s in (2, 3, 4)] == [1, 1, 2]
    assert MSRResNet(3, **TINY[MSRResNet]).upconvs[0].filters == 4 * 9  # one depth-to-space 3


def _zero_weights(model):
    model.build()
    model.set_weights([np.zeros(w.shape, w.dtype) for w in model.get_weights()])


def test_normalisation_of_each_generator():
    """With every weight zero the output is the network's zero mapped back to [0, 255]:
    SRResNet's [-1, 1] range -> 127.5; MSRResNet (no bilinear base in the DP code) and
    RRDBNet on [0, 1] -> 0; AFM's mean shift -> the DIV2K mean (114.444, 111.4605, 103.02)."""
    x = tf.random.uniform((1, 4, 4, 3), 0, 255)
    expected = {SRResNet: [127.5] * 3, MSRResNet: [0.0] * 3, RRDBNet: [0.0] * 3,
                AFMSRResNet: [114.444, 111.4605, 103.02]}
    for cls, value in expected.items():
        model = cls(**TINY[cls])
        _zero_weights(model)
        if cls is SRResNet:  # BN with zero variance: keep the inference-mode map the identity
            for layer in model._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
        out = model(x).numpy()
        np.testing.assert_allclose(out, np.broadcast_to(value, out.shape), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(AFM_RGB_MEAN, [114.444, 111.4605, 103.02])


def test_dense_block_and_rrdb_residual_scaling():
    """Dense block: conv i sees num_feat + (i - 1) * growth channels. With every weight zero
    but conv5's bias b: dense block = x + 0.2 b, RRDB = x + 0.2 (x + 0.6 b) = 1.2 x + 0.12 b."""
    dense = ResidualDenseBlock(4, 2)
    dense.build((None, 3, 3, 4))
    assert [layer.kernel.shape for layer in dense.convs] == [(3, 3, 4 + 2 * i, 2) for i in range(4)] + [(3, 3, 12, 4)]
    rrdb = RRDB(4, 2)
    rrdb.build((None, 3, 3, 4))
    b = np.array([1.0, -2.0, 3.0, 0.5], np.float32)
    for block in rrdb.dense_blocks:
        for layer in block.convs:
            layer.kernel.assign(tf.zeros_like(layer.kernel))
            layer.bias.assign(tf.zeros_like(layer.bias))
        block.convs[-1].bias.assign(b)
    x = tf.random.normal((2, 3, 3, 4))
    np.testing.assert_allclose(rrdb(x).numpy(), 1.2 * x.numpy() + 0.12 * b, rtol=1e-5, atol=1e-5)


def test_rrdbnet_upsamples_by_nearest_neighbour():
    """conv_first = 10 x identity on RGB, conv_body zero (the trunk adds nothing), conv_up1,
    conv_hr, conv_last identity, no biases: the output is 10 x repeated in 3x3 blocks."""
    model = RRDBNet(3, **TINY[RRDBNet])
    _zero_weights(model)
    identity = np.zeros((3, 3, 4, 4), np.float32)
    identity[1, 1] = np.eye(4)
    model.conv_first.kernel.assign(identity[:, :, :3, :] * 10.0)  # channels 0-2 carry the input
    for layer in (model.upconvs[0], model.conv_hr):
        layer.kernel.assign(identity)
    model.conv_last.kernel.assign(identity[:, :, :, :3])
    x = tf.random.uniform((1, 2, 2, 3), 0, 255)
    out = model(x).numpy()[0]
    # out = 255 * lrelu(lrelu(10 * x / 255)) = 10 x for x >= 0, nearest x3
    np.testing.assert_allclose(out, np.repeat(np.repeat(10 * x.numpy()[0], 3, 0), 3, 1), rtol=1e-5)


def test_kaiming_x01_initialisation_is_drawn_per_layer():
    """std 0.1 * sqrt(2 / fan_in) (BasicSR's default_init_weights(0.1)); no two convs alike."""
    model = MSRResNet(4, 32, 2)
    model.build()
    kernels = [block.conv_a.kernel.numpy() for block in model.blocks] + [model.blocks[0].conv_b.kernel.numpy()]
    for kernel in kernels:
        assert kernel.std() == pytest.approx(0.1 * np.sqrt(2 / (9 * 32)), rel=0.05)
    assert not np.array_equal(kernels[0], kernels[1]) and not np.array_equal(kernels[0], kernels[2])
    afm = AFMSRResNet(4, 32, 1)
    afm.build()
    assert afm.blocks[0].conv_a.kernel.numpy().std() == pytest.approx(0.1 * np.sqrt(2 / (9 * 32)), rel=0.05)


def test_srresnet_prelu_and_batch_norm_training_mode():
    model = SRResNet(4, 4, 1)
    model.build()
    alphas = [v for v in model.trainable_variables if "alpha" in v.path]
    assert len(alphas) == 1 + 1 + 2 and all(v.shape == (1, 1, 4) for v in alphas)  # head, block, 2 upsamplers
    np.testing.assert_array_equal(alphas[0].numpy(), np.full((1, 1, 4), 0.25, np.float32))
    moving = model.bn_body.moving_mean
    model(tf.random.uniform((2, 6, 6, 3), 0, 255), training=False)
    assert np.all(moving.numpy() == 0)
    model(tf.random.uniform((2, 6, 6, 3), 0, 255), training=True)
    assert np.any(moving.numpy() != 0), "training=True must reach the BN layers"


@pytest.mark.parametrize("cls", list(TINY))
def test_mixed_precision_float16_inside_float32_out(cls):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = cls(**TINY[cls])
    out = model(tf.random.uniform((1, 4, 4, 3), 0, 255))
    assert out.dtype == tf.float32
    assert model.conv_first.compute_dtype == "float16" and model.conv_last.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in model.trainable_variables)


@pytest.mark.parametrize("cls", list(TINY))
def test_keras_file_round_trip(cls, tmp_path):
    scale = SCALES[cls][-2]
    model = cls(scale=scale, **TINY[cls])
    model.build()
    model.save(tmp_path / "generator.keras")
    loaded = load_generator(tmp_path / "generator.keras")
    assert type(loaded) is cls and loaded.scales == (scale,) and loaded.get_config() == model.get_config()
    x = tf.random.uniform((1, 5, 6, 3), 0, 255)
    np.testing.assert_array_equal(loaded(x, scale=scale).numpy(), model(x, scale=scale).numpy())


def test_savedmodel_export_of_a_one_scale_generator(tmp_path):
    model = RRDBNet(3, **TINY[RRDBNet])
    model.build()
    folder = export_savedmodel(model, tmp_path, "rrdbnet_x3")
    exported = load_generator(folder)
    assert exported.scales == (3,)
    x = tf.random.uniform((1, 5, 4, 3), 0, 255)
    np.testing.assert_allclose(exported(x, scale=3).numpy(), model(x, scale=3).numpy(), rtol=1e-5, atol=1e-3)


def test_registry_builds_every_generator():
    assert {"eusr", "srresnet", "msrresnet", "afm_srresnet", "rrdbnet"} <= set(registered_networks("generator"))
    for name, cls in [("srresnet", SRResNet), ("msrresnet", MSRResNet), ("afm_srresnet", AFMSRResNet),
                      ("rrdbnet", RRDBNet)]:
        model = build_network({"type": name, "scale": 2, **TINY[cls]}, "generator")
        assert type(model) is cls and model.scales == (2,)
    eusr = build_network({"type": "eusr", "channels": 4, "shared_blocks": 1, "scales": [2, 4]}, "generator")
    assert isinstance(eusr, EUSR) and eusr.scales == (2, 4)
    with pytest.raises(ValueError, match="num_blocks"):
        build_network({"type": "rrdbnet", "num_blocks": 2}, "generator")
