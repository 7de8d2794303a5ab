"""The SRGAN, ESRGAN (BasicSR VGG-style) and AFM discriminators.

Each builder returns a functional model from RGB [0, 255] ``[B, S, S, 3]`` to float32 logits
``[B, 1]`` (the sigmoid lives in the losses), with ``feature_layer_names``: the layer whose
output is the pre-activation map of each conv block, i.e. the BN output where the block has
BN, else the conv output (what feature matching and
:func:`~eusr_perceptual.models.registry.with_features` read). Every block is conv [-> BN] ->
LeakyReLU 0.2, then Flatten -> Dense -> LeakyReLU 0.2 -> Dense(1). Convs are 'same'-padded;
for the 4x4 stride-2 convs of the VGG-style and AFM networks on even sizes this is PyTorch's
padding 1 exactly; for SRGAN's 3x3 stride-2 convs TensorFlow pads bottom/right only. BN uses
PyTorch's momentum/epsilon (:mod:`~eusr_perceptual.models.common`).

* ``"srgan"`` (Ledig et al. 2017, Fig. 4): images to [-1, 1]; eight 3x3 convs with bias,
  channels 64, 64, 128, 128, 256, 256, 512, 512, strides 1, 2, 1, 2, ...; BN on all but the
  first; Dense 1024. 96x96 (the paper's HR crops): 23,565,505 trainable parameters.
  Initialisation is not stated: Glorot-uniform, zero biases.
* ``"vgg_style"`` (BasicSR ``VGGStyleDiscriminator``, ESRGAN's and DP's D): images in
  [0, 1]; conv0_0 3x3 64 with bias, no BN; then conv{i}_1 4x4 stride 2 and conv{i+1}_0 3x3,
  no bias, each with BN: channels 64 | 64, 128 | 128, 256 | 256, 512 | 512, 512 | 512 (five
  stride-2 stages); Dense 100. 128x128: 4x4x512 features, 14,499,401 trainable parameters.
  BasicSR builds it for 128 (and 256) only; Pan's x2/x3 discriminators (64 and 96 px HR from
  32 px LR) keep the same conv stack and let the first Dense layer's input follow (2x2x512 at
  64, 3x3x512 at 96). Any side divisible by 32 is accepted. PyTorch default init.
* ``"afm"`` (AFM paper section III.A; details from the authors' code, digest section 2.1):
  input mean shift (images in [0, 1] minus the DIV2K mean (0.4488, 0.4371, 0.4040)); conv1
  3x3 64 without BN, then 4x4 stride-2 and 3x3 convs alternating, channels 64, 128, 128, 256,
  256, 512, 512, BN on conv2..conv8; no conv biases; conv kernels N(0, 0.02), BN gamma
  N(1, 0.02), beta 0; Dense 1024 (PyTorch default init). 96x96: 6x6x512 features,
  26,000,705 trainable parameters.

``batch_norm=False`` leaves every BN layer out (the convs that had one get a bias, and their
feature maps are the conv outputs): a critic for WGAN-GP, whose per-image gradient penalty BN
would break (Pan's WGAN presets). The WGAN-GP paper suggests layer normalisation instead; none
is added here. ``base_channels`` (64) and ``dense_units`` shrink the networks for tests/demos.

A wrong input size is a ValueError naming the size the network was built for when the
input's shape is known when the model is called (always under JAX and PyTorch), and a failed
``tf.debugging`` assertion with the same message otherwise (a TensorFlow graph traced with
unknown sizes: the one case that imports TensorFlow). The
model's Input is declared ``(None, None, 3)`` so that this check (layer ``input_size_check``),
not Keras' generic shape error, reports it; the check gives the layers after it the static size.
"""

from __future__ import annotations

import keras
from keras import layers

from eusr_perceptual.models.common import batch_norm as batch_norm_layer
from eusr_perceptual.models.common import conv, initializer
from eusr_perceptual.models.registry import register_network
from eusr_perceptual.models.srresnet import AFM_RGB_MEAN

LEAKY_SLOPE = 0.2


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class InputSizeCheck(layers.Layer):
    """Passes ``[B, size, size, C]`` images through and refuses any other size (module
    docstring), naming ``size`` and what ``takes`` says the network accepts."""

    def __init__(self, size: int, network: str, takes: str, **kwargs):
        super().__init__(**kwargs)
        self.size, self.network, self.takes = int(size), network, takes

    def _message(self, got: str) -> str:
        return (f"the {self.network} discriminator was built for {self.size}x{self.size} images, got {got}; "
                f"it takes {self.takes} (build another one with input_size=...)")

    def call(self, images):
        static = tuple(images.shape[1:3])
        if any(side is not None and side != self.size for side in static):
            raise ValueError(self._message("x".join(str(side) for side in static)))
        if None in static:  # only a TensorFlow graph has sizes unknown when it is called
            import tensorflow as tf  # lazy: models/ is TensorFlow-free on other Keras backends (issue 23)

            check = tf.debugging.assert_equal(tf.shape(images)[1:3], [self.size, self.size],
                                              message=self._message("another size"))
            with tf.control_dependencies([check]):
                images = tf.identity(images)
        return images

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "network": self.network, "takes": self.takes}


def _discriminator(name: str, network: str, input_size: int, stride2_count: int, takes: str,
                   normalise: layers.Layer, blocks: list[tuple], init: str, gamma_stddev: float,
                   dense_units: int, dense_init: str, batch_norm_layers: bool) -> keras.Model:
    """The conv [-> BN] -> LeakyReLU stack, Flatten, Dense, LeakyReLU, Dense(1).

    ``blocks`` lists ``(conv_name, filters, kernel, stride, use_bias, bn_name or None)``.
    Without ``batch_norm_layers`` the BN layers are left out and their convs get a bias.
    """
    if input_size < 2 ** stride2_count or input_size % 2 ** stride2_count:
        raise ValueError(f"the {network} discriminator takes {takes}, got input_size={input_size}")
    images = keras.Input((None, None, 3), name="image")
    x = InputSizeCheck(input_size, network, takes, name="input_size_check")(images)
    x = normalise(x)
    features = []
    for conv_name, filters, kernel, stride, use_bias, bn_name in blocks:
        if not batch_norm_layers and bn_name is not None:
            use_bias, bn_name = True, None
        x = conv(filters, kernel, conv_name, init, use_bias, strides=stride)(x)
        if bn_name is not None:
            x = batch_norm_layer(bn_name, gamma_stddev)(x)
        features.append(bn_name or conv_name)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{conv_name}_lrelu")(x)
    x = layers.Flatten(name="flatten")(x)
    dense = {"kernel_initializer": initializer(dense_init), "bias_initializer": "zeros"}
    x = layers.Dense(dense_units, name="fc", **dense)(x)
    x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="fc_lrelu")(x)
    dense["kernel_initializer"] = initializer(dense_init)
    logits = layers.Dense(1, dtype="float32", name="logit", **dense)(x)
    model = keras.Model(images, logits, name=name)
    model.feature_layer_names = tuple(features)
    return model


def _alternating(channels: tuple[int, ...], stride2_kernel: int, first_bias: bool, bias: bool,
                 names: list[str], bn_names: list[str | None]) -> list[tuple]:
    """Blocks alternating a 3x3 stride-1 conv (even 0-based positions) and a
    ``stride2_kernel`` stride-2 conv (odd positions); the first conv's bias apart."""
    return [(names[i], c, 3 if i % 2 == 0 else stride2_kernel, 1 + i % 2, first_bias if i == 0 else bias,
             bn_names[i]) for i, c in enumerate(channels)]


@register_network("srgan", "discriminator")
def build_srgan_discriminator(input_size: int = 96, base_channels: int = 64, dense_units: int = 1024,
                              batch_norm: bool = True, name: str = "srgan_discriminator") -> keras.Model:
    """SRGAN's discriminator (module docstring); ``base_channels`` = first convs' channels (64)."""
    channels = tuple(base_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8))
    blocks = _alternating(channels, 3, True, True, [f"conv{i + 1}" for i in range(8)],
                          [None] + [f"bn{i + 1}" for i in range(1, 8)])
    return _discriminator(name, "srgan", input_size, 4, "square images with a side divisible by 16 (paper: 96)",
                          layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1"), blocks, "glorot_uniform",
                          0.0, dense_units, "glorot_uniform", batch_norm)


@register_network("vgg_style", "discriminator")
def build_vgg_style_discriminator(input_size: int = 128, base_channels: int = 64, dense_units: int = 100,
                                  batch_norm: bool = True, name: str = "vgg_style_discriminator") -> keras.Model:
    """BasicSR's VGGStyleDiscriminator (module docstring); ``base_channels`` = first convs' channels (64)."""
    channels = tuple(base_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8, 8, 8))
    names = [f"conv{i // 2}_{i % 2}" for i in range(10)]
    blocks = _alternating(channels, 4, True, False, names, [None] + [f"bn{n[4:]}" for n in names[1:]])
    return _discriminator(name, "vgg_style", input_size, 5,
                          "square images with a side divisible by 32 (BasicSR: 128; Pan's x2/x3: 64, 96)",
                          layers.Rescaling(1 / 255.0, name="to_0_1"), blocks, "torch_default", 0.0,
                          dense_units, "torch_default", batch_norm)


@register_network("afm", "discriminator")
def build_afm_discriminator(input_size: int = 96, base_channels: int = 64, dense_units: int = 1024,
                            batch_norm: bool = True, name: str = "afm_discriminator") -> keras.Model:
    """The AFM discriminator (module docstring); ``base_channels`` = first convs' channels (64)."""
    channels = tuple(base_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8))
    blocks = _alternating(channels, 4, False, False, [f"conv{i + 1}" for i in range(8)],
                          [None] + [f"bn{i + 1}" for i in range(1, 8)])
    mean_shift = layers.Rescaling(1 / 255.0, offset=[-m / 255.0 for m in AFM_RGB_MEAN], name="mean_shift")
    return _discriminator(name, "afm", input_size, 4, "square images with a side divisible by 16 (paper: 96)",
                          mean_shift, blocks, "normal_0.02", 0.02, dense_units, "torch_default", batch_norm)
