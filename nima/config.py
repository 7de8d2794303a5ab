"""Every number of a NIMA score-predictor run, as code (4PP-EUSR sections 3.4 and 4.2).

``AVA_PAPER`` and ``TID2013_PAPER`` hold the paper's settings; command-line flags override
single fields through :meth:`NimaConfig.replace`. One dataclass serves both datasets:
``validation_size`` is read by the AVA loader only, ``validation_references`` by the TID2013
loader only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eusr_perceptual.configs.base import Config, ConfigError, setting

DATASETS = ("ava", "tid2013")
SCORE_BINS = 10  # "probabilities of 10 score classes" (section 3.4): the scores 1..10
LOSSES = ("squared_emd", "emd")


@dataclass(frozen=True)
class Phase:
    """One of the two training phases of section 4.2 (epochs already scaled)."""

    index: int
    epochs: float
    batch_size: int
    learning_rate: float

    @property
    def name(self) -> str:
        return f"phase{self.index}"

    @property
    def trains_base(self) -> bool:
        """Phase 1 trains only the new Dense layer; phase 2 fine-tunes the whole network."""
        return self.index == 2

    def steps(self, train_images: int) -> tuple[int, int]:
        """``(total_steps, checkpoint_every)`` for ``train_images`` training images.

        One epoch is ``ceil(train_images / batch_size)`` steps. A run of at least one epoch
        lasts a whole number of epochs (rounded) and checkpoints at each epoch end; a shorter
        run (``epochs_scale`` for smoke tests) lasts ``round(epochs * steps_per_epoch)`` steps,
        at least one, and checkpoints at its end.
        """
        per_epoch = max(1, math.ceil(train_images / self.batch_size))
        if self.epochs >= 1:
            return round(self.epochs) * per_epoch, per_epoch
        total = max(1, round(self.epochs * per_epoch))
        return total, total


@dataclass(frozen=True)
class NimaConfig(Config):
    """A score-predictor training run. Each field is a ``train_nima.py`` flag (``--phase1-epochs``
    for ``phase1_epochs``) whose help is the field's ``metadata["help"]``."""

    dataset: str = setting("ava", "ava or tid2013 (set by --dataset)", choices=DATASETS, flag=False)
    weights: str = setting("imagenet", "MobileNetV2 initialisation: imagenet (the paper), none, or a weights file path")
    crop_size: int = setting(192, "side of the square crops fed to the network")
    dropout: float = setting(0.75, "dropout rate before the new Dense layer (NIMA: 0.75)")
    loss: str = setting("squared_emd", "squared_emd (paper eq. 1) or emd (NIMA's r=2 EMD with the square root)",
                        choices=LOSSES)
    phase1_epochs: float = setting(5.0, "phase 1 epochs (only the new Dense layer trains)")
    phase1_batch_size: int = setting(128, "phase 1 batch size (global, over all replicas)")
    phase1_learning_rate: float = setting(1e-3, "phase 1 learning rate", resumable=True)
    phase2_epochs: float = setting(5.0, "phase 2 epochs (the whole network fine-tunes)")
    phase2_batch_size: int = setting(32, "phase 2 batch size (global, over all replicas)")
    phase2_learning_rate: float = setting(1e-5, "phase 2 learning rate", resumable=True)
    epochs_scale: float = setting(1.0, "multiplies both phases' epochs, e.g. 0.01 for a short trial run")
    adam_beta_1: float = setting(0.9, "Adam beta_1")
    adam_beta_2: float = setting(0.999, "Adam beta_2")
    adam_epsilon: float = setting(1e-7, "Adam epsilon")
    validation_size: int = setting(5000, "AVA only: images held out for validation (paper: about 5,000)")
    validation_references: int = setting(3, "TID2013 only: the distorted versions of the first N reference images validate")
    seed: int = setting(2018, "seed of the AVA split, the shuffling, crops, flips, Dense initialiser and dropout")
    mixed_precision: bool = setting(False, "train with the mixed_float16 policy (outputs stay float32)")
    jit_compile: bool = setting(False, "compile training steps with XLA (--jit; see docs/performance.md)", short="jit")
    run_eagerly: bool = setting(False, "debugging: run steps eagerly (on a CPU, 1-2 step smoke runs start faster)")

    def validate(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.crop_size < 32:
            raise ConfigError(f"crop_size must be at least 32 (MobileNetV2 downsamples 32x), got {self.crop_size}")
        if self.epochs_scale <= 0:
            raise ConfigError(f"epochs_scale must be positive, got {self.epochs_scale}")

    @property
    def weights_argument(self) -> str | None:
        """``weights`` as :func:`nima.model.build_nima` takes it ("none" becomes None)."""
        return None if self.weights.lower() == "none" else self.weights

    def phases(self) -> tuple[Phase, Phase]:
        return (
            Phase(1, self.phase1_epochs * self.epochs_scale, self.phase1_batch_size, self.phase1_learning_rate),
            Phase(2, self.phase2_epochs * self.epochs_scale, self.phase2_batch_size, self.phase2_learning_rate),
        )


# Section 4.2: AVA, 5 + 5 epochs, batch 128 then 32, lr 1e-3 then 1e-5, ~5,000 validation images.
AVA_PAPER = NimaConfig(dataset="ava")
# Section 4.2: TID2013, 100 + 100 epochs, same batches and rates, first 3 references validate.
TID2013_PAPER = NimaConfig(dataset="tid2013", phase1_epochs=100, phase2_epochs=100)

PRESETS: dict[str, NimaConfig] = {"ava": AVA_PAPER, "tid2013": TID2013_PAPER}
