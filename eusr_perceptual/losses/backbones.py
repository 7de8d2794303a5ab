"""Frozen ImageNet classifiers (VGG19, ResNet-50) as feature extractors for perceptual losses.

One :class:`FeatureNetwork` per (network, weights) lives in the trainer's
:class:`~eusr_perceptual.losses.registry.Resources` (:func:`shared_network`), so every term on
VGG19 (``vgg``, ``dual_perceptual``) shares one frozen copy, and one forward pass per step
gives every feature map the terms asked for (:meth:`FeatureNetwork.features`): SR and HR go
through the network in one concatenated call, the HR maps gradient-stopped. Resources is not
tracked by Keras, so these networks are never trained and never in a checkpoint.

Weights: ``resources.backbone_weights`` is "imagenet" (the papers) or None (random features,
for tests and demos: one warning line says so). When the ImageNet file cannot be loaded
(offline), :class:`BackboneWeightsUnavailable` names the file and where Keras looks for it.

Magnitude caveat: Keras' VGG19 and ResNet50 are the Caffe-converted networks and take Caffe
input (BGR, ImageNet mean subtracted, [0, 255]: ``preprocess="caffe"``), while the papers' code
(BasicSR for ESRGAN/DP, the AFM code) used torchvision's networks on [0, 1] input normalised
by the ImageNet mean and standard deviation: Keras' inputs are about 255 x 0.226 ~ 58 times
larger and the weights are another training's, so feature magnitudes (and the balance the
papers' loss weights assume) differ by an amount only a measurement gives: :func:`measure_terms`
gives every term's value on a batch, for the trainer to log at step 0 next to the pixel and
adversarial terms.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf

from eusr_perceptual.losses.registry import Resources

log = logging.getLogger(__name__)

#: name -> (``keras.applications`` constructor, its ``preprocess_input`` module, the
#: weights file's folder in Keras' storage bucket, the file name).
APPLICATIONS = {
    "vgg19": ("VGG19", "vgg19", "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": ("ResNet50", "resnet50", "resnet", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
#: Input handling: "caffe" = the network's own ``preprocess_input`` on [0, 255] RGB (what
#: Keras' ImageNet weights expect); "unit" = [0, 1] RGB without normalisation (the AFM
#: authors' VGG input, the DP authors' ResNet input).
PREPROCESSING = ("caffe", "unit")
#: Feature distances, each a batch mean: "l1" mean absolute difference (ESRGAN, DP eqs. 4-5),
#: "mse" mean squared difference (the SRGAN and AFM code), "squared_l2" squared Euclidean
#: distance over channels averaged over positions, ``(1/(W H)) sum_xy ||phi_xy(SR) -
#: phi_xy(HR)||^2`` (SRGAN's equation, Pan eqs. 7-8) = C x "mse".
DISTANCES = ("l1", "mse", "squared_l2")


class BackboneWeightsUnavailable(RuntimeError):
    """The ImageNet weights of a loss network could not be downloaded or read."""


def weights_help(application: str) -> str:
    """Where to put the ImageNet weights file of ``application`` and how to run without it."""
    constructor, _, folder, filename = APPLICATIONS[application]
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    return (
        f"the ImageNet weights of {constructor} could not be loaded: copy {filename} (from "
        f"{WEIGHTS_URL}{folder}/{filename}, or the Keras cache of a machine with internet access) into "
        f"{cache}/ (~/.keras/models/ unless KERAS_HOME is set), or run with --backbone-weights none "
        "(random features: for tests and demos only)"
    )


def load_backbone(application: str, weights: str | None) -> keras.Model:
    """``keras.applications`` VGG19 / ResNet50 without its top, for any input size, frozen."""
    if application not in APPLICATIONS:
        raise ValueError(f"unknown backbone {application!r}; known: {sorted(APPLICATIONS)}")
    constructor = getattr(keras.applications, APPLICATIONS[application][0])
    try:
        model = constructor(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as error:  # Keras' get_file raises a bare Exception when offline.
        if weights != "imagenet":
            raise
        raise BackboneWeightsUnavailable(weights_help(application)) from error
    if weights is None:
        log.warning("%s perceptual-loss features come from random weights (--backbone-weights none): "
                    "not the papers' loss", APPLICATIONS[application][0])
    model.trainable = False
    return model


class BatchStatistics(keras.layers.Layer):
    """A frozen BatchNormalization layer applied with the batch's own moments (PyTorch's
    train-mode BN, the DP authors' ResNet) and no moving-statistics update: biased variance
    over batch and positions, the source layer's gamma, beta and epsilon."""

    def __init__(self, source: keras.layers.BatchNormalization, **kwargs):
        super().__init__(name=f"{source.name}_batch_statistics", trainable=False, **kwargs)
        self.source = source

    def call(self, x, mask=None, training=None):
        mean, variance = tf.nn.moments(x, axes=[0, 1, 2], keepdims=True)
        gamma, beta = (tf.cast(v, x.dtype) for v in (self.source.gamma, self.source.beta))
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.source.epsilon)


def with_batch_statistics(model: keras.Model) -> keras.Model:
    """``model`` sharing every layer and weight, each BatchNormalization replaced by
    :class:`BatchStatistics` over the same variables."""

    def clone(layer):
        return BatchStatistics(layer) if isinstance(layer, keras.layers.BatchNormalization) else layer

    return keras.models.clone_model(model, clone_function=clone)


class FeatureNetwork:
    """A frozen backbone and the feature maps the terms requested, computed once per step.

    Args:
        application: "vgg19" or "resnet50".
        model: the backbone (from :func:`load_backbone`).
        key: the name in :class:`Resources` (also the per-step cache key).
        batch_statistics: run the extractor through :func:`with_batch_statistics`, with SR
            and HR in separate calls (each batch normalised with its own statistics, as the DP
            authors' separate forward passes); the weights are ``model``'s.
    """

    def __init__(self, application: str, model: keras.Model, key: str, batch_statistics: bool = False):
        self.application, self.model, self.key = application, model, key
        self.batch_statistics = batch_statistics
        self._endpoints: dict[str, keras.KerasTensor] = {}
        self.extractor: keras.Model | None = None

    @property
    def weights(self) -> list:
        return self.model.weights

    def layer(self, name: str) -> keras.layers.Layer:
        try:
            return self.model.get_layer(name)
        except ValueError:
            raise ValueError(f"{self.application} has no layer {name!r}") from None

    def request(self, layers: Sequence[str], endpoint: str = "output") -> list[str]:
        """Adds each layer's ``"input"`` or ``"output"`` to what :meth:`features` returns; the
        returned keys index the feature dicts. Call before the first training step."""
        keys = [f"{layer}:{endpoint}" for layer in layers]
        new = {key: getattr(self.layer(layer), endpoint) for key, layer in zip(keys, layers)
               if key not in self._endpoints}
        if new:
            self._endpoints.update(new)
            extractor = keras.Model(self.model.input, dict(self._endpoints), name=f"{self.model.name}_features")
            self.extractor = with_batch_statistics(extractor) if self.batch_statistics else extractor
        return keys

    def preprocess(self, images: tf.Tensor, mode: str) -> tf.Tensor:
        images = tf.cast(images, tf.float32)
        if mode == "unit":
            return images / 255.0
        module = getattr(keras.applications, APPLICATIONS[self.application][1])
        return module.preprocess_input(images)

    def features(self, context, preprocess: str = "caffe") -> tuple[dict, dict]:
        """(SR maps, HR maps) of every requested endpoint, float32, for ``context.sr`` and
        ``context.hr``: HR maps are constants, computed once per HR image and tiled to match
        ``sr``'s ``repeats`` upscalings. Computed once per step and preprocessing."""

        def compute():
            count = tf.shape(context.sr)[0]
            if self.batch_statistics:
                sr = self.extractor(self.preprocess(context.sr, preprocess), training=False)
                hr = self.extractor(self.preprocess(context.hr_batch, preprocess), training=False)
            else:
                both = self.extractor(self.preprocess(tf.concat([tf.cast(context.sr, tf.float32),
                                                                 tf.cast(context.hr_batch, tf.float32)], 0),
                                                      preprocess), training=False)
                sr = {key: value[:count] for key, value in both.items()}
                hr = {key: value[count:] for key, value in both.items()}
            sr = {key: tf.cast(value, tf.float32) for key, value in sr.items()}
            hr = {key: tf.tile(tf.stop_gradient(tf.cast(value, tf.float32)), [context.repeats, 1, 1, 1])
                  for key, value in hr.items()}
            return sr, hr

        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        # The endpoint count in the key: a term added after this step's pass gets a new pass.
        return context.cached(f"{self.key}:{preprocess}:{len(self._endpoints)}", compute)


def shared_network(resources: Resources, application: str, batch_statistics: bool = False) -> FeatureNetwork:
    """The one :class:`FeatureNetwork` of ``application`` with ``resources.backbone_weights``
    ("imagenet" when unset); ``batch_statistics`` gives the BN-batch-statistics view of the
    same weights."""
    weights = getattr(resources, "backbone_weights", "imagenet")
    key = f"{application}:{weights or 'random'}"
    base = resources.get(key, lambda: FeatureNetwork(application, load_backbone(application, weights), key))
    if not batch_statistics:
        return base
    view = f"{key}:batch_statistics"
    return resources.get(view, lambda: FeatureNetwork(application, base.model, view, batch_statistics=True))


def feature_distance(sr: tf.Tensor, hr: tf.Tensor, distance: str) -> tf.Tensor:
    """One of :data:`DISTANCES` between two [B, H, W, C] feature batches (float32 scalar)."""
    difference = tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32)
    if distance == "l1":
        return tf.reduce_mean(tf.abs(difference))
    if distance == "mse":
        return tf.reduce_mean(tf.square(difference))
    if distance == "squared_l2":
        return tf.reduce_mean(tf.reduce_sum(tf.square(difference), axis=-1))
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def measure_terms(terms, context) -> dict[str, float]:
    """Every term's unweighted value on one batch (``context``), logged in one line: what the
    trainer shows at step 0 so that the Caffe-vs-torchvision magnitude difference of the
    perceptual terms (module docstring) is visible next to the other terms."""
    values = {term.name: float(term(context)) for term in terms}
    log.info("step-0 loss terms (unweighted; weighted): %s", ", ".join(
        f"{term.name} = {values[term.name]:.4g}; {term.weight * values[term.name]:.4g}" for term in terms))
    return values
