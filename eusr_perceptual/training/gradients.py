"""One optimizer update from a loss, correct under ``tf.distribute`` and mixed precision.

Custom ``train_step`` overrides must do by hand what Keras's own step does: divide the
per-replica loss by the number of replicas (gradients are summed across replicas), multiply
it by the loss scale of a ``LossScaleOptimizer`` before differentiating (``scale_loss``;
``apply`` unscales and skips non-finite steps), and differentiate in float32.
"""

from __future__ import annotations

import tensorflow as tf


def replica_share(loss: tf.Tensor) -> tf.Tensor:
    """The part of a global-batch mean loss this replica contributes (loss / replicas)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def minimize(optimizer, loss: tf.Tensor, tape: tf.GradientTape, variables: list) -> None:
    """Applies ``optimizer`` to ``variables`` for a per-replica mean ``loss`` recorded on ``tape``.

    The tape must have been open while ``loss`` was computed; the scaled loss is derived from
    ``loss`` outside the tape's recording, which TensorFlow allows for a persistent or
    non-persistent tape as long as ``tape.gradient`` is called once.
    """
    with tape:
        scaled = optimizer.scale_loss(replica_share(tf.cast(loss, tf.float32)))
    gradients = tape.gradient(scaled, variables)
    optimizer.apply(gradients, variables)
