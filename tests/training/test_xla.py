"""enable_xla: XLA really compiles the trainer's step when on; it falls back, with one log line
saying why, under op determinism, a multi-device strategy or an op XLA cannot compile; it is
off by default without a GPU."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
# Op determinism's switch-off and query are only in TF's private API.
from tensorflow.python.framework.config import disable_op_determinism, is_op_determinism_enabled

from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.training.pretrain import MultiScalePretrainer, PretrainConfig, pretrain_optimizer
from eusr_perceptual.training.xla import CPU_DEFAULT, NOT_REQUESTED, enable_xla

LOGGER = "eusr_perceptual.training.xla"
BATCH = (tf.random.uniform((2, 6, 6, 3), 0, 255, seed=1), tf.random.uniform((2, 12, 12, 3), 0, 255, seed=2))


class AssertingPretrainer(MultiScalePretrainer):
    """Its step holds an assertion that always fails. tf2xla compiles ``Assert`` to nothing, so
    the step can only run if XLA compiled it: an XLA-only behaviour."""

    def train_step_at_scale(self, scale, data):
        lr, _ = data
        tf.debugging.Assert(tf.reduce_all(lr < 0.0), ["this step ran without XLA"])
        return super().train_step_at_scale(scale, data)


class NumpyStepPretrainer(MultiScalePretrainer):
    """Its step holds a ``tf.numpy_function``, which XLA cannot compile."""

    def train_step_at_scale(self, scale, data):
        lr, hr = data
        lr = tf.numpy_function(lambda x: x, [lr], tf.float32, stateful=False)
        lr.set_shape(BATCH[0].shape)
        return super().train_step_at_scale(scale, (lr, hr))


def pretrainer(cls=MultiScalePretrainer):
    keras.utils.set_random_seed(0)
    # The x2 path is the shortest; fit's symbolic build of the model calls the x4 path.
    generator = EUSR(EUSRConfig(channels=4, shared_blocks=1, upscale_blocks=0, scale_aware_blocks=1, scales=(2, 4)))
    trainer = cls(generator, lambda step: 2)
    trainer.compile(optimizer=pretrain_optimizer(PretrainConfig()))
    trainer.build_for_training()
    return trainer


def step_at_x2(trainer):
    return lambda data: trainer.train_step_at_scale(2, data)


def state(trainer):
    return [v.numpy().copy() for v in trainer.variables + trainer.optimizer.variables]


def fit_one_step(trainer):
    trainer.fit(tf.data.Dataset.from_tensors(BATCH).repeat(), epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)


def test_xla_compiles_the_step_that_fit_runs(caplog):
    trainer = pretrainer(AssertingPretrainer)
    before = state(trainer)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        choice = enable_xla(trainer, BATCH, requested=True, step_function=step_at_x2(trainer))
    assert choice.enabled and trainer.jit_compile and choice.as_config()["jit_compile"] is True
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The check traced and lowered the step but ran nothing.
    assert all(np.array_equal(a, b) for a, b in zip(before, state(trainer)))
    fit_one_step(trainer)  # the failing assertion was compiled away: XLA ran this step
    assert int(trainer.step_counter.numpy()) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, state(trainer)))

    # Control: the same step without XLA trips the assertion.
    plain = pretrainer(AssertingPretrainer)
    by_default = enable_xla(plain, BATCH, step_function=step_at_x2(plain))  # no GPU in the tests
    assert not by_default.enabled and by_default.reason == CPU_DEFAULT
    choice = enable_xla(plain, BATCH, requested=False, step_function=step_at_x2(plain))
    assert choice.as_config() == {"jit_requested": False, "jit_compile": False, "jit_reason": NOT_REQUESTED}
    with pytest.raises(tf.errors.InvalidArgumentError, match="this step ran without XLA"):
        fit_one_step(plain)


def test_op_determinism_turns_xla_off_with_one_log_line(caplog):
    trainer = pretrainer()
    tf.config.experimental.enable_op_determinism()
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            choice = enable_xla(trainer, BATCH, requested=True, step_function=step_at_x2(trainer))
    finally:
        disable_op_determinism()
    assert not is_op_determinism_enabled()
    assert choice.requested and not choice.enabled and not trainer.jit_compile
    assert "op determinism" in choice.reason
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and choice.reason in caplog.records[0].getMessage()


def test_an_op_xla_cannot_compile_turns_xla_off(caplog):
    trainer = pretrainer(NumpyStepPretrainer)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        choice = enable_xla(trainer, BATCH, requested=True, step_function=step_at_x2(trainer))
    assert not choice.enabled and not trainer.jit_compile
    assert choice.reason.startswith("XLA cannot compile the step") and "PyFunc" in choice.reason
    assert len(caplog.records) == 1
    fit_one_step(trainer)  # and the step trains without XLA
    assert int(trainer.step_counter.numpy()) == 1


def test_a_two_device_mirrored_strategy_turns_xla_off(two_cpu_strategy, caplog):
    with two_cpu_strategy.scope():
        trainer = pretrainer()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        choice = enable_xla(trainer, BATCH, requested=True, step_function=step_at_x2(trainer))
    assert not choice.enabled and not trainer.jit_compile
    assert choice.reason.startswith("MirroredStrategy over 2 replicas")
    assert len(caplog.records) == 1


@pytest.mark.slow
def test_the_run_pipelines_choose_xla_through_enable_xla(tmp_path, caplog):
    """``run_pretraining`` and ``run_gan`` pass the run's ``jit_compile`` through
    :func:`enable_xla`: on when asked and possible, one WARNING and off when blocked (here by op
    determinism), and the choice in the log either way; training completes in every case."""
    from eusr_perceptual.configs.presets import PRESETS
    from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS
    from eusr_perceptual.pipelines.gan_run import run_gan
    from eusr_perceptual.pipelines.pretrain_run import run_pretraining
    from helpers import tiny_preset

    pretrain = PRETRAIN_PRESETS["demo"].replace(
        model=EUSRConfig(channels=4, shared_blocks=1, upscale_blocks=0, scale_aware_blocks=1, scales=(2,)),
        steps=1, checkpoint_every=1, batch_size=2, patch_size=8, data="skimage", scale_weights=None, jit_compile=True)
    gan = tiny_preset(PRESETS["srgan_mse"]).replace(steps=1, checkpoint_every=1, jit_compile=True)
    runs = {"pretrain": lambda name, **changes: run_pretraining(pretrain.replace(**changes), tmp_path / name,
                                                                 eval_data=None, verbose=0),
            "gan": lambda name, **changes: run_gan(gan.replace(**changes), tmp_path / name, export_dir=None,
                                                    eval_data=None, verbose=0)}
    for kind, run in runs.items():
        with caplog.at_level(logging.INFO):
            caplog.clear()
            run(f"{kind}_on")
            assert "XLA on: the step compiles with XLA" in caplog.text
            if kind == "pretrain":
                caplog.clear()
                run(f"{kind}_off", jit_compile=False)
                assert f"XLA off: {NOT_REQUESTED}" in caplog.text
            caplog.clear()
            tf.config.experimental.enable_op_determinism()
            try:
                run(f"{kind}_blocked")
            finally:
                disable_op_determinism()
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]
            assert len(warnings) == 1 and "op determinism" in warnings[0]
