"""Settings of an EUSR pre-training run (4PP-EUSR section 4.1) and its named presets."""

from __future__ import annotations

from dataclasses import dataclass

from eusr_perceptual.configs.base import Config, ConfigError, setting
from eusr_perceptual.models.eusr import EUSRConfig
from eusr_perceptual.resize import RESIZE_CONVENTIONS as LR_CONVENTIONS


@dataclass(frozen=True)
class PretrainConfig(Config):
    """Every setting of a pre-training run; the defaults are section 4.1's."""

    model: EUSRConfig = setting(EUSRConfig(), "EUSR architecture (its fields are flags: --channels, ...)")
    data: str = setting("div2k:data/DIV2K", "skimage | div2k:<root>[:split] | tfds:div2k | store:<path> | <folder>")
    lr_convention: str = setting("double", "how LR is made: double (im2double, round once) or uint8 (MATLAB native)",
                                 choices=LR_CONVENTIONS)
    steps: int = setting(1_000_000, "training steps (section 4.1: 1,000,000)", resumable=True)
    batch_size: int = setting(16, "patches per step, global over all replicas (section 4.1: 16)")
    patch_size: int = setting(48, "LR patch side (section 4.1: 48)")
    learning_rate: float = setting(1e-4, "initial learning rate (section 4.1: 1e-4)", resumable=True)
    halve_every: int = setting(200_000, "steps between halvings of the learning rate (section 4.1: 200,000)")
    adam_beta_1: float = setting(0.9, "Adam beta_1")
    adam_beta_2: float = setting(0.999, "Adam beta_2")
    adam_epsilon: float = setting(1e-8, "Adam epsilon")
    checkpoint_every: int = setting(10_000, "steps between checkpoints (one Keras epoch)")
    scale_weights: tuple[float, ...] | None = setting(
        None, "relative probabilities of the x2, x4, x8 paths per step (default uniform, as the paper)")
    seed: int = setting(0, "seed of weight initialisation and of every batch")
    mixed_precision: bool = setting(False, "mixed_float16 (GPU); losses stay float32")
    jit_compile: bool = setting(False, "compile steps with XLA (--jit); slower on CPUs with oneDNN, see docs/performance.md",
                                short="jit")

    def validate(self) -> None:
        if self.scale_weights is not None and len(self.scale_weights) != len(self.model.scales):
            raise ConfigError(f"scale_weights needs one weight per path {self.model.scales}, got {self.scale_weights}")


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
