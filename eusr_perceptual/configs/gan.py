"""Settings of an adversarial training run: one dataclass for every GAN of the project.

A run is a generator spec, a discriminator spec, a producer, an adversarial objective, an
ordered list of weighted generator terms and a schedule (see
:mod:`eusr_perceptual.training.gan`). Each paper's models are named presets of this one
class (:mod:`eusr_perceptual.configs.presets`), never a trainer of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eusr_perceptual.configs.base import Config, ConfigError, setting
from eusr_perceptual.losses.registry import TermSpec
from eusr_perceptual.models.multipass import DOWNSCALE_METHODS
from eusr_perceptual.resize import RESIZE_CONVENTIONS as LR_CONVENTIONS

#: Update orders of the adversarial step (:class:`~eusr_perceptual.training.gan.Schedule`).
ORDERS = ("d_first", "g_first", "simultaneous")
#: How the discriminator sees HR and SR when both are needed: "separate" calls, each batch
#: normalised by its own BatchNorm statistics (BasicSR's ESRGAN/SRGAN models, the DP and AFM
#: code, the 4PP-EUSR code), or one "concatenated" call on [HR; SR] (the same result for a
#: discriminator without BatchNorm, in one call; no reference does it for one with BatchNorm).
D_BATCHES = ("separate", "concatenated")

PRODUCERS = ("single", "multipass")
BACKBONE_WEIGHTS = ("imagenet", "none")


def terms(*entries) -> tuple[TermSpec, ...]:
    """A preset's generator loss list: ``terms(("l1", 1e-2), ("vgg", 1.0, {...}), ...)``."""
    return tuple(TermSpec.parse(entry) for entry in entries)


@dataclass(frozen=True)
class GANConfig(Config):
    """Every setting of an adversarial run (and of its PSNR stage: no discriminator)."""

    description: str = setting("", "one line: the paper, table and loss formula", flag=False)
    preset: str = setting("", "the named preset the run started from (its export name)", flag=False, compare=False)
    # Networks: named specs ({"type": ..., options}) resolved by eusr_perceptual.models.registry.
    generator: dict = setting({"type": "eusr"}, "generator spec", flag=False)
    discriminator: dict | None = setting(None, "discriminator spec (None: PSNR stage, pixel terms only)", flag=False)
    init_from: str = setting("", "start from this generator: a .keras file or a run folder (its generator.keras)")
    init_d_from: str = setting("", "start the discriminator from this file: a .keras discriminator or BasicSR's "
                                   "released net_d .pth (converted in memory); it must fit the preset's D")
    psnr_stage: str = setting("", "preset of the PSNR stage this GAN stage starts from (two-stage training)",
                              flag=False)
    # How SR images are made and judged.
    producer: str = setting("single", "single path, or 4PP-EUSR's multi-pass x4/x2-x2/x8-down (section 3.2)",
                            choices=PRODUCERS)
    scale: int = setting(4, "upscaling factor of the trained path")
    downscale: str = setting("matlab", "multi-pass x8 path's halving: matlab (paper) or subsample (authors' code)",
                             choices=DOWNSCALE_METHODS)
    objective: str = setting("sigmoid_ce", "adversarial objective (eusr_perceptual.losses.adversarial)")
    objective_options: dict = setting({}, "options of the objective", flag=False)
    terms: tuple[TermSpec, ...] = setting((), "generator loss terms: (kind, weight, options) in order", flag=False)
    # Schedule.
    order: str = setting("d_first", "update order: d_first, g_first (BasicSR) or simultaneous", choices=ORDERS)
    d_steps: int = setting(1, "discriminator updates per generator update")
    d_warmup: int = setting(0, "initial steps that train only the discriminator")
    d_batches: str = setting("separate", "D on HR and SR: separate calls (BatchNorm per batch) or one concatenated call",
                             choices=D_BATCHES)
    ema_decay: float = setting(0.0, "generator EMA decay for evaluation and export (0: off)")
    # Frozen networks some terms use.
    aesthetic: str = setting("", "aesthetic (AVA) NIMA predictor, .keras or SavedModel (4PP-EUSR l_as, l_ar)")
    subjective: str = setting("", "subjective (TID2013) NIMA predictor (4PP-EUSR l_ss, l_sr)")
    backbone_weights: str = setting("imagenet", "VGG19/ResNet-50 loss networks: imagenet or none (random)",
                                    choices=BACKBONE_WEIGHTS)
    # Data.
    data: str = setting("div2k:data/DIV2K", "skimage | div2k:<root>[:split] | tfds:div2k | store:<path> | <folder>")
    downscaled_copies: bool = setting(False, "add 2x-downscaled copies of the training images (4PP-EUSR 4.3)")
    lr_convention: str = setting("double", "how LR is made: double (im2double, round once) or uint8 (MATLAB native)",
                                 choices=LR_CONVENTIONS)
    batch_size: int = setting(16, "patches per step (global, over all replicas)")
    patch_size: int = setting(32, "LR patch side; HR side = patch_size * scale")
    # Optimisation.
    g_learning_rate: float = setting(1e-4, "generator learning rate", resumable=True)
    d_learning_rate: float = setting(1e-4, "discriminator learning rate", resumable=True)
    lr_milestones: tuple[int, ...] = setting((), "steps at which both learning rates are multiplied by lr_gamma")
    lr_gamma: float = setting(0.5, "learning-rate factor at each milestone")
    lr_restart_period: int = setting(0, "steps of each cosine-annealing period, restarted at the full rate "
                                        "(BasicSR CosineAnnealingRestartLR); 0: lr_milestones")
    lr_min: float = setting(0.0, "the rate each cosine period anneals to (BasicSR eta_min)")
    adam_beta_1: float = setting(0.9, "Adam beta_1 (both networks)")
    adam_beta_2: float = setting(0.999, "Adam beta_2 (both networks)")
    adam_epsilon: float = setting(1e-8, "Adam epsilon (both networks)")
    # Run.
    steps: int = setting(100_000, "training steps", resumable=True)
    checkpoint_every: int = setting(5_000, "steps between checkpoints (one Keras epoch)")
    seed: int = setting(0, "seed of weight initialisation and of every batch")
    mixed_precision: bool = setting(False, "mixed_float16 (GPU); losses stay float32")
    jit_compile: bool = setting(False, "compile steps with XLA (--jit); slower on CPUs with oneDNN, see docs/performance.md",
                                short="jit")
    bit_exact: bool = setting(False, "seeded runs bit-identical: TensorFlow's graph optimizer off while the steps are "
                                     "made (1.7x the step time on a 2-core CPU; docs/gan.md)", resumable=True)

    def validate(self) -> None:
        names = [spec.name for spec in self.terms]
        if len(set(names)) != len(names):
            raise ConfigError(f"loss term names must be unique, got {names}")
        if any(spec.weight < 0 for spec in self.terms):
            raise ConfigError("loss weights must be non-negative")
        if self.terms and not any(spec.weight for spec in self.terms):
            raise ConfigError("every loss term has weight 0: nothing would train the generator")
        adversarial = [spec.name for spec in self.active_terms if spec.kind in ("adversarial", "feature_matching")]
        if adversarial and self.discriminator is None:
            raise ConfigError(f"terms {adversarial} need a discriminator")
        if self.lr_restart_period < 0 or (self.lr_restart_period and self.lr_milestones):
            raise ConfigError("lr_restart_period must be >= 0, and cosine restarts exclude lr_milestones")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.producer == "multipass" and self.scale != 4:
            raise ConfigError("multi-pass upscaling makes x4 images: scale must be 4")
        if self.steps < 1 or self.checkpoint_every < 1 or self.steps % min(self.checkpoint_every, self.steps):
            raise ConfigError(f"steps ({self.steps}) must be a positive multiple of checkpoint_every "
                              f"({self.checkpoint_every}): one Keras epoch is one checkpoint interval")

    @property
    def active_terms(self) -> tuple[TermSpec, ...]:
        return tuple(spec for spec in self.terms if spec.weight)

    @property
    def hr_size(self) -> int:
        return self.patch_size * self.scale

    @property
    def predictors(self) -> dict[str, str]:
        """Predictor name -> path, for every predictor an active term uses."""
        used = {spec.options.get("predictor", "aesthetic") for spec in self.active_terms
                if spec.kind in ("nima_score", "nima_representation")}
        return {name: getattr(self, name) for name in sorted(used)}

    def with_weights(self, weights: dict[str, float]) -> "GANConfig":
        """The same terms with some weights changed (by term name); weight 0 = ablation."""
        known = {spec.name for spec in self.terms}
        unknown = set(weights) - known
        if unknown:
            raise ConfigError(f"no loss term {sorted(unknown)}; this preset's terms: {sorted(known)}")
        return self.replace(terms=tuple(
            TermSpec(spec.kind, float(weights.get(spec.name, spec.weight)), spec.options) for spec in self.terms))

    def with_term_options(self, name: str, **options: Any) -> "GANConfig":
        """The same terms with options of term ``name`` changed."""
        if name not in {spec.name for spec in self.terms}:
            raise ConfigError(f"no loss term {name!r}")
        return self.replace(terms=tuple(
            TermSpec(spec.kind, spec.weight, {**spec.options, **options}) if spec.name == name else spec
            for spec in self.terms))

    def without(self, *names: str) -> "GANConfig":
        """The terms named removed (an ablation)."""
        missing = set(names) - {spec.name for spec in self.terms}
        if missing:
            raise ConfigError(f"no loss term {sorted(missing)}")
        return self.replace(terms=tuple(spec for spec in self.terms if spec.name not in names))

    def formula(self) -> str:
        """``0.03 * l_r + 0.1 * l_g + ...``."""
        return " + ".join(f"{spec.weight:g} * {spec.name}" for spec in self.active_terms)
