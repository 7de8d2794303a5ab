"""Multi-scale EUSR pre-training with L1 loss (4PP-EUSR section 4.1).

"For each training step, 16 image patches having a size of 48x48 pixels are obtained by
randomly cropping the training images. Then, one of the upscaling paths (i.e., x2, x4, and x8)
is randomly selected and trained at that step." Adam (0.9, 0.999, 1e-8), learning rate 1e-4
halved every 200,000 steps, 1,000,000 steps.

Only the selected path's parameters are updated at a step (with Adam, a zero gradient would
still move the other paths' weights through their momentum). :class:`MultiScalePretrainer`
therefore compiles one step function per scale, each with static shapes and its own variable
list, and chooses between them in Python before each step from the sampler's per-step scale
schedule. ``fit``, callbacks, the progress bar and ``tf.distribute`` work unchanged.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf
from keras import ops

from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS, PretrainConfig  # noqa: F401  (re-exported)
from eusr_perceptual.models.eusr import EUSR
from eusr_perceptual.training.gradients import minimize
from eusr_perceptual.training.step_functions import compiled_step


def learning_rate_schedule(config: PretrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """Initial rate halved every ``halve_every`` steps (staircase)."""
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=config.halve_every, decay_rate=0.5, staircase=True
    )


def pretrain_optimizer(config: PretrainConfig) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(
        learning_rate_schedule(config), beta_1=config.adam_beta_1, beta_2=config.adam_beta_2, epsilon=config.adam_epsilon
    )


class MultiScalePretrainer(keras.Model):
    """Trains one EUSR path per step with L1 loss; ``scale_for_step(step)`` picks the path.

    The step counter lives in the model (so checkpoints carry it) and must agree with the
    dataset: the batch of step ``b`` has the scale ``scale_for_step(b)``.
    """

    def __init__(self, generator: EUSR, scale_for_step: Callable[[int], int], **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.scale_for_step = scale_for_step
        self.step_counter = self.add_weight(
            name="step_counter", shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.path_trackers = {f"x{s}": keras.metrics.Mean(name=f"l1_x{s}") for s in generator.scales}

    @property
    def metrics(self):
        return [self.loss_tracker, *self.path_trackers.values()]

    def call(self, inputs, scale: int = 4):
        return self.generator(inputs, scale=scale)

    def build_for_training(self) -> None:
        """Creates the generator's and the optimizer's variables (before a checkpoint restore)."""
        self.generator.build()
        if not self.optimizer.built:
            self.optimizer.build(self.generator.trainable_variables)

    def train_step_at_scale(self, scale: int, data):
        lr, hr = data
        variables = self.generator.path_variables(scale)
        with tf.GradientTape() as tape:
            sr = self.generator(lr, scale=scale, training=True)
            loss = ops.mean(ops.abs(sr - ops.cast(hr, sr.dtype)))
        minimize(self.optimizer, loss, tape, variables)
        self.step_counter.assign_add(1)
        self.loss_tracker.update_state(loss)
        self.path_trackers[f"x{scale}"].update_state(loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        raise RuntimeError("MultiScalePretrainer dispatches per scale; use fit(), which calls train_step_at_scale")

    def make_train_function(self, force: bool = False):
        """One compiled step function per scale, chosen in Python before each step."""
        if self.train_function is not None and not force:
            return self.train_function
        if self.steps_per_execution != 1:
            raise ValueError("MultiScalePretrainer needs steps_per_execution=1 (the path changes every step)")
        per_scale = {
            scale: compiled_step(self, lambda data, scale=scale: self.train_step_at_scale(scale, data))
            for scale in self.generator.scales
        }

        def train_function(iterator):
            return per_scale[self.scale_for_step(int(self.step_counter.numpy()))](iterator)

        self.train_function = train_function
        return train_function
