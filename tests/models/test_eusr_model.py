"""EUSR architecture: shapes, parameter counts (4PP-EUSR Table 1), sharing, dtypes, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.models.eusr import EUSR, EUSRConfig

TINY = EUSRConfig(channels=8, shared_blocks=1, upscale_blocks=1)


def test_paper_configuration_parameter_counts():
    model = EUSR(EUSRConfig())
    model.build()
    assert model.count_params() == 6_295_689
    assert [model.path_parameter_count(s) for s in (2, 4, 8)] == [3_256_835, 3_699_971, 4_143_107]


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_every_path_upscales_any_size(scale):
    model = EUSR(TINY)
    out = model(tf.random.uniform((2, 7, 5, 3), 0, 255), scale=scale)
    assert out.shape == (2, 7 * scale, 5 * scale, 3)
    assert out.dtype == tf.float32


def test_paths_share_everything_but_their_scale_specific_parts():
    model = EUSR(TINY)
    paths = {s: {id(v) for v in model.path_variables(s)} for s in (2, 4, 8)}
    shared = paths[2] & paths[4] & paths[8]
    expected_shared = {id(v) for layer in (model.first_conv, model.shared_module) for v in layer.trainable_variables}
    assert shared == expected_shared
    assert not (paths[2] - shared) & (paths[4] - shared)
    assert len(model.upscalers["x8"]) == 3 and len(model.upscalers["x2"]) == 1


def test_configurable_channels_and_blocks_change_the_count():
    small = EUSR(EUSRConfig(channels=16, shared_blocks=2, upscale_blocks=2))
    small.build()
    conv3 = 9 * 16 * 16 + 16
    conv5 = 25 * 16 * 16 + 16
    upscaler = 4 * (2 * 2 * conv3 + conv3)  # 4 residual modules of 2 LRBs + closing conv
    expected = (9 * 3 * 16 + 16) + (2 * 2 * conv3 + conv3) + 3 * (2 * 2 * conv5) + 6 * upscaler + 3 * (9 * 16 * 3 + 3)
    assert small.count_params() == expected


def test_unknown_scale_is_rejected():
    with pytest.raises(ValueError, match="x3"):
        EUSR(TINY)(tf.zeros((1, 4, 4, 3)), scale=3)
    with pytest.raises(ValueError):
        EUSRConfig(scales=(3,))


def test_residual_initialisation_starts_near_the_mean_image():
    model = EUSR(EUSRConfig(channels=16, shared_blocks=8))
    out = model(tf.fill((1, 12, 12, 3), 128.0), scale=4).numpy()
    assert np.abs(out - 128).mean() < 60, "initial outputs should stay in the image range"


def test_every_convolution_starts_from_its_own_draw_and_the_seed_fixes_them_all():
    """One initialiser object shared by all residual-branch convs gave them identical kernels
    (Keras 3 initialisers fix their seed when made): 435 equal pairs among 30 kernels."""
    def build():
        keras.utils.set_random_seed(0)
        generator = EUSR(EUSRConfig(channels=8, shared_blocks=3, upscale_blocks=1, scales=(2, 4)))
        generator.build()
        return [np.asarray(w) for w in generator.weights if w.path.endswith("kernel")]

    kernels = build()
    same_shape = [(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:] if a.shape == b.shape]
    assert len(same_shape) > 400 and not any(np.array_equal(a, b) for a, b in same_shape)
    assert all(np.array_equal(a, b) for a, b in zip(kernels, build()))


def test_mixed_precision_computes_in_float16_and_outputs_float32():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = EUSR(TINY)
    out = model(tf.random.uniform((1, 6, 6, 3), 0, 255), scale=2)
    assert out.dtype == tf.float32
    assert model.first_conv.compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in model.trainable_variables)


def test_keras_file_round_trip(tmp_path):
    model = EUSR(TINY)
    model.build()
    model.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "generator.keras")
    x = tf.random.uniform((1, 5, 6, 3), 0, 255)
    for scale in (2, 4, 8):
        np.testing.assert_array_equal(loaded(x, scale=scale).numpy(), model(x, scale=scale).numpy())
    assert loaded.config == TINY


def test_mixed_precision_keeps_float32_inputs_exact():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = EUSR(TINY)
    model.build()
    seen = []
    original = model._forward
    model._forward = lambda inputs, scale: seen.append(inputs.dtype) or original(inputs, scale)
    model(tf.fill((1, 4, 4, 3), 200.03), scale=2)
    model(np.full((1, 4, 4, 3), 200.03, np.float64), scale=2)
    assert seen == [tf.float32, tf.float32]
