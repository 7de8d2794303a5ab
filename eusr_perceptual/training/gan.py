"""One adversarial trainer for every GAN of the project, built from parts.

``GANTrainer`` is a ``keras.Model`` whose ``train_step`` alternates a generator and a
discriminator ("customizing what happens in fit"), so ``fit``, callbacks, progress bars and
``tf.distribute`` work unchanged. What differs between papers is passed in, not flagged:

* a **producer** makes SR images from an LR batch (:mod:`eusr_perceptual.training.producers`:
  one path, or 4PP-EUSR's three multi-pass images);
* an **adversarial objective** (:mod:`eusr_perceptual.losses.adversarial`) gives ``d_loss``
  and the generator's ``g_loss``;
* an ordered list of **weighted generator terms** (:mod:`eusr_perceptual.losses.registry`),
  each a function of one :class:`~eusr_perceptual.training.context.StepContext`;
* a **schedule**: the step order (``"d_first"``: 4PP-EUSR paper, SRGAN, AFM; ``"g_first"``:
  BasicSR/ESRGAN/DP; ``"simultaneous"``: both updates from one forward pass, the 4PP
  authors' code), discriminator updates per generator update, discriminator warm-up steps
  (only D trains), and an optional exponential moving average of the generator.

Order of operations per step (``d_steps`` = k):

* ``d_first``: SR from G; k D updates on (HR, SR) with SR gradient-stopped; the G update
  against the updated D on the same SR (D re-evaluated on SR).
* ``g_first``: SR from G; the G update against the current D; k D updates on the same SR,
  gradient-stopped (BasicSR reuses the pre-update output).
* ``simultaneous``: one forward pass, D(HR), D(SR) (with the feature maps when a term needs
  them); both losses from it; D then G applied: the G step uses D's outputs from before the
  D update (the 4PP-EUSR and AFM authors' code).

D sees HR and SR in separate calls (``d_batches="separate"``), so that BatchNorm normalises
each batch with its own statistics, as BasicSR (``net_d(gt)``, ``net_d(output)``), the DP code
and the AFM code do; ``"concatenated"`` is one call on ``[HR; SR]`` (equal for a D without
BatchNorm). The same holds for the G step's D features of SR and HR; its logits of SR and of
HR (relativistic objectives) are separate calls in either mode.

Logs: ``loss`` (the weighted generator sum), each term under its name (unweighted), and
``d_loss``, ``d_real``, ``d_fake`` (mean probability, or mean critic value for WGANs) and the
objective's ``d_penalty`` when it has one. Losses are float32; each optimizer scales its own
loss under ``mixed_float16`` (Keras wraps the generator's at ``compile``, the discriminator's
is wrapped here) and per-replica losses are divided by the replica count
(:func:`~eusr_perceptual.training.gradients.minimize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import keras
import tensorflow as tf

from eusr_perceptual.configs.gan import D_BATCHES, ORDERS
from eusr_perceptual.losses.adversarial import AdversarialObjective, AdversarialTerm
from eusr_perceptual.losses.registry import LossTerm, Resources, build_terms
from eusr_perceptual.models.registry import with_features
from eusr_perceptual.training.context import StepContext
from eusr_perceptual.training.gradients import minimize
from eusr_perceptual.training.step_functions import compiled_step



@dataclass(frozen=True)
class Schedule:
    """How generator and discriminator updates alternate (see the module docstring)."""

    order: str = "d_first"
    d_steps: int = 1
    d_warmup: int = 0
    ema_decay: float | None = None
    d_batches: str = "separate"

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.d_batches not in D_BATCHES:
            raise ValueError(f"d_batches must be one of {D_BATCHES}, got {self.d_batches!r}")
        if self.d_steps < 1 or self.d_warmup < 0:
            raise ValueError("d_steps must be >= 1 and d_warmup >= 0")
        if self.order == "simultaneous" and self.d_steps != 1:
            raise ValueError("the simultaneous order makes one D update per step")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")


class GANTrainer(keras.Model):
    """Trains ``generator`` against ``discriminator`` with ``objective`` and ``terms``.

    Args:
        generator: the generator (project protocol: ``generator(x, scale=s)``).
        discriminator: a functional discriminator (logits), or None when no term and no
            objective needs one (e.g. a PSNR-stage run with pixel terms only).
        producer: a :mod:`~eusr_perceptual.training.producers` object.
        objective: an :class:`AdversarialObjective` (None without a discriminator).
        terms: the generator loss list (``(kind, weight[, options])`` entries, see
            :mod:`eusr_perceptual.losses.registry`).
        schedule: step order, D steps per G step, D warm-up, generator EMA.
        resources: shared frozen networks by name (``aesthetic``, ``subjective``, ...).
        backbone_weights: weights of the perceptual loss networks (VGG19, ResNet-50):
            "imagenet" or None (random, tests and demos).

    ``model(lr)`` returns the producer's SR images. :attr:`inference_generator` is the EMA
    generator when there is one (what evaluation and export use), else the generator.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model | None,
        producer,
        objective: AdversarialObjective | None,
        terms: Iterable,
        schedule: Schedule = Schedule(),
        resources: Mapping[str, Any] | None = None,
        backbone_weights: str | None = "imagenet",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.producer, self.objective, self.schedule = producer, objective, schedule
        self.resources = Resources(resources)
        self.resources.backbone_weights = backbone_weights
        self.terms: list[LossTerm] = build_terms(terms, self.resources)
        for term in self.terms:
            if isinstance(term, AdversarialTerm):
                term.objective = objective
        needs = set().union(*(term.needs for term in self.terms))
        if (needs or objective is not None) and discriminator is None:
            raise ValueError(f"terms {sorted(needs)} or the objective need a discriminator")
        if discriminator is not None and objective is None:
            raise ValueError("a discriminator needs an adversarial objective")
        if objective is not None:
            objective.check_discriminator(discriminator)
        self.feature_discriminator = with_features(discriminator) if "features" in needs else None
        # Term state (e.g. feature matching's initial rescaling) is checkpointed with the trainer.
        self.term_state = {term.name: dict(getattr(term, "state_variables", {})) for term in self.terms
                           if getattr(term, "state_variables", None)}
        self.step_counter = self.add_weight(name="gan_step", shape=(), dtype="int64", initializer="zeros",
                                            trainable=False, aggregation="only_first_replica")
        names = ["loss", *(term.name for term in self.terms)]
        if discriminator is not None:
            names += ["d_loss", "d_real", "d_fake"]
            if type(objective).penalty is not AdversarialObjective.penalty:
                names.append("d_penalty")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_ema = None
        self.d_optimizer = None

    # -- set-up ------------------------------------------------------------------------------

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    @property
    def inference_generator(self) -> keras.Model:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def call(self, lr):
        return self.producer(self.generator, lr, training=False)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Sets both optimizers and creates every variable a checkpoint holds.

        Under ``mixed_float16`` Keras wraps the generator's optimizer in a
        ``LossScaleOptimizer``; the discriminator's is wrapped here, so each keeps its own
        dynamic loss scale.
        """
        super().compile(optimizer=g_optimizer or keras.optimizers.Adam(1e-4), **kwargs)
        if self.discriminator is not None:
            d_optimizer = d_optimizer or keras.optimizers.Adam(1e-4)
            if self.dtype_policy.name == "mixed_float16" and not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer, name="d_loss_scale_optimizer")
            self.d_optimizer = d_optimizer
        self.build_for_training()

    def build_for_training(self) -> None:
        """Creates the networks' and both optimizers' variables (before a checkpoint restore)."""
        build = getattr(self.generator, "build", None)
        if not self.generator.built and build is not None:
            build()
        if self.schedule.ema_decay is not None and self.generator_ema is None:
            self.generator_ema = self._ema_copy()
        if not self.optimizer.built:
            self.optimizer.build(self.producer.variables(self.generator))
        if self.d_optimizer is not None and not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.built = True

    def _ema_copy(self) -> keras.Model:
        copy = self.generator.__class__.from_config(self.generator.get_config())
        if not copy.built:
            copy.build()
        copy.set_weights(self.generator.get_weights())
        copy.trainable = False
        return copy

    def checkpoint_objects(self) -> dict[str, Any]:
        """What a run checkpoint holds besides the model and the generator's optimizer."""
        return {"d_optimizer": self.d_optimizer} if self.d_optimizer is not None else {}

    # -- one step ----------------------------------------------------------------------------

    def train_step(self, data):
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        step = {"d_first": self._d_first_step, "g_first": self._g_first_step,
                "simultaneous": self._simultaneous_step}[self.schedule.order]
        values = step(lr, hr)
        self.step_counter.assign_add(1)
        return self._record(values)

    def warmup_step(self, data):
        """Discriminator warm-up: D updates only, G unchanged (BasicSR ``net_d_init_iters``)."""
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        values = self._discriminator_updates(hr, self.producer(self.generator, lr, training=True))
        self.step_counter.assign_add(1)
        return self._record(values)

    def test_step(self, data):
        """The logged values on a batch without any update (validation)."""
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        sr = self.producer(self.generator, lr, training=False)
        values = {}
        if self.discriminator is not None:
            real, fake = self._discriminate_pair(hr, sr)
            values.update(self._discriminator_values(real, fake)[0])
        values.update(self._generator_terms(self._context(lr, hr, sr)))
        return self._record(values)

    def make_train_function(self, force: bool = False):
        """With D warm-up: the warm-up step for the first ``d_warmup`` steps, chosen in Python."""
        if not self.schedule.d_warmup:
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        if self.steps_per_execution != 1:
            raise ValueError("discriminator warm-up needs steps_per_execution=1")
        warmup = compiled_step(self, self.warmup_step)
        train = compiled_step(self, self.train_step)

        def train_function(iterator):
            in_warmup = int(self.step_counter.numpy()) < self.schedule.d_warmup
            return (warmup if in_warmup else train)(iterator)

        self.train_function = train_function
        return train_function

    def _record(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _d_first_step(self, lr, hr):
        with tf.GradientTape(persistent=True) as g_tape:
            sr = self.producer(self.generator, lr, training=True)
        d_values = self._discriminator_updates(hr, sr) if self.discriminator is not None else {}
        return {**self._generator_update(g_tape, lr, hr, sr), **d_values}

    def _g_first_step(self, lr, hr):
        with tf.GradientTape(persistent=True) as g_tape:
            sr = self.producer(self.generator, lr, training=True)
        g_values = self._generator_update(g_tape, lr, hr, sr)
        d_values = self._discriminator_updates(hr, sr) if self.discriminator is not None else {}
        return {**g_values, **d_values}

    def _simultaneous_step(self, lr, hr):
        with tf.GradientTape(persistent=True) as g_tape, tf.GradientTape(persistent=True) as d_tape:
            sr = self.producer(self.generator, lr, training=True)
            features = self.feature_discriminator is not None
            real, fake = self._discriminate_pair(hr, sr, features)
            known = {}
            if features:
                (real, real_maps), (fake, fake_maps) = real, fake
                known["features"] = (fake_maps, [tf.stop_gradient(m) for m in real_maps])
            d_values, d_parts = self._discriminator_values(real, fake, hr, sr)
            terms = self._generator_terms(self._context(lr, hr, sr, real_logits=tf.stop_gradient(real),
                                                        fake_logits=fake, **known))
            g_parts = self._weighted(terms)
        minimize(self.d_optimizer, d_parts, d_tape, self.discriminator.trainable_variables)
        self.objective.after_discriminator_update(self.discriminator)
        self._apply_generator(g_parts, g_tape, sr)
        return {**terms, **d_values}

    def _generator_update(self, tape: tf.GradientTape, lr, hr, sr) -> dict[str, tf.Tensor]:
        """The G update; ``tape`` (persistent) recorded ``sr`` and resumes recording for the losses."""
        with tape:
            terms = self._generator_terms(self._context(lr, hr, sr))
            parts = self._weighted(terms)
        self._apply_generator(parts, tape, sr)
        return terms

    def _apply_generator(self, parts, tape, sr) -> None:
        """The G update from its weighted terms (``parts``), summed in a fixed order at ``sr``
        (:func:`~eusr_perceptual.training.gradients.minimize`: independent of the order in
        which the terms' branches finish)."""
        minimize(self.optimizer, parts, tape, self.producer.variables(self.generator), through=sr)
        if self.generator_ema is not None:
            decay = self.schedule.ema_decay
            for average, value in zip(self.generator_ema.weights, self.generator.weights):
                average.assign(decay * average + (1.0 - decay) * tf.cast(value, average.dtype))

    def _discriminator_updates(self, hr, sr) -> dict[str, tf.Tensor]:
        """``d_steps`` D updates on HR vs gradient-stopped SR; returns the first one's values."""
        sr = tf.stop_gradient(sr)
        first = None
        for _ in range(self.schedule.d_steps):
            with tf.GradientTape(persistent=True) as tape:
                real, fake = self._discriminate_pair(hr, sr)
                values, parts = self._discriminator_values(real, fake, hr, sr)
            minimize(self.d_optimizer, parts, tape, self.discriminator.trainable_variables)
            self.objective.after_discriminator_update(self.discriminator)
            first = first or values
        return first

    # -- pieces ------------------------------------------------------------------------------

    def _context(self, lr, hr, sr, **known) -> StepContext:
        return StepContext(lr, hr, sr, self._discriminate if self.discriminator is not None else None,
                           step=self.step_counter, repeats=self.producer.repeats,
                           discriminate_pair=self._discriminate_pair, **known)

    def _discriminate(self, images, features: bool):
        if features:
            logits, *maps = self.feature_discriminator(images, training=True)
            return logits, maps
        return self.discriminator(images, training=True)

    def _discriminate_pair(self, hr, sr, features: bool = False) -> tuple[Any, Any]:
        """D's view of HR and of SR: logits, or ``(logits, maps)`` with ``features``; two calls
        or one on ``[HR; SR]``, as ``schedule.d_batches`` says (module docstring)."""
        if self.schedule.d_batches == "separate":
            return self._discriminate(hr, features), self._discriminate(sr, features)
        both = self._discriminate(tf.concat([hr, sr], axis=0), features)
        count = tf.shape(hr)[0]
        if not features:
            return both[:count], both[count:]
        logits, maps = both
        return ((logits[:count], [m[:count] for m in maps]), (logits[count:], [m[count:] for m in maps]))

    def _discriminator_values(self, real, fake, hr=None, sr=None) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        """The logged D values and the parts of ``d_loss``: the objective's loss and (with
        ``hr`` and ``sr``) its penalty, for :func:`minimize` to add in a fixed order."""
        parts = [self.objective.d_loss(real, fake)]
        values = {"d_real": self.objective.statistic(real), "d_fake": self.objective.statistic(fake)}
        if "d_penalty" in self.trackers and hr is not None:
            values["d_penalty"] = self.objective.penalty(self.discriminator, hr, sr)
            parts.append(values["d_penalty"])
        return {"d_loss": tf.add_n(parts), **values}, parts

    def _generator_terms(self, context: StepContext) -> dict[str, tf.Tensor]:
        values = {term.name: term(context) for term in self.terms}
        values["loss"] = tf.add_n(self._weighted(values))
        return values

    def _weighted(self, values: dict[str, tf.Tensor]) -> list[tf.Tensor]:
        """Each term's weighted value (the parts of the G loss)."""
        return [term.weight * values[term.name] for term in self.terms]

    def describe(self) -> str:
        """``loss = 0.03 * l_r + ...`` with the objective, producer and schedule."""
        formula = " + ".join(term.describe() for term in self.terms)
        adversary = f"; D: {self.objective.describe()}" if self.objective is not None else ""
        return f"loss = {formula}{adversary}; {self.producer.describe()}; {self.schedule.order}"
