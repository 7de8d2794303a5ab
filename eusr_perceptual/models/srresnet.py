"""SRResNet-family generators: Ledig's SRResNet, BasicSR's MSRResNet, the AFM generator.

All three follow the project's generator protocol (:class:`~.common.SingleScaleGenerator`):
RGB in [0, 255] in and float32 [0, 255] out, the normalisation done inside. Convolutions are
'same'-padded, stride 1. Sub-pixel upsampling is conv (C -> C * f^2), depth-to-space f,
activation (the activation acts on the C channels after the shuffle).

* :class:`SRResNet` (Ledig et al. 2017, Fig. 4): 9x9 conv + PReLU; 16 residual blocks
  conv-BN-PReLU-conv-BN (+ skip); conv-BN + long skip; two sub-pixel x2 upsamplers with
  PReLU; 9x9 output conv. Per-channel PReLU (``shared_axes=[1, 2]``, alpha 0.25 at start as
  in He et al.), 1,550,659 trainable parameters at x4 (+4,224 non-trainable: the moving mean
  and variance of its 33 BN layers of 64 channels). LR in
  [0, 1], HR in [-1, 1] (the paper's ranges); no output activation (Fig. 4 has none).
  Initialisation is not stated in the paper: Glorot-uniform kernels, zero biases.
* :class:`MSRResNet` (BasicSR ``MSRResNet``; the DP authors' SRGAN-DP generator,
  ``train_SRGAN_DP.yml``): 3x3 conv_first + LeakyReLU 0.1; 16 blocks conv-ReLU-conv + skip
  (bias, no BN); per x2 step conv 64 -> 256, depth-to-space 2, LeakyReLU 0.1 (x3: one step,
  64 -> 576, depth-to-space 3); conv_hr 3x3 + LeakyReLU 0.1; conv_last 3x3; no long skip.
  Every conv Kaiming-normal x 0.1. Images in [0, 1]. 1,517,571 parameters at x4. Upstream
  BasicSR adds the bilinearly upsampled input to the output; the DP code has that line
  commented out and so does this model by default (digest section 1.1); ``bilinear_base=True``
  adds it (``F.interpolate(x, scale, mode="bilinear", align_corners=False)``, TensorFlow's
  half-pixel bilinear resize), as BasicSR's released MSRResNet/MSRGAN weights need
  (:mod:`eusr_perceptual.importers.pytorch` turns it on).
* :class:`AFMSRResNet` (AFM paper section III.A; head/tail from the authors' code
  ``srresnet.py`` @ cb8d5db): input mean shift (DIV2K RGB mean (0.4488, 0.4371, 0.4040) on
  [0, 1] images, subtracted in and added out as constants), 9x9 conv + LeakyReLU 0.2; 16
  blocks conv-LReLU 0.2-conv + skip; conv_mid 3x3 + global skip; two sub-pixel x2 with
  LReLU 0.2; 9x9 output conv; no BN, no biases anywhere. 1,542,528 trainable parameters.
  Initialisation: MSRA x 0.1 as the paper says (``"kaiming_normal_x0.1"``). The authors'
  code called ``kaiming_normal_(m.weight * 0.1)``, which initialises a temporary tensor and
  leaves PyTorch's default init in place (a no-op); the code's 1x1 mean-shift convs are
  constants here (the code meant to freeze them and did not).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from eusr_perceptual.models.common import (
    SingleScaleGenerator, batch_norm, conv, depth_to_space, upsample_factors)
from eusr_perceptual.models.registry import register_network

#: DIV2K RGB mean on [0, 1] images (AFM authors' code, BasicSR/EDSR), scaled to [0, 255].
AFM_RGB_MEAN = tuple(255.0 * m for m in (0.4488, 0.4371, 0.4040))
PRELU_INIT = 0.25


def _prelu(name: str) -> layers.PReLU:
    """Per-channel PReLU (one slope per channel, shared over positions), slopes start at 0.25."""
    return layers.PReLU(alpha_initializer=keras.initializers.Constant(PRELU_INIT), shared_axes=[1, 2], name=name)


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class SRResNetBlock(layers.Layer):
    """x + BN(conv(PReLU(BN(conv(x))))): Ledig's residual block (3x3, bias, Glorot)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv_a, self.bn_a = conv(channels, 3, "conv_a", "glorot_uniform"), batch_norm("bn_a")
        self.prelu = _prelu("prelu")
        self.conv_b, self.bn_b = conv(channels, 3, "conv_b", "glorot_uniform"), batch_norm("bn_b")

    def build(self, input_shape):
        shape = tuple(input_shape[:-1]) + (self.channels,)
        self.conv_a.build(input_shape)
        for layer in (self.bn_a, self.prelu, self.conv_b, self.bn_b):
            layer.build(shape)

    def call(self, x, training=None):
        y = self.prelu(self.bn_a(self.conv_a(x), training=training))
        return x + self.bn_b(self.conv_b(y), training=training)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class ResidualBlockNoBN(layers.Layer):
    """x + conv(LeakyReLU(conv(x))), 3x3 convs, no normalisation (``negative_slope`` 0 =
    ReLU: BasicSR's ``ResidualBlockNoBN``; 0.2 and no bias: the AFM generator's block).

    EUSR's ``LocalResidualBlock`` has the same shape but neither a slope nor a bias option,
    and gives both its convs one initialiser instance (identical kernels when unseeded).
    """

    def __init__(self, channels: int, negative_slope: float = 0.0, use_bias: bool = True,
                 init: str = "kaiming_normal_x0.1", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.negative_slope, self.use_bias, self.init = channels, negative_slope, use_bias, init
        self.conv_a = conv(channels, 3, "conv_a", init, use_bias)
        self.conv_b = conv(channels, 3, "conv_b", init, use_bias)

    def build(self, input_shape):
        self.conv_a.build(input_shape)
        self.conv_b.build(tuple(input_shape[:-1]) + (self.channels,))

    def call(self, x):
        return x + self.conv_b(ops.leaky_relu(self.conv_a(x), negative_slope=self.negative_slope))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "negative_slope": self.negative_slope,
                "use_bias": self.use_bias, "init": self.init}


class _SRResNetFamily(SingleScaleGenerator):
    """Options shared by the three: ``num_feat`` channels, ``num_block`` residual blocks."""

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, **kwargs):
        super().__init__(scale, **kwargs)
        self.num_feat, self.num_block = int(num_feat), int(num_block)

    def get_config(self):
        return {**super().get_config(), "num_feat": self.num_feat, "num_block": self.num_block}


@register_network("srresnet", "generator")
@keras.saving.register_keras_serializable(package="eusr_perceptual")
class SRResNet(_SRResNetFamily):
    """Ledig et al.'s SRResNet (the SRGAN generator); see the module docstring."""

    supported_scales = (2, 4)
    output_scale = output_offset = 127.5  # the network's [-1, 1] -> [0, 255]

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, **kwargs):
        super().__init__(scale, num_feat, num_block, **kwargs)
        f, init = self.num_feat, "glorot_uniform"
        self.conv_first, self.prelu_first = conv(f, 9, "conv_first", init), _prelu("prelu_first")
        self.blocks = [SRResNetBlock(f, name=f"block_{i}") for i in range(self.num_block)]
        self.conv_body, self.bn_body = conv(f, 3, "conv_body", init), batch_norm("bn_body")
        self.upconvs = [conv(4 * f, 3, f"upconv_{i}", init) for i, _ in enumerate(upsample_factors(self.scale))]
        self.up_prelus = [_prelu(f"up_prelu_{i}") for i, _ in enumerate(upsample_factors(self.scale))]
        self.conv_last = conv(3, 9, "conv_last", init, dtype="float32")

    def _body(self, x, training):
        x = skip = self.prelu_first(self.conv_first(x))
        for block in self.blocks:
            x = block(x, training=training)
        x = skip + self.bn_body(self.conv_body(x), training=training)
        for upconv, prelu in zip(self.upconvs, self.up_prelus):
            x = prelu(depth_to_space(upconv(x), 2))
        return self.conv_last(x)


@register_network("msrresnet", "generator")
@keras.saving.register_keras_serializable(package="eusr_perceptual")
class MSRResNet(_SRResNetFamily):
    """BasicSR's MSRResNet (DP's SRGAN-DP generator); see the module docstring."""

    supported_scales = (2, 3, 4)
    negative_slope = 0.1

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, bilinear_base: bool = False,
                 **kwargs):
        super().__init__(scale, num_feat, num_block, **kwargs)
        self.bilinear_base = bool(bilinear_base)
        f, init = self.num_feat, "kaiming_normal_x0.1"
        self.conv_first = conv(f, 3, "conv_first", init)
        self.blocks = [ResidualBlockNoBN(f, 0.0, True, init, name=f"block_{i}") for i in range(self.num_block)]
        self.factors = upsample_factors(self.scale)
        self.upconvs = [conv(f * k * k, 3, f"upconv_{i}", init) for i, k in enumerate(self.factors)]
        self.conv_hr = conv(f, 3, "conv_hr", init)
        self.conv_last = conv(3, 3, "conv_last", init, dtype="float32")

    def _body(self, x, training):
        images = x
        x = ops.leaky_relu(self.conv_first(x), negative_slope=self.negative_slope)
        for block in self.blocks:
            x = block(x)
        for upconv, factor in zip(self.upconvs, self.factors):
            x = ops.leaky_relu(depth_to_space(upconv(x), factor), negative_slope=self.negative_slope)
        out = self.conv_last(ops.leaky_relu(self.conv_hr(x), negative_slope=self.negative_slope))
        if self.bilinear_base:
            size = (ops.shape(images)[1] * self.scale, ops.shape(images)[2] * self.scale)
            out = out + ops.cast(ops.image.resize(images, size, interpolation="bilinear"), out.dtype)
        return out

    def get_config(self):
        return {**super().get_config(), "bilinear_base": self.bilinear_base}


@register_network("afm_srresnet", "generator")
@keras.saving.register_keras_serializable(package="eusr_perceptual")
class AFMSRResNet(_SRResNetFamily):
    """The AFM paper's generator (SRResNet without BN and biases); see the module docstring."""

    supported_scales = (2, 4)
    input_offset = output_offset = AFM_RGB_MEAN
    negative_slope = 0.2

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, **kwargs):
        super().__init__(scale, num_feat, num_block, **kwargs)
        f, init = self.num_feat, "kaiming_normal_x0.1"
        self.conv_first = conv(f, 9, "conv_first", init, use_bias=False)
        self.blocks = [ResidualBlockNoBN(f, self.negative_slope, False, init, name=f"block_{i}")
                       for i in range(self.num_block)]
        self.conv_mid = conv(f, 3, "conv_mid", init, use_bias=False)
        self.upconvs = [conv(4 * f, 3, f"upconv_{i}", init, use_bias=False)
                        for i, _ in enumerate(upsample_factors(self.scale))]
        self.conv_last = conv(3, 9, "conv_last", init, use_bias=False, dtype="float32")

    def _body(self, x, training):
        x = skip = ops.leaky_relu(self.conv_first(x), negative_slope=self.negative_slope)
        for block in self.blocks:
            x = block(x)
        x = skip + self.conv_mid(x)
        for upconv in self.upconvs:
            x = ops.leaky_relu(depth_to_space(upconv(x), 2), negative_slope=self.negative_slope)
        return self.conv_last(x)
