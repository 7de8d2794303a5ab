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

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import keras
import tensorflow as tf
from keras import ops

from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.training.gradients import minimize


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of a pre-training run. ``PRETRAIN_PRESETS`` holds the named ones."""

    model: EUSRConfig = field(default_factory=EUSRConfig)
    data: str = "div2k:data/DIV2K"
    steps: int = 1_000_000
    batch_size: int = 16
    patch_size: int = 48
    learning_rate: float = 1e-4
    halve_every: int = 200_000
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    checkpoint_every: int = 10_000
    #: Relative probabilities of training the x2, x4, x8 paths at a step. The paper draws
    #: uniformly (None); the CPU demo favours the cheaper paths (the x8 path costs about 8x
    #: the x2 path per step).
    scale_weights: tuple[float, ...] | None = None
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False

    def replace(self, **changes) -> "PretrainConfig":
        model_changes = {k: changes.pop(k) for k in list(changes) if k in {f.name for f in dataclasses.fields(EUSRConfig)}}
        config = dataclasses.replace(self, **changes)
        return dataclasses.replace(config, model=dataclasses.replace(config.model, **model_changes)) if model_changes else config


PRETRAIN_PRESETS: dict[str, PretrainConfig] = {
    # Section 4.1 as written.
    "paper": PretrainConfig(),
    # The embedded-photograph demo: a small EUSR that learns in minutes on a 2-core CPU.
    "demo": PretrainConfig(
        model=EUSRConfig(channels=16, shared_blocks=4, upscale_blocks=1),
        data="skimage",
        steps=4000,
        batch_size=8,
        patch_size=16,
        learning_rate=1e-3,
        halve_every=2500,
        checkpoint_every=500,
        scale_weights=(0.5, 0.35, 0.15),
    ),
}


def learning_rate_schedule(config: PretrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """Initial rate halved every ``halve_every`` steps (staircase)."""
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=config.halve_every, decay_rate=0.5, staircase=True
    )


def make_optimizer(config: PretrainConfig) -> keras.optimizers.Optimizer:
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
            scale: self._make_function(lambda data, scale=scale: self.train_step_at_scale(scale, data))
            for scale in self.generator.scales
        }

        def train_function(iterator):
            return per_scale[self.scale_for_step(int(self.step_counter.numpy()))](iterator)

        self.train_function = train_function
        return train_function
