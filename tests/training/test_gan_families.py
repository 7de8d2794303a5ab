"""The single-path GAN families (SRGAN, ESRGAN) under mixed precision and MirroredStrategy, as
the 4PP-EUSR configuration is tested in test_gan_trainer.py: a relativistic objective (real
logits on the generator side), a pre-activation VGG term, ``g_first`` order and EMA."""

import keras
import numpy as np
import pytest

from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.pipelines.gan_run import build_gan_trainer
from helpers import assert_short_run_changes_only_g_and_d, make_dataset, snapshot, tiny_preset


@pytest.mark.parametrize("name", ["srgan_vgg54", "esrgan"])
def test_mixed_precision_scales_each_loss_and_stays_finite(name):
    keras.mixed_precision.set_dtype_policy("mixed_float16")  # the conftest fixture restores float32
    config = tiny_preset(PRESETS[name])
    trainer = build_gan_trainer(config)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.optimizer is not trainer.d_optimizer
    assert trainer.generator.compute_dtype == trainer.discriminator.compute_dtype == "float16"
    history = assert_short_run_changes_only_g_and_d(trainer, make_dataset(config.patch_size, config.hr_size)(0))
    assert {"d_loss", "d_real", "d_fake", *(spec.name for spec in config.active_terms)} <= set(history)
    # Each of the 2 steps is applied, or skipped for an overflow with the loss scale halved (D's
    # BatchNorm on the SR batch alone can overflow float16 at the initial scale of 2**15).
    for optimizer in (trainer.optimizer, trainer.d_optimizer):
        skipped = round(np.log2(2.0 ** 15 / float(optimizer.dynamic_scale)))
        assert int(optimizer.inner_optimizer.iterations) + skipped == 2
    assert int(trainer.optimizer.inner_optimizer.iterations) >= 1 and int(trainer.d_optimizer.inner_optimizer.iterations) >= 1


@pytest.mark.slow
def test_esrgan_under_mirrored_strategy_gives_the_single_device_result(two_cpu_strategy):
    """Two replicas of one example each make the single-device step of the batch of two:
    per-replica losses divided by the replica count, gradients summed (single-path producer,
    pre-activation VGG term, ``g_first``, EMA). Two parts are swapped, for a reason every
    data-parallel run shares (BasicSR's DDP included): RaGAN's E[D(x)] and BatchNorm's statistics
    are means over each replica's rows, not the global batch; so the objective is the vanilla
    one and the discriminator 4PP-EUSR's, which has no BatchNorm (docs/distributed.md)."""
    config = tiny_preset(PRESETS["esrgan"])
    config = config.replace(discriminator={"type": "4pp_eusr", "base_channels": 4, "dense_units": 8},
                            objective="vanilla")
    dataset = make_dataset(config.patch_size, config.hr_size)

    def train(strategy=None):
        if strategy is None:
            trainer = build_gan_trainer(config)
        else:
            with strategy.scope():
                trainer = build_gan_trainer(config)
        before = snapshot({"generator": trainer.generator})
        history = trainer.fit(dataset(0), steps_per_epoch=2, epochs=1, verbose=0).history
        return before, snapshot({"generator": trainer.generator, "discriminator": trainer.discriminator,
                                 "ema": trainer.inference_generator}), history

    start, expected, single = train()
    mirrored_start, got, mirrored = train(two_cpu_strategy)
    for a, b in zip(start["generator"], mirrored_start["generator"]):
        np.testing.assert_array_equal(a, b)  # seeded: the same initial weights
    assert any(not np.array_equal(a, b) for a, b in zip(start["generator"], expected["generator"]))
    # Adam moves a weight by up to its learning rate a step whatever the gradient's size, so an
    # element whose gradient is ~0 moves by an amount the last bits decide: one summed from two
    # half-batch gradients and the same from one batch can differ by up to 2 lr a step (measured
    # with one op thread: 1 of 74,469 D elements 2.4e-5 apart, at lr 1e-3). Every other element
    # agrees to rounding; a replica that used the wrong rows or loss share would move thousands.
    steps, lr = 2, max(config.g_learning_rate, config.d_learning_rate)
    for name in expected:
        off = 0
        for a, b in zip(expected[name], got[name]):
            difference = np.abs(a - b)
            assert difference.max() <= 2 * lr * steps, name
            off += int((difference > 1e-6 + 1e-4 * np.abs(b)).sum())
        assert off <= 2, (name, off)
    for name in single:
        assert mirrored[name][-1] == pytest.approx(single[name][-1], rel=1e-4, abs=1e-6)
