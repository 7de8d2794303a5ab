"""AFM's content loss on the discriminator's features (eqs. 6-7), term kind "feature_matching".

    L^i = ||phi_i(SR) - phi_i(HR)||^2                    (eq. 6, mean per element)
    L_content = sum_i {softmax_i(L^1 .. L^n)} L^i          (eq. 7, {.}: no gradient)

``phi_i`` is the pre-activation map of the i-th conv block of the discriminator (after BN,
before the LeakyReLU; dense layers excluded): the context's ``fake_features`` /
``real_features``, the real ones constants. The term is part of the generator's loss only: the
trainer differentiates it on the generator's tape for the generator's variables, so it never
updates the discriminator (its BatchNormalization statistics do move in that forward pass,
as in PyTorch's train mode).

Initial rescaling ("before starting the training, we re-weight the individual content losses
to bring them to a comparable scale"; the paper gives no method) is part of softmax reweighing
(section III.B), whose e^{L^i} needs comparable scales; M_pca "simply averages" the per-layer
losses, so the mean (and sum) combinations do not rescale unless asked. Chosen here: the per-layer
losses of the first batch the term sees are stored as constants s_i (floored at
:data:`MIN_SCALE`; under ``tf.distribute``, the first replica's share of that batch, used by
every replica) and every later step uses ``L^i / s_i``, so all layers start at 1 and the
softmax starts uniform. The s_i live in :attr:`FeatureMatchingLoss.state_variables`, which
the trainer checkpoints, so a resumed run keeps them.

Options (paper defaults first; the AFM authors' code, ``cb8d5db``, second):

* ``combine``: "softmax" (eq. 7; M_pcsa, M_pcsva) | "mean" (M_pca, "simply averaging") | "sum"
  (the authors' code without ``--softmax_loss``);
* ``softmax_gradient``: False (eq. 7's {.}) | True (the code lets gradients through the softmax);
* ``rescale``: None = with the softmax only (the paper) | True | False (the code has no initial
  rescaling);
* ``layers``: "all" (every conv block) | "authors" (the image itself as "layer 0", on [0, 1],
  plus every block but the last: conv1-7 of AFM's eight);
* ``distance``: "mse" (eq. 6) | "huber" (the code's SmoothL1, threshold ``huber_delta`` = 1);
* ``activation``: "pre" (eq. 6's pre-activation maps) | "post" (the maps after the block's
  LeakyReLU(:data:`LEAKY_SLOPE`): what the code compares in effect, since its in-place
  ``nn.LeakyReLU(0.2, inplace=True)`` overwrites the ``out{i}_noactiv`` maps it returns,
  ``srresnet.py`` ~163/220/263 at ``cb8d5db``). The image "layer 0" is never activated.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term

COMBINES = ("softmax", "mean", "sum")
LAYER_SETS = ("all", "authors")
DISTANCES = ("mse", "huber")
ACTIVATIONS = ("pre", "post")
#: The negative slope of the LeakyReLU after every conv block of the project's discriminators
#: (AFM's ``nn.LeakyReLU(0.2)``).
LEAKY_SLOPE = 0.2
#: Capacity of the stored scales (the first n entries are used for n layers).
MAX_LAYERS = 32
#: Floor of a stored scale (a layer whose first-batch loss is 0).
MIN_SCALE = 1e-12


def _state_variable(initial, name: str) -> tf.Variable:
    """A non-trainable variable written in replica context and kept identical on every replica."""
    return tf.Variable(initial, trainable=False, name=name, synchronization=tf.VariableSynchronization.ON_WRITE,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


@register_term("feature_matching", group="feature_matching")
class FeatureMatchingLoss(LossTerm):
    """AFM's discriminator content loss (module docstring)."""

    needs = frozenset({"features"})

    def __init__(self, name, weight, resources, combine: str = "softmax", softmax_gradient: bool = False,
                 rescale: bool | None = None, layers: str = "all", distance: str = "mse", huber_delta: float = 1.0,
                 activation: str = "pre", **options):
        super().__init__(name, weight, resources, **options)
        for option, value, allowed in (("combine", combine, COMBINES), ("layers", layers, LAYER_SETS),
                                       ("distance", distance, DISTANCES), ("activation", activation, ACTIVATIONS)):
            if value not in allowed:
                raise ValueError(f"{option} must be one of {allowed}, got {value!r}")
        self.combine, self.softmax_gradient, self.layers = combine, bool(softmax_gradient), layers
        self.distance, self.huber_delta, self.activation = distance, float(huber_delta), activation
        self.state_variables: dict[str, tf.Variable] = {}
        if (combine == "softmax") if rescale is None else rescale:
            self.state_variables = {"scales": _state_variable(tf.ones([MAX_LAYERS]), f"{name}_scales"),
                                    "measured_layers": _state_variable(tf.constant(0, tf.int32),
                                                                       f"{name}_measured_layers")}

    def _distance(self, fake: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        fake, real = tf.cast(fake, tf.float32), tf.cast(real, tf.float32)
        if self.distance == "huber":
            return tf.reduce_mean(keras.losses.huber(real, fake, delta=self.huber_delta))
        return tf.reduce_mean(tf.square(fake - real))

    def layer_losses(self, context) -> tf.Tensor:
        """[n] float32: the per-layer losses L^i before rescaling."""
        pairs = list(zip(context.fake_features, context.real_features))
        if self.activation == "post":
            pairs = [(tf.nn.leaky_relu(fake, LEAKY_SLOPE), tf.nn.leaky_relu(real, LEAKY_SLOPE)) for fake, real in pairs]
        if self.layers == "authors":
            pairs = [(context.sr / 255.0, context.hr / 255.0), *pairs[:-1]]
        return tf.stack([self._distance(fake, real) for fake, real in pairs])

    def rescaled(self, losses: tf.Tensor) -> tf.Tensor:
        """``L^i / s_i``; the first call stores s_i = L^i (constants, see the module docstring)."""
        if not self.state_variables:
            return losses
        scales, measured_layers = self.state_variables["scales"], self.state_variables["measured_layers"]
        count = losses.shape[0]
        if count > MAX_LAYERS:
            raise ValueError(f"feature matching stores at most {MAX_LAYERS} layer scales, got {count} layers")
        stored = scales.read_value()
        first = tf.maximum(tf.stop_gradient(losses), MIN_SCALE)
        current = tf.where(tf.equal(measured_layers.read_value(), count), stored[:count], first)
        updates = [scales.assign(tf.concat([current, stored[count:]], 0)), measured_layers.assign(count)]
        with tf.control_dependencies(updates):
            # Read back: every replica divides by the first replica's measurement.
            return losses / scales.read_value()[:count]

    def layer_weights(self, losses: tf.Tensor) -> tf.Tensor:
        """Eq. 7's softmax over the (rescaled) per-layer losses; constants unless
        ``softmax_gradient``."""
        weights = tf.nn.softmax(losses)
        return weights if self.softmax_gradient else tf.stop_gradient(weights)

    def compute(self, context):
        losses = self.rescaled(self.layer_losses(context))
        if self.combine == "mean":
            return tf.reduce_mean(losses)
        if self.combine == "sum":
            return tf.reduce_sum(losses)
        return tf.reduce_sum(self.layer_weights(losses) * losses)
