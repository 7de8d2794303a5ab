"""Settings of a 4PP-EUSR perceptual fine-tuning run (Choi et al. 2018, sections 4.3 and 5).

:data:`PAPER` is the configuration of sections 4.3 and 5 as written: eq. 8 loss weights,
alpha_as = alpha_ss = 0.8, Adam (0.9, 0.999, 1e-8) with learning rates 1e-5 (EUSR) and 2e-5
(discriminator), two 48x48 LR patches per step, 200,000 steps. The alpha_r sweep of eq. 9
(Table 5) is :data:`ALPHA_R_0_3` / :data:`PAPER` (0.03) / :data:`ALPHA_R_0_003`; each ablation
of Table 4 is one boolean flag (``without_lr``, ``without_lg``, ``without_aesthetic``,
``without_subjective``).

Three options reproduce the authors' released code where it departs from the paper's text:
``downscale="subsample"`` (their x8-path downscale, see
:func:`~eusr_perceptual.models.multipass.multipass_upscale`), ``representation="mean"``
(their ``mean_squared_error`` instead of eq. 5's sum) and ``simultaneous_updates=True``
(discriminator and generator updated from one forward pass). :data:`DEMO` is the small,
short setting of ``scripts/finetune_4pp.py --demo``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from eusr_perceptual.losses.perceptual import REPRESENTATION_REDUCTIONS
from eusr_perceptual.models.discriminator import HEADS
from eusr_perceptual.models.multipass import DOWNSCALE_METHODS

#: The six loss terms of section 4.3, in eq. 8's order.
TERMS = ("l_r", "l_g", "l_as", "l_ar", "l_ss", "l_sr")

#: Table 4's ablations: flag name -> the terms it removes.
ABLATIONS: dict[str, tuple[str, ...]] = {
    "without_lr": ("l_r",),
    "without_lg": ("l_g",),
    "without_aesthetic": ("l_as", "l_ar"),
    "without_subjective": ("l_ss", "l_sr"),
}

#: The settings that take one of a few values, and those values.
CHOICES: dict[str, tuple[str, ...]] = {
    "representation": REPRESENTATION_REDUCTIONS,
    "downscale": DOWNSCALE_METHODS,
    "discriminator_head": HEADS,
}

#: Where ``scripts/train_nima.py`` exports the predictors with its default run folders.
DEFAULT_AESTHETIC = "runs/nima_ava/export/nima_ava.keras"
DEFAULT_SUBJECTIVE = "runs/nima_tid2013/export/nima_tid2013.keras"


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting of a fine-tuning run; the defaults are the paper's.

    ``config.json`` of a run holds it, so that ``--resume`` needs nothing but the run folder.
    """

    # Inputs: the pretrained EUSR (.keras file or pretraining run folder) and the two
    # exported predictors (.keras file or SavedModel folder).
    generator: str = ""
    aesthetic: str = DEFAULT_AESTHETIC
    subjective: str = DEFAULT_SUBJECTIVE
    # Section 4.3 data: DIV2K train + validation (900 images) and their 2x-downscaled copies.
    data: str = "div2k:data/DIV2K:train+valid"
    downscaled_copies: bool = True
    # Eq. 8 weights: l = w_r l_r + w_g l_g + w_as l_as + w_ar l_ar + w_ss l_ss + w_sr l_sr.
    w_r: float = 0.03
    w_g: float = 0.1
    w_as: float = 0.01
    w_ar: float = 0.1
    w_ss: float = 0.01
    w_sr: float = 0.1
    # Table 4 ablations (each removes its terms from eq. 8).
    without_lr: bool = False
    without_lg: bool = False
    without_aesthetic: bool = False
    without_subjective: bool = False
    # Eqs. 4 and 6: expected quality level and maximum score.
    alpha_as: float = 0.8
    alpha_ss: float = 0.8
    max_score: float = 10.0
    # Eqs. 5 and 7 reduction over the 1,280 features: "sum" (paper) or "mean" (authors' code).
    representation: str = "sum"
    # Section 3.2: bicubic downscale of the x8 path, "matlab" (paper) or "subsample" (authors' code).
    downscale: str = "matlab"
    # Section 3.3: dense head per 6x6 position (authors' code) or on the flattened features;
    # 32 channels in the first convolutions and 1024 dense units in the paper.
    discriminator_head: str = "per_position"
    discriminator_channels: int = 32
    discriminator_units: int = 1024
    # Section 4.3 updates D, then EUSR; the authors' code updated both from one forward pass.
    simultaneous_updates: bool = False
    # Section 4.3 optimisation.
    g_learning_rate: float = 1e-5
    d_learning_rate: float = 2e-5
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    batch_size: int = 2
    patch_size: int = 48
    steps: int = 200_000
    checkpoint_every: int = 5_000
    seed: int = 0
    mixed_precision: bool = False

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if any(w < 0 for w in self.weights_as_written.values()):
            raise ValueError(f"loss weights must be non-negative, got {self.weights_as_written}")
        if not any(self.loss_weights.values()):
            raise ValueError("every loss term is disabled: nothing would train the generator")

    @property
    def weights_as_written(self) -> dict[str, float]:
        """The eq. 8 weights before ablation."""
        return {term: getattr(self, "w" + term[1:]) for term in TERMS}

    @property
    def loss_weights(self) -> dict[str, float]:
        """The weights in force: ablated terms have weight 0."""
        removed = {term for flag, terms in ABLATIONS.items() if getattr(self, flag) for term in terms}
        return {term: 0.0 if term in removed else weight for term, weight in self.weights_as_written.items()}

    @property
    def active_terms(self) -> tuple[str, ...]:
        """The terms computed at each step (non-zero weight), in eq. 8's order."""
        return tuple(term for term, weight in self.loss_weights.items() if weight)

    @property
    def needs_aesthetic(self) -> bool:
        """Whether the aesthetic (AVA) predictor is used (l_as or l_ar active)."""
        return bool({"l_as", "l_ar"} & set(self.active_terms))

    @property
    def needs_subjective(self) -> bool:
        """Whether the subjective (TID2013) predictor is used (l_ss or l_sr active)."""
        return bool({"l_ss", "l_sr"} & set(self.active_terms))

    def replace(self, **changes: Any) -> "FinetuneConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FinetuneConfig":
        return cls(**values)


#: Sections 4.3 and 5 (eq. 8, alpha_r = 0.03).
PAPER = FinetuneConfig()
#: Eq. 9 / Table 5 with alpha_r = 0.3 (more weight on reconstruction).
ALPHA_R_0_3 = PAPER.replace(w_r=0.3)
#: Eq. 9 / Table 5 with alpha_r = 0.003 (more perceptual).
ALPHA_R_0_003 = PAPER.replace(w_r=0.003)

#: The embedded-photograph demo: 16 px LR patches (64 px HR), a narrow discriminator, 10x the
#: paper's learning rates (same ratio) and 100 steps, so that a 2-core CPU shows an effect in
#: about two minutes. It uses the authors' "mean" representation loss: with eq. 5's sum over
#: 1,280 features, l_ar and l_sr are ~1000x larger than in the authors' code, for which eq. 8's
#: weights were tuned, and they swamp every other term.
DEMO = PAPER.replace(
    data="skimage",
    representation="mean",
    patch_size=16,
    discriminator_channels=8,
    discriminator_units=64,
    g_learning_rate=1e-4,
    d_learning_rate=2e-4,
    steps=100,
    checkpoint_every=50,
)

PRESETS: dict[str, FinetuneConfig] = {
    "paper": PAPER,
    "alpha_r_0.3": ALPHA_R_0_3,
    "alpha_r_0.03": PAPER,
    "alpha_r_0.003": ALPHA_R_0_003,
    "demo": DEMO,
}
