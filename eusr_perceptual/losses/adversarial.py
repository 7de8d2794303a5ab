"""Adversarial objectives: what the discriminator minimises and what the generator's
adversarial term is, from the discriminator's raw outputs (logits or critic values).

An objective is found by name (:func:`get_objective`). Its ``d_loss(real, fake)`` trains the
discriminator and ``g_loss(real, fake)`` is the generator's adversarial term; the generator
side takes the real logits too, because relativistic objectives compare against them (the
trainer passes them gradient-stopped). An objective that needs more than logits (a gradient
penalty) overrides :meth:`AdversarialObjective.penalty`; one that constrains the
discriminator's weights (WGAN clipping) overrides :meth:`after_discriminator_update`.

The generator's adversarial loss term is the registered term ``"adversarial"``: it calls the
trainer's objective, so a preset names the objective once.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term

_OBJECTIVES: dict[str, type["AdversarialObjective"]] = {}


def register_objective(name: str):
    def decorate(cls):
        cls.name = name
        _OBJECTIVES[name] = cls
        return cls
    return decorate


def get_objective(name: str, **options: Any) -> "AdversarialObjective":
    """The objective registered under ``name``, built with ``options``."""
    if name not in _OBJECTIVES:
        raise ValueError(f"unknown adversarial objective {name!r}; registered: {sorted(_OBJECTIVES)}")
    return _OBJECTIVES[name](**options)


def registered_objectives() -> tuple[str, ...]:
    return tuple(sorted(_OBJECTIVES))


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def bce_with_logits(logits: tf.Tensor, label: float | tf.Tensor) -> tf.Tensor:
    """Mean sigmoid cross-entropy of ``logits`` against ``label`` (a constant or a tensor)."""
    logits = _f32(logits)
    labels = tf.broadcast_to(_f32(label), tf.shape(logits))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class AdversarialObjective:
    """Base class. ``probabilities`` says whether ``sigmoid(logit)`` is a probability, which
    decides how ``D(real)`` / ``D(fake)`` are logged (mean sigmoid, else mean raw value)."""

    name = ""
    probabilities = True

    def d_loss(self, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def g_loss(self, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @property
    def g_needs_real(self) -> bool:
        """Whether ``g_loss`` reads ``real_logits`` (relativistic objectives)."""
        return False

    def penalty(self, discriminator, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor | None:
        """An extra discriminator loss needing the network and both batches (WGAN-GP); None if none."""
        return None

    def check_discriminator(self, discriminator) -> None:
        """Refuses a discriminator the objective cannot work with (e.g. BN in a GP critic)."""

    def after_discriminator_update(self, discriminator) -> None:
        """Runs after every discriminator update (weight clipping)."""

    def statistic(self, logits: tf.Tensor) -> tf.Tensor:
        """What ``D(real)`` / ``D(fake)`` log: mean probability, or mean critic value."""
        logits = _f32(logits)
        return tf.reduce_mean(tf.sigmoid(logits) if self.probabilities else logits)

    def describe(self) -> str:
        return self.name


@register_objective("sigmoid_ce")
class SigmoidCrossEntropy(AdversarialObjective):
    """The non-saturating GAN of SRGAN and 4PP-EUSR (section 4.3, eq. 3):
    ``L_D = BCE(D(HR), 1) + BCE(D(SR), 0)`` with each term averaged over its images (and over
    positions for the per-position head), ``L_G = BCE(D(SR), 1) = -log D(SR)``.

    ``label_noise=True`` draws soft noisy labels per element as the AFM authors' code did
    (real ~ U(0.7, 1.2), fake ~ U(0, 0.3); not in any paper).
    """

    def __init__(self, label_noise: bool = False):
        self.label_noise = label_noise

    def _labels(self, logits, real: bool):
        if not self.label_noise:
            return 1.0 if real else 0.0
        low, high = (0.7, 1.2) if real else (0.0, 0.3)
        return tf.random.uniform(tf.shape(logits), low, high)

    def d_loss(self, real_logits, fake_logits):
        return bce_with_logits(real_logits, self._labels(real_logits, True)) + bce_with_logits(
            fake_logits, self._labels(fake_logits, False))

    def g_loss(self, real_logits, fake_logits):
        return bce_with_logits(fake_logits, 1.0)


@register_term("adversarial", group="adversarial")
class AdversarialTerm(LossTerm):
    """The generator's side of the trainer's adversarial objective (``objective.g_loss``)."""

    needs = frozenset({"fake_logits"})

    def __init__(self, name, weight, resources, **options):
        super().__init__(name, weight, resources, **options)
        self.objective: AdversarialObjective | None = None  # set by the trainer

    def compute(self, context):
        if self.objective is None:
            raise ValueError("the adversarial term needs the trainer's objective")
        real = context.real_logits if self.objective.g_needs_real else None
        return self.objective.g_loss(real, context.fake_logits)
