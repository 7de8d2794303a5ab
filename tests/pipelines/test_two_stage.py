"""A GAN stage trains the generator its PSNR stage wrote, also when that stage kept an EMA
(``msrresnet_psnr``: the saved average is a frozen copy). Before the fix the SRGAN-DP demos'
GAN stages kept the PSNR stage's generator bit for bit (every beta of ``dp_table2`` scored the
same 22.5624 dB)."""

import numpy as np
import pytest

from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.pipelines.gan_run import after_psnr_stage, build_gan_trainer, load_trainable_generator, run_gan
from helpers import tiny_preset


def test_a_gan_stage_trains_the_ema_generator_of_its_psnr_stage(tmp_path):
    psnr = tiny_preset(PRESETS["msrresnet_psnr"]).replace(steps=2, checkpoint_every=2)
    assert psnr.ema_decay > 0
    run_gan(psnr, tmp_path / "psnr", export_dir=None, eval_data=None, verbose=0)
    # without msrgan's own EMA, whose average of an unchanged generator would differ by rounding
    gan = tiny_preset(PRESETS["msrgan"]).replace(steps=1, checkpoint_every=1, ema_decay=0.0)
    gan = after_psnr_stage(gan, tmp_path / "psnr")
    start = [np.asarray(w) for w in load_trainable_generator(gan.init_from).weights]
    trained = run_gan(gan, tmp_path / "gan", export_dir=None, eval_data=None, verbose=0).generator
    assert len(start) == len(trained.weights)
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(start, trained.weights))


def test_a_generator_without_trainable_weights_is_refused():
    config = tiny_preset(PRESETS["msrgan"])
    trainer = build_gan_trainer(config)
    frozen = trainer.generator
    frozen.trainable = False
    with pytest.raises(ValueUsageError, match="no trainable weights"):
        build_gan_trainer(config, generator=frozen)
