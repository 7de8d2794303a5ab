"""RRDBNet, the ESRGAN generator (Wang et al. 2018; BasicSR ``RRDBNet``), also DP's ESRGAN-DP
generator (DP section 3.1) and Pan's "basic ESRGAN model".

conv_first 3x3 -> 23 residual-in-residual dense blocks (RRDB) -> conv_body 3x3, added to
conv_first's output (long skip) -> per upsampling step: nearest-neighbour upscaling, 3x3
conv, LeakyReLU 0.2 -> conv_hr 3x3 + LeakyReLU 0.2 -> conv_last 3x3. No BN anywhere; all
convs 'same'-padded, stride 1, with bias; images in [0, 1] inside.

* Dense block (:class:`ResidualDenseBlock`): five 3x3 convs, the i-th taking the block input
  concatenated with the previous i-1 outputs; the first four give ``num_grow`` (32) channels
  followed by LeakyReLU 0.2, the fifth gives ``num_feat`` (64) channels, no activation; output
  ``0.2 * conv5 + x`` (residual scaling).
* RRDB (:class:`RRDB`): three dense blocks in sequence, output ``0.2 * out + x``.
* Upsampling: x4 = two x2 steps, x2 = one x2 step (as DP and Pan's x2/x3/x4 need; BasicSR's
  own x2 RRDBNet instead pixel-unshuffles the input and keeps two x2 steps), x3 = a single
  nearest x3 step (DP section 3.1).

16,697,987 parameters at x4 with (64, 23, 32). Initialisation as BasicSR: the dense-block
convs Kaiming-normal x 0.1 (``"kaiming_normal_x0.1"``), every other conv PyTorch's default
(``"torch_default"``); biases zero (PyTorch draws the other convs' biases uniformly).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from eusr_perceptual.models.common import SingleScaleGenerator, conv, nearest_upsample, upsample_factors
from eusr_perceptual.models.registry import register_network

NEGATIVE_SLOPE = 0.2
RESIDUAL_SCALE = 0.2


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class ResidualDenseBlock(layers.Layer):
    """ESRGAN's dense block of five convs with residual scaling 0.2 (module docstring)."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.num_feat, self.num_grow = num_feat, num_grow
        self.convs = [conv(num_grow if i < 4 else num_feat, 3, f"conv{i + 1}", "kaiming_normal_x0.1")
                      for i in range(5)]

    def build(self, input_shape):
        for i, layer in enumerate(self.convs):
            layer.build(tuple(input_shape[:-1]) + (self.num_feat + i * self.num_grow,))

    def call(self, x):
        features = [x]
        for layer in self.convs[:-1]:
            features.append(ops.leaky_relu(layer(ops.concatenate(features, axis=-1)), negative_slope=NEGATIVE_SLOPE))
        return x + RESIDUAL_SCALE * self.convs[-1](ops.concatenate(features, axis=-1))

    def get_config(self):
        return {**super().get_config(), "num_feat": self.num_feat, "num_grow": self.num_grow}


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class RRDB(layers.Layer):
    """Residual in residual dense block: three dense blocks, residual scaling 0.2."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.num_feat, self.num_grow = num_feat, num_grow
        self.dense_blocks = [ResidualDenseBlock(num_feat, num_grow, name=f"rdb{i + 1}") for i in range(3)]

    def build(self, input_shape):
        for block in self.dense_blocks:
            block.build(input_shape)

    def call(self, x):
        out = x
        for block in self.dense_blocks:
            out = block(out)
        return x + RESIDUAL_SCALE * out

    def get_config(self):
        return {**super().get_config(), "num_feat": self.num_feat, "num_grow": self.num_grow}


@register_network("rrdbnet", "generator")
@keras.saving.register_keras_serializable(package="eusr_perceptual")
class RRDBNet(SingleScaleGenerator):
    """ESRGAN's generator; ``num_feat`` (64), ``num_block`` (23 RRDBs), ``num_grow`` (32)."""

    supported_scales = (2, 3, 4)

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 23, num_grow: int = 32, **kwargs):
        super().__init__(scale, **kwargs)
        self.num_feat, self.num_block, self.num_grow = int(num_feat), int(num_block), int(num_grow)
        f, init = self.num_feat, "torch_default"
        self.conv_first = conv(f, 3, "conv_first", init)
        self.blocks = [RRDB(f, self.num_grow, name=f"rrdb_{i}") for i in range(self.num_block)]
        self.conv_body = conv(f, 3, "conv_body", init)
        self.factors = upsample_factors(self.scale)
        self.upconvs = [conv(f, 3, f"conv_up{i + 1}", init) for i, _ in enumerate(self.factors)]
        self.conv_hr = conv(f, 3, "conv_hr", init)
        self.conv_last = conv(3, 3, "conv_last", init, dtype="float32")

    def _body(self, x, training):
        x = self.conv_first(x)
        body = x
        for block in self.blocks:
            body = block(body)
        x = x + self.conv_body(body)
        for upconv, factor in zip(self.upconvs, self.factors):
            x = ops.leaky_relu(upconv(nearest_upsample(x, factor)), negative_slope=NEGATIVE_SLOPE)
        return self.conv_last(ops.leaky_relu(self.conv_hr(x), negative_slope=NEGATIVE_SLOPE))

    def get_config(self):
        return {**super().get_config(), "num_feat": self.num_feat, "num_block": self.num_block,
                "num_grow": self.num_grow}
