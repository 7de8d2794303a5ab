"""One optimizer update from a loss, correct under ``tf.distribute`` and mixed precision.

Custom ``train_step`` overrides must do by hand what Keras's own step does: divide the
per-replica loss by the number of replicas (gradients are summed across replicas), multiply
it by the loss scale of a ``LossScaleOptimizer`` before differentiating (``scale_loss``;
``apply`` unscales and skips non-finite steps), and differentiate in float32.

Seeded runs reproduce only if every sum of gradients is taken in a fixed order. TensorFlow adds
the gradients of a tensor that several branches read (and a chain of adds) with one AddN, which
its graph optimizer (grappler's memory optimizer, with the oneDNN kernels of the CPU build) may
turn into an accumulation in the order the inputs arrive at run time; with two long branches
of similar length (the VGG19 and ResNet-50 of the Dual Perceptual loss, the WGAN-GP penalty
next to the critic's two calls) that order varies, the float sum rounds differently, and the
GAN amplifies the last-bit difference (measured: ESRGAN-DP demo weights 1e-4 apart after 3
steps, 19.13-25.38 dB for one SRGAN-DP seed). :func:`minimize` therefore takes a loss as its
parts, differentiates each part alone and adds their gradients with :func:`fixed_order_sum`.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def replica_share(loss: tf.Tensor) -> tf.Tensor:
    """The part of a global-batch mean loss this replica contributes (loss / replicas)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def fixed_order_sum(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """The sum of same-shaped tensors in list order: one reduction over their stack, which the
    graph optimizer leaves alone (an AddN or a chain of adds it may reorder, module docstring)."""
    return tensors[0] if len(tensors) == 1 else tf.reduce_sum(tf.stack(tensors), axis=0)


def part_gradients(tape: tf.GradientTape, parts: Sequence[tf.Tensor], sources: Sequence) -> list:
    """The gradients of ``sum(parts)`` with respect to ``sources``: each part differentiated
    alone (``tape`` persistent when there are several), the results added by
    :func:`fixed_order_sum`; None where no part reaches a source."""
    if len(parts) == 1:
        return tape.gradient(parts[0], list(sources))
    per_part = [tape.gradient(part, list(sources)) for part in parts]
    summed = []
    for index in range(len(sources)):
        reached = [gradients[index] for gradients in per_part if gradients[index] is not None]
        summed.append(fixed_order_sum(reached) if reached else None)
    return summed


def minimize(optimizer, loss: tf.Tensor | Sequence[tf.Tensor], tape: tf.GradientTape, variables: list,
             through: tf.Tensor | None = None) -> None:
    """Applies ``optimizer`` to ``variables`` for a per-replica mean loss recorded on ``tape``.

    ``loss`` is one tensor or the list of its parts (a GAN's weighted loss terms; the critic's
    loss and its gradient penalty), differentiated part by part and summed in a fixed order
    (module docstring); the tape must then be persistent. ``through``: a tensor through which
    alone the parts depend on ``variables`` (the generator's SR images): the parts are
    differentiated with respect to it and the sum back-propagated into the variables once,
    so the generator's backward pass runs once whatever the number of parts. The tape must have
    been open while the parts were computed; their scaling is recorded here.
    """
    parts = [loss] if isinstance(loss, tf.Tensor) else list(loss)
    with tape:
        scaled = [optimizer.scale_loss(replica_share(tf.cast(part, tf.float32))) for part in parts]
    if through is None or len(scaled) == 1:
        gradients = part_gradients(tape, scaled, variables)
    else:
        (upstream,) = part_gradients(tape, scaled, [through])
        gradients = tape.gradient(through, variables, output_gradients=upstream)
    optimizer.apply(gradients, variables)
