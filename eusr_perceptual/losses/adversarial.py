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

Registered: ``"sigmoid_ce"`` (alias ``"vanilla"``; SRGAN, AFM, SRGAN-DP, 4PP-EUSR), ``"ragan"``
(ESRGAN, ESRGAN-DP), ``"ragan_nolog"`` (Pan), ``"lsgan"``, ``"hinge"``, ``"wgan"`` (weight
clipping), ``"wgan_gp"`` (gradient penalty).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term
from eusr_perceptual.registry import Registry

#: Every adversarial objective class by name and alias.
OBJECTIVES: Registry[type["AdversarialObjective"]] = Registry("adversarial objective", "eusr_perceptual.losses")


def register_objective(name: str, *aliases: str):
    """Class decorator: registers an objective under ``name`` (its ``name``) and ``aliases``."""
    def decorate(cls):
        cls.name = name
        return OBJECTIVES.register(name, *aliases)(cls)
    return decorate


def get_objective(name: str, **options: Any) -> "AdversarialObjective":
    """The objective registered under ``name``, built with ``options``."""
    return OBJECTIVES.get(name)(**options)


def registered_objectives() -> tuple[str, ...]:
    return OBJECTIVES.names()


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


@register_objective("sigmoid_ce", "vanilla")
class SigmoidCrossEntropy(AdversarialObjective):
    """The vanilla non-saturating GAN (also registered as ``"vanilla"``) of SRGAN, AFM
    (eqs. 4-5), DP's SRGAN-DP code and 4PP-EUSR (section 4.3, eq. 3):
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


@register_objective("ragan")
class RelativisticAverage(AdversarialObjective):
    """ESRGAN's relativistic average GAN (DP eq. 3 and the ESRGAN loss forms, digest 1.2).

    ``D_Ra(x_r, x_f) = sigmoid(C(x_r) - mean C(x_f))`` with C the logits and the mean over
    every fake logit of the batch (and ``D_Ra(x_f, x_r)`` the other way round):
    ``L_D = -E_r[log D_Ra(x_r, x_f)] - E_f[log(1 - D_Ra(x_f, x_r))]``,
    ``L_G = -E_r[log(1 - D_Ra(x_r, x_f))] - E_f[log D_Ra(x_f, x_r)]``, each expectation a
    mean sigmoid cross-entropy.

    Args:
        summed: False (default): both losses are multiplied by 0.5, as BasicSR (the DP and
            ESRGAN code) does, the form the usual 5e-3 weight was tuned with; True: the
            ESRGAN paper's plain sum.
        detach_d_means: True (default, BasicSR): in ``L_D`` the two means are constants, so the
            discriminator's gradient flows through C(x_r) of the first term and C(x_f) of the
            second only; False: through the means too, as the equations (and the original
            ESRGAN code) have it.

    The generator side takes the real logits as given (the trainer passes them
    gradient-stopped, as BasicSR detaches them); its gradient flows through the fake logits
    both directly and through their mean.
    """

    def __init__(self, summed: bool = False, detach_d_means: bool = True):
        self.summed, self.detach_d_means = summed, detach_d_means
        self.scale = 1.0 if summed else 0.5

    @property
    def g_needs_real(self) -> bool:
        return True

    def _criterion(self, relative_logits: tf.Tensor, real_label: bool) -> tf.Tensor:
        """``-E[log D_Ra]`` (label 1) or ``-E[log(1 - D_Ra)]`` (label 0)."""
        return bce_with_logits(relative_logits, 1.0 if real_label else 0.0)

    def d_loss(self, real_logits, fake_logits):
        real, fake = _f32(real_logits), _f32(fake_logits)
        mean_real, mean_fake = tf.reduce_mean(real), tf.reduce_mean(fake)
        if self.detach_d_means:
            mean_real, mean_fake = tf.stop_gradient(mean_real), tf.stop_gradient(mean_fake)
        return self.scale * (self._criterion(real - mean_fake, True) + self._criterion(fake - mean_real, False))

    def g_loss(self, real_logits, fake_logits):
        if real_logits is None:
            raise ValueError(f"the {self.name!r} generator loss needs the real logits")
        real, fake = _f32(real_logits), _f32(fake_logits)
        return self.scale * (self._criterion(real - tf.reduce_mean(fake), False)
                             + self._criterion(fake - tf.reduce_mean(real), True))

    def describe(self) -> str:
        form = "summed" if self.summed else "0.5-weighted"
        return f"{self.name} ({form}{', D means detached' if self.detach_d_means else ''})"


@register_objective("ragan_nolog")
class RelativisticAverageNoLog(RelativisticAverage):
    """Pan et al. (2023) section 2.2: the RaGAN losses "with the logarithmic function
    removed" (digest 3.2): ``L_D = -E_r[D_Ra(x_r, x_f)] - E_f[1 - D_Ra(x_f, x_r)]``,
    ``L_G = -E_r[1 - D_Ra(x_r, x_f)] - E_f[D_Ra(x_f, x_r)]``.

    The sigmoid inside ``D_Ra`` is kept (the paper removes only the log; without the sigmoid
    the losses would be unbounded linear functions of the logits). Pan published no code, so
    the defaults are the equations': summed, gradients through the means (``summed=False``,
    ``detach_d_means=True`` give the BasicSR variants of :class:`RelativisticAverage`).
    """

    def __init__(self, summed: bool = True, detach_d_means: bool = False):
        super().__init__(summed, detach_d_means)

    def _criterion(self, relative_logits, real_label):
        probability = tf.sigmoid(relative_logits)
        return -tf.reduce_mean(probability if real_label else 1.0 - probability)


@register_objective("lsgan")
class LeastSquares(AdversarialObjective):
    """Least-squares GAN (Mao et al. 2017, eq. 2 with a = 0, b = c = 1):
    ``L_D = 0.5 E[(D(HR) - 1)^2] + 0.5 E[D(SR)^2]``, ``L_G = 0.5 E[(D(SR) - 1)^2]`` on the
    raw outputs. BasicSR's "lsgan" is the plain MSE, twice these values."""

    probabilities = False

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * (tf.reduce_mean(tf.square(_f32(real_logits) - 1.0)) + tf.reduce_mean(tf.square(_f32(fake_logits))))

    def g_loss(self, real_logits, fake_logits):
        return 0.5 * tf.reduce_mean(tf.square(_f32(fake_logits) - 1.0))


@register_objective("hinge")
class Hinge(AdversarialObjective):
    """Hinge GAN (Lim & Ye 2017; SAGAN): ``L_D = E[max(0, 1 - D(HR))] + E[max(0, 1 + D(SR))]``,
    ``L_G = -E[D(SR)]`` on the raw outputs."""

    probabilities = False

    def d_loss(self, real_logits, fake_logits):
        return tf.reduce_mean(tf.nn.relu(1.0 - _f32(real_logits))) + tf.reduce_mean(tf.nn.relu(1.0 + _f32(fake_logits)))

    def g_loss(self, real_logits, fake_logits):
        return -tf.reduce_mean(_f32(fake_logits))


def _assign_everywhere(variables, transform) -> None:
    """``v.assign(transform(v))`` for every variable, on every replica under ``tf.distribute``
    (from a replica through ``merge_call``, as Keras' optimizers update), or directly."""

    def update(strategy):
        for variable in variables:
            value = variable.value if isinstance(variable, keras.Variable) else variable  # its tf.Variable
            strategy.extended.update(value, lambda v: v.assign(transform(v)), group=False)

    if tf.distribute.in_cross_replica_context():
        update(tf.distribute.get_strategy())
    else:
        tf.distribute.get_replica_context().merge_call(update)


@register_objective("wgan")
class Wasserstein(AdversarialObjective):
    """WGAN (Arjovsky et al. 2017; Pan eqs. 3-4): the critic minimises
    ``mean(C(SR)) - mean(C(HR))`` (the negative of the objective it maximises), the generator
    ``-mean(C(SR))``; ``C`` is the raw critic output (no sigmoid, ``probabilities=False``).
    After every critic update each trainable critic variable is clipped to ``[-clip, clip]``
    (0.01, the WGAN paper's c; Pan mentions no clipping). ``clip=None`` disables it."""

    probabilities = False

    def __init__(self, clip: float | None = 0.01):
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be positive or None, got {clip}")
        self.clip = clip

    def d_loss(self, real_logits, fake_logits):
        return tf.reduce_mean(_f32(fake_logits)) - tf.reduce_mean(_f32(real_logits))

    def g_loss(self, real_logits, fake_logits):
        return -tf.reduce_mean(_f32(fake_logits))

    def after_discriminator_update(self, discriminator) -> None:
        if self.clip is not None:
            _assign_everywhere(discriminator.trainable_variables,
                               lambda v: tf.clip_by_value(v, -self.clip, self.clip))

    def describe(self) -> str:
        return f"{self.name} (clip {self.clip:g})" if self.clip is not None else self.name


@register_objective("wgan_gp")
class WassersteinGP(Wasserstein):
    """WGAN-GP (Gulrajani et al. 2017): the WGAN losses without clipping plus the gradient
    penalty ``lambda * E[(||grad_x C(x)||_2 - 1)^2]`` at ``x = e * HR + (1 - e) * SR``, with
    ``e ~ U[0, 1]`` per image and the norm over each image's pixels and channels; lambda 10.
    The likelier reading of Pan's WGAN (digest 0, item 9: Adam (0, 0.9) is WGAN-GP's).

    The penalty is per image, which batch normalisation breaks (it couples the images of a
    batch), so a critic with any BatchNormalization layer is refused
    (:meth:`check_discriminator`), as the WGAN-GP paper advises.
    """

    def __init__(self, gp_weight: float = 10.0):
        super().__init__(clip=None)
        self.gp_weight = float(gp_weight)

    def check_discriminator(self, discriminator) -> None:
        found = [layer.name for layer in discriminator._flatten_layers(include_self=False, recursive=True)
                 if isinstance(layer, keras.layers.BatchNormalization)]
        if found:
            raise ValueError(
                f"wgan_gp: the critic {discriminator.name!r} has BatchNormalization layers {found}; the gradient "
                "penalty is per image and BN mixes the images of a batch. Use a critic without BN (e.g. the "
                "'4pp_eusr' discriminator) or another objective ('wgan', 'ragan', ...)")

    def penalty(self, discriminator, real, fake):
        real, fake = _f32(real), _f32(fake)
        mix = tf.random.uniform(tf.stack([tf.shape(real)[0], 1, 1, 1]), 0.0, 1.0)
        between = mix * real + (1.0 - mix) * fake
        with tf.GradientTape() as tape:
            tape.watch(between)
            critic = tf.reduce_sum(_f32(discriminator(between, training=True)))
        gradients = tape.gradient(critic, between)
        # The 1e-12 keeps the norm's gradient finite where a gradient vanishes.
        norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)
        return self.gp_weight * tf.reduce_mean(tf.square(norms - 1.0))

    def describe(self) -> str:
        return f"{self.name} (lambda {self.gp_weight:g})"
