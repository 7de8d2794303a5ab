"""4PP-EUSR perceptual fine-tuning (Choi et al. 2018, section 4.3) as a ``keras.Model``.

One training step, for a batch of LR patches and their HR patches:

1. the shared EUSR makes three x4 images per patch by multi-pass upscaling (section 3.2);
2. the discriminator is updated with sigmoid cross-entropy on the HR images ("real") and the
   upscaled images ("fake", gradient-stopped): 2 + 6 images per paper step;
3. the EUSR is updated with eq. 8's weighted sum of l_r, l_g, l_as, l_ar, l_ss, l_sr, each
   averaged over the three upscaled images, with l_g computed by the *updated* discriminator
   on the same upscaled images (the paper's order). ``simultaneous_updates=True`` instead
   computes both losses from one forward pass and updates both networks from it, as the
   authors' released code did.

The quality predictors are frozen and only evaluated. Terms of weight 0 (ablations) are
neither computed nor logged, and a predictor whose two terms are both off is not needed.
Losses are computed in float32; each optimizer scales its own loss under ``mixed_float16``
(the discriminator's is wrapped in a ``LossScaleOptimizer`` here, the generator's by
``compile``), and per-replica losses are divided by the replica count under
``tf.distribute`` (see :mod:`eusr_perceptual.training.gradients`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from eusr_perceptual.configs.finetune import PAPER, FinetuneConfig
from eusr_perceptual.losses.perceptual import (
    adversarial_loss,
    discriminator_loss,
    reconstruction_loss,
    representation_loss,
    score_loss,
)
from eusr_perceptual.models.multipass import PATHS, multipass_upscale
from eusr_perceptual.resize import round_to_uint8_tf
from eusr_perceptual.training.gradients import minimize

#: Logged besides the active loss terms: total generator loss, discriminator loss, and the
#: discriminator's mean probabilities for the real and the upscaled images.
STATISTICS = ("loss", "d_loss", "d_real", "d_fake")


def make_adam(learning_rate: float, config: FinetuneConfig) -> keras.optimizers.Adam:
    """Adam with section 4.3's (beta_1, beta_2, epsilon) = (0.9, 0.999, 1e-8)."""
    return keras.optimizers.Adam(
        learning_rate, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2, epsilon=config.adam_epsilon
    )


class FourPassTrainer(keras.Model):
    """Fine-tunes a multi-scale EUSR with a discriminator and two frozen quality predictors.

    Args:
        generator: a pretrained EUSR with x2, x4 and x8 paths (updated).
        discriminator: the section 3.3 discriminator for the HR patch size (updated).
        aesthetic: frozen AVA predictor, ``p(images)`` -> ``{"mean_score": [B], "features":
            [B, F], ...}``; may be None when l_as and l_ar are both off.
        subjective: frozen TID2013 predictor with the same contract; may be None when l_ss
            and l_sr are both off.
        config: loss weights, ablations and options.

    ``model(lr)`` returns the three upscalings ``{"x4", "x2x2", "x8down"}``. ``fit`` on
    (LR, HR) batches trains; the logs hold ``loss`` (eq. 8), each active term, ``d_loss``,
    ``d_real`` and ``d_fake``.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        aesthetic: keras.Model | None = None,
        subjective: keras.Model | None = None,
        config: FinetuneConfig = PAPER,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for needed, predictor, what in (
            (config.needs_aesthetic, aesthetic, "aesthetic (AVA) predictor for l_as/l_ar"),
            (config.needs_subjective, subjective, "subjective (TID2013) predictor for l_ss/l_sr"),
        ):
            if needed and predictor is None:
                raise ValueError(f"the configuration needs the {what}; pass it or ablate those terms")
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.aesthetic = aesthetic if config.needs_aesthetic else None
        self.subjective = subjective if config.needs_subjective else None
        for predictor in (self.aesthetic, self.subjective):
            if predictor is not None:
                predictor.trainable = False
        self.loss_weights_in_force = config.loss_weights
        names = (STATISTICS[0], *config.active_terms, *STATISTICS[1:])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.d_optimizer = None

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, lr):
        return multipass_upscale(self.generator, lr, self.config.downscale)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Sets both optimizers (Adam of section 4.3 by default) and creates their variables.

        Under ``mixed_float16`` Keras wraps the generator's optimizer in a
        ``LossScaleOptimizer``; the discriminator's is wrapped here, so each keeps its own
        dynamic loss scale.
        """
        g_optimizer = g_optimizer or make_adam(self.config.g_learning_rate, self.config)
        d_optimizer = d_optimizer or make_adam(self.config.d_learning_rate, self.config)
        super().compile(optimizer=g_optimizer, **kwargs)
        if self.dtype_policy.name == "mixed_float16" and not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer, name="d_loss_scale_optimizer")
        self.d_optimizer = d_optimizer
        self.build_for_training()

    def build_for_training(self) -> None:
        """Creates every variable a checkpoint holds: networks and both optimizers' slots."""
        self.generator.build()
        if not self.optimizer.built:
            self.optimizer.build(self.generator.trainable_variables)
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.built = True

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, data):
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        step = self._simultaneous_step if self.config.simultaneous_updates else self._sequential_step
        return self._record(step(lr, hr))

    def test_step(self, data):
        """The logged values on a batch without any update (validation)."""
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        sr = self.upscale(lr)
        real, fake = self._discriminate(hr, sr)
        return self._record({**self._generator_terms(hr, sr, fake), **self._discriminator_statistics(real, fake)})

    def _record(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Adds a step's values to the running means and returns the means."""
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _sequential_step(self, lr, hr) -> dict[str, tf.Tensor]:
        """The paper's order: the discriminator first, then the generator against it."""
        with tf.GradientTape() as g_tape:
            sr = self.upscale(lr)
        d_stats = self.discriminator_step(hr, sr)
        return {**self.generator_step(g_tape, hr, sr), **d_stats}

    def _simultaneous_step(self, lr, hr) -> dict[str, tf.Tensor]:
        """Both updates from one forward pass (the authors' code)."""
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = self.upscale(lr)
            real, fake = self._discriminate(hr, sr)
            d_stats = self._discriminator_statistics(real, fake)
            terms = self._generator_terms(hr, sr, fake)
        minimize(self.d_optimizer, d_stats["d_loss"], d_tape, self.discriminator.trainable_variables)
        minimize(self.optimizer, terms["loss"], g_tape, self.generator.trainable_variables)
        return {**terms, **d_stats}

    def upscale(self, lr) -> tf.Tensor:
        """The three x4 images stacked along the batch in :data:`PATHS` order: [3B, ...]."""
        outputs = multipass_upscale(self.generator, lr, self.config.downscale)
        return tf.concat([tf.cast(outputs[path], tf.float32) for path in PATHS], axis=0)

    def discriminator_step(self, hr, sr) -> dict[str, tf.Tensor]:
        """Updates the discriminator only: HR against "real", the upscaled ``sr`` (gradient
        stopped) against "fake". Returns ``d_loss``, ``d_real`` and ``d_fake`` before the update."""
        with tf.GradientTape() as tape:
            real, fake = self._discriminate(hr, tf.stop_gradient(sr))
            stats = self._discriminator_statistics(real, fake)
        minimize(self.d_optimizer, stats["d_loss"], tape, self.discriminator.trainable_variables)
        return stats

    def generator_step(self, tape: tf.GradientTape, hr, sr) -> dict[str, tf.Tensor]:
        """Updates the generator only with eq. 8, the discriminator as it is now.

        ``tape`` recorded ``sr = self.upscale(lr)``; recording resumes on it for the losses.
        """
        with tape:
            fake = self.discriminator(sr, training=True) if self.loss_weights_in_force["l_g"] else None
            terms = self._generator_terms(hr, sr, fake)
        minimize(self.optimizer, terms["loss"], tape, self.generator.trainable_variables)
        return terms

    # -- pieces -----------------------------------------------------------------------------

    def _discriminate(self, hr, sr) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits of the HR and the upscaled images, from one discriminator call."""
        logits = self.discriminator(tf.concat([hr, sr], axis=0), training=True)
        count = tf.shape(hr)[0]
        return logits[:count], logits[count:]

    @staticmethod
    def _discriminator_statistics(real, fake) -> dict[str, tf.Tensor]:
        return {
            "d_loss": discriminator_loss(real, fake),
            "d_real": tf.reduce_mean(tf.sigmoid(tf.cast(real, tf.float32))),
            "d_fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake, tf.float32))),
        }

    def _generator_terms(self, hr, sr, fake_logits) -> dict[str, tf.Tensor]:
        """The active terms of eq. 8 and their weighted sum ``loss``.

        ``sr`` holds the three paths stacked ([3B, ...]); the HR batch is tiled to match, so
        every batch mean is the average over the three upscaled images.
        """
        weights, config = self.loss_weights_in_force, self.config
        repeats = len(PATHS)
        terms = {}
        if weights["l_r"]:
            terms["l_r"] = reconstruction_loss(tf.tile(hr, [repeats, 1, 1, 1]), sr)
        if weights["l_g"]:
            terms["l_g"] = adversarial_loss(fake_logits)
        for predictor, score_term, representation_term, alpha in (
            (self.aesthetic, "l_as", "l_ar", config.alpha_as),
            (self.subjective, "l_ss", "l_sr", config.alpha_ss),
        ):
            if predictor is None:
                continue
            outputs = predictor(tf.concat([sr, hr], axis=0), training=False)
            count = tf.shape(sr)[0]
            scores, features = outputs["mean_score"], outputs["features"]
            hr_scores = tf.tile(tf.stop_gradient(scores[count:]), [repeats])
            hr_features = tf.tile(tf.stop_gradient(features[count:]), [repeats, 1])
            if weights[score_term]:
                terms[score_term] = score_loss(scores[:count], hr_scores, alpha, config.max_score)
            if weights[representation_term]:
                terms[representation_term] = representation_loss(features[:count], hr_features, config.representation)
        terms["loss"] = tf.add_n([weights[name] * value for name, value in terms.items()])
        return terms


def render_paths(trainer: FourPassTrainer, lr: np.ndarray, hr: np.ndarray) -> dict[str, np.ndarray]:
    """TensorBoard strips of fixed patches, one per image: LR (nearest x4) | x4 | x2-x2 |
    x8-down | HR, uint8 (for :class:`~eusr_perceptual.training.callbacks.TensorBoardImages`)."""
    outputs = trainer(tf.constant(lr, tf.float32))
    scale = hr.shape[1] // lr.shape[1]
    panels = [np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2), *(np.asarray(outputs[p]) for p in PATHS), hr]
    strips = np.concatenate([round_to_uint8_tf(tf.cast(panel, tf.float32)).numpy() for panel in panels], axis=2)
    return {"lr_x4_x2x2_x8down_hr": strips}
