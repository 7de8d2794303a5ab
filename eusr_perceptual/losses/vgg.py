"""The VGG19 perceptual loss (SRGAN; ESRGAN; DP eq. 4; AFM eq. 3; Pan eq. 7), term kind "vgg".

``phi`` = the feature map of one VGG19 convolution, named as in Keras: ``block2_conv2`` is
SRGAN's VGG22, ``block5_conv4`` its VGG54 (ESRGAN's and DP's conv5_4). Options:

* ``before_activation``: False = after the ReLU (SRGAN, AFM code's relu5_4); True = before it
  (ESRGAN, DP: "the features before activation are denser"). Keras fuses the ReLU into the
  conv layer, so the term takes that layer's *input* from the shared network and applies the
  layer's own kernel and bias itself (stride, padding and dilation of the layer: 3x3, 1,
  'same'), then the layer's activation unless ``before_activation``.
* ``distance``: "l1" (ESRGAN/BasicSR, DP eq. 4), "mse" (default: the SRGAN and AFM code),
  "squared_l2" (SRGAN's equation and Pan eq. 7, ``(1/(W H)) sum ||.||^2`` over channels);
  see :data:`~eusr_perceptual.losses.backbones.DISTANCES`.
* ``rescale``: multiplies both feature maps before the distance; SRGAN rescales its VGG
  features by 1/12.75 (:data:`SRGAN_RESCALE`) "to obtain VGG losses of a scale comparable to
  the MSE loss"; 1 (default) elsewhere.
* ``preprocess``: "caffe" (default; Keras' ``vgg19.preprocess_input`` on the [0, 255] RGB
  images: BGR, mean subtracted, what Keras' ImageNet weights expect) or "unit" ([0, 1] RGB
  unnormalised, the AFM authors' input). BasicSR's torchvision normalisation is not offered:
  it does not fit Keras' Caffe-converted weights.

The network is VGG19 from ``keras.applications`` with ``resources.backbone_weights``, frozen
and shared with every other term on it (:func:`~eusr_perceptual.losses.backbones.shared_network`).
Magnitudes differ from the papers' torchvision VGG (see
:mod:`~eusr_perceptual.losses.backbones`): log the terms at step 0 with
:func:`~eusr_perceptual.losses.backbones.measure_terms`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from eusr_perceptual.losses.backbones import DISTANCES, PREPROCESSING, feature_distance, shared_network
from eusr_perceptual.losses.registry import LossTerm, register_term

#: SRGAN's VGG feature rescaling (Ledig et al. 2017).
SRGAN_RESCALE = 1.0 / 12.75


@register_term("vgg", group="perceptual")
class VGGLoss(LossTerm):
    """``distance(rescale * phi(SR), rescale * phi(HR))`` on one VGG19 conv (module docstring)."""

    def __init__(self, name, weight, resources, layer: str = "block5_conv4", before_activation: bool = False,
                 distance: str = "mse", rescale: float = 1.0, preprocess: str = "caffe", **options):
        super().__init__(name, weight, resources, **options)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        self.network = shared_network(resources, "vgg19")
        self.conv = self.network.layer(layer)
        if not isinstance(self.conv, keras.layers.Conv2D):
            convs = [item.name for item in self.network.model.layers if isinstance(item, keras.layers.Conv2D)]
            raise ValueError(f"VGG19 layer {layer!r} is not a convolution; choose one of {convs}")
        self.layer, self.before_activation = layer, bool(before_activation)
        self.distance, self.rescale, self.preprocess = distance, float(rescale), preprocess
        self.endpoint, = self.network.request([layer], "input")

    def convolve(self, inputs: tf.Tensor) -> tf.Tensor:
        """The layer's feature map from its input: conv with its kernel and bias, then its
        activation (ReLU) unless ``before_activation``; float32."""
        conv = self.conv
        features = keras.ops.conv(tf.cast(inputs, tf.float32), tf.cast(conv.kernel, tf.float32),
                                  strides=conv.strides, padding=conv.padding, dilation_rate=conv.dilation_rate)
        features = features + tf.cast(conv.bias, tf.float32)
        return features if self.before_activation else conv.activation(features)

    def features(self, context) -> tuple[tf.Tensor, tf.Tensor]:
        """(phi(SR), phi(HR)); phi(HR) is a constant matched to ``context.sr``."""
        sr, hr = self.network.features(context, self.preprocess)
        return self.convolve(sr[self.endpoint]), tf.stop_gradient(self.convolve(hr[self.endpoint]))

    def compute(self, context):
        sr, hr = self.features(context)
        return feature_distance(self.rescale * sr, self.rescale * hr, self.distance)
