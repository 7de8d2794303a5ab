"""The 4PP-EUSR discriminator (section 3.3, Fig. 5).

Ten 3x3 'same'-padded convolutions with bias, channels 32, 32, 64, 64, 128, 128, 256, 256,
512, 512, stride 1 on the odd layers and 2 on the even ones, each followed by LeakyReLU with
slope 0.2 (the paper's alpha; ``keras.layers.LeakyReLU`` defaults to 0.3); no normalisation
("the batch size is too small"). Then Dense(1024), LeakyReLU 0.2, Dense(1) giving logits (the
paper's final sigmoid lives in the sigmoid cross-entropy losses).

Input: RGB in [0, 255], unnormalised (as in the authors' code), 192x192 in the paper (the
x4 output of a 48x48 LR patch), giving 6x6x512 features. Two heads:

* ``"per_position"`` (default, the authors' code: ``reshape(x, [-1, 512])`` before the dense
  layers): the two dense layers act on each of the 6x6 positions, 36 logits per image,
  averaged by the losses; 5,238,561 parameters.
* ``"flatten"``: the dense layers act on the flattened 6x6x512 features, one logit per image;
  23,588,641 parameters.

Initialisers are TF1 ``tf.layers``' defaults (Glorot-uniform kernels, zero biases), which the
authors used. Logits are float32 under a mixed precision policy.
"""

from __future__ import annotations

import keras
from keras import layers

#: Output channels of the ten convolutions relative to the first; even (1-based) layers have
#: stride 2. The paper's first layer has 32 channels: 32, 32, 64, 64, ..., 512, 512.
CHANNEL_MULTIPLIERS = (1, 1, 2, 2, 4, 4, 8, 8, 16, 16)
LEAKY_SLOPE = 0.2
DENSE_UNITS = 1024
HEADS = ("per_position", "flatten")
KERNEL_INITIALIZER = "glorot_uniform"
BIAS_INITIALIZER = "zeros"


def build_fourpp_discriminator(
    input_size: int = 192,
    head: str = "per_position",
    base_channels: int = 32,
    dense_units: int = DENSE_UNITS,
    name: str = "discriminator",
) -> keras.Model:
    """Builds the section 3.3 discriminator for ``input_size`` x ``input_size`` RGB inputs.

    Args:
        input_size: side of the (square) input; 192 in the paper.
        head: ``"per_position"`` or ``"flatten"`` (see the module docstring).
        base_channels: channels of the first two convolutions, doubled every two layers
            (32 in the paper; smaller for quick demos and tests).
        dense_units: width of the first dense layer (1024 in the paper).

    Returns:
        A functional model mapping float ``[B, S, S, 3]`` in [0, 255] to float32 logits
        ``[B, P]``: P = (S/32)^2 positions for ``"per_position"`` (36 at S = 192), 1 for
        ``"flatten"``.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for index, multiplier in enumerate(CHANNEL_MULTIPLIERS, start=1):
        x = layers.Conv2D(
            base_channels * multiplier,
            3,
            strides=2 if index % 2 == 0 else 1,
            padding="same",
            use_bias=True,
            kernel_initializer=KERNEL_INITIALIZER,
            bias_initializer=BIAS_INITIALIZER,
            name=f"conv{index}",
        )(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"conv{index}_lrelu")(x)
    if head == "flatten":
        x = layers.Flatten(name="flatten")(x)
    initializers = {"kernel_initializer": KERNEL_INITIALIZER, "bias_initializer": BIAS_INITIALIZER}
    x = layers.Dense(dense_units, name="fc", **initializers)(x)
    x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="fc_lrelu")(x)
    x = layers.Dense(1, dtype="float32", name="logit", **initializers)(x)
    outputs = layers.Reshape((-1,), dtype="float32", name="logits")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.feature_layer_names = tuple(f"conv{i}" for i in range(1, len(CHANNEL_MULTIPLIERS) + 1))  # pre-activation
    return model
