"""The 4PP-EUSR discriminator (section 3.3, Fig. 5)."""

import keras
import numpy as np
import pytest

from eusr_perceptual.models.fourpp_discriminator import build_fourpp_discriminator


def _layer_list(model):
    rows = []
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            rows.append(("conv", layer.filters, layer.kernel_size, layer.strides, layer.padding, layer.use_bias))
        elif isinstance(layer, keras.layers.LeakyReLU):
            rows.append(("leaky_relu", layer.negative_slope))
        elif isinstance(layer, keras.layers.Dense):
            rows.append(("dense", layer.units, layer.use_bias))
        else:
            rows.append((type(layer).__name__,))
    return rows


def _expected_convs():
    rows = []
    for index, channels in enumerate((32, 32, 64, 64, 128, 128, 256, 256, 512, 512), start=1):
        stride = (2, 2) if index % 2 == 0 else (1, 1)
        rows += [("conv", channels, (3, 3), stride, "same", True), ("leaky_relu", 0.2)]
    return rows


@pytest.mark.parametrize(
    "head, middle, logits, parameters",
    [
        ("per_position", [], 36, 5_238_561),
        ("flatten", [("Flatten",)], 1, 23_588_641),
    ],
)
def test_exact_layers_and_parameter_count_at_192(head, middle, logits, parameters):
    model = build_fourpp_discriminator(192, head)
    expected = _expected_convs() + middle + [("dense", 1024, True), ("leaky_relu", 0.2), ("dense", 1, True), ("Reshape",)]
    assert _layer_list(model) == expected
    assert model.output.shape == (None, logits)
    assert model.count_params() == parameters
    assert not any("normalization" in type(layer).__name__.lower() for layer in model.layers)


def test_last_feature_map_is_6x6x512_at_192():
    model = build_fourpp_discriminator(192)
    assert model.get_layer("conv10").output.shape == (None, 6, 6, 512)


def test_other_input_sizes_and_widths():
    model = build_fourpp_discriminator(48, base_channels=4, dense_units=16)
    assert model.output.shape == (None, 4)  # 48 -> 24 -> 12 -> 6 -> 3 -> 2 ('same' padding)
    assert model.get_layer("conv10").filters == 64


def test_logits_are_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = build_fourpp_discriminator(48, base_channels=4, dense_units=16)
    assert model.get_layer("conv1").compute_dtype == "float16"
    logits = model(np.zeros((2, 48, 48, 3), np.float32))
    assert logits.dtype == "float32"


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="head"):
        build_fourpp_discriminator(48, head="patch")
