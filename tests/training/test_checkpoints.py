"""A run checkpoint holds the whole model (issue 19, item 1): every variable of every generator
and discriminator family, trainable or not, with and without the generator EMA; a checkpoint
written without them (by the older code) is refused whole; a finished run resumed after its
``generator.keras`` was deleted writes the same model again."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.configs.gan import GANConfig, terms
from eusr_perceptual.training.checkpoints import (STATE_KEY, IncompleteCheckpointError, restore_run_checkpoint,
                                                  run_checkpoint, state_keys)
from eusr_perceptual.pipelines.gan_run import build_gan_trainer, run_gan
from eusr_perceptual.training.runs import RunOptions, fit_run
from helpers import TEST_NETWORKS, make_dataset

GENERATORS = ("eusr", "srresnet", "msrresnet", "afm_srresnet", "rrdbnet")
DISCRIMINATORS = ("srgan", "vgg_style", "afm", "4pp_eusr")


def small_config(generator: str, discriminator: str = "srgan", ema: bool = False, seed: int = 0) -> GANConfig:
    return GANConfig(generator={"type": generator, **TEST_NETWORKS[generator]},
                     discriminator={"type": discriminator, **TEST_NETWORKS[discriminator]},
                     terms=terms(("l1", 1.0), ("adversarial", 1e-3)), ema_decay=0.9 if ema else 0.0,
                     scale=4, patch_size=8, batch_size=2, seed=seed, data="skimage")


def randomize(trainer) -> None:
    """Every variable of the model gets values no initialiser gives (BN statistics, EMA and
    step counters included), so a variable the checkpoint misses cannot pass by chance."""
    rng = np.random.default_rng(1)
    for variable in trainer.variables:
        value = rng.uniform(1.0, 2.0, variable.shape)
        variable.assign(value.astype(variable.dtype) if variable.dtype != "int64" else np.int64(7))


CASES = ([(g, "srgan", ema) for g in GENERATORS for ema in (False, True)]
         + [("msrresnet", d, False) for d in DISCRIMINATORS if d != "srgan"])


@pytest.mark.parametrize("generator,discriminator,ema", CASES)
def test_every_variable_of_the_model_is_in_the_checkpoint(generator, discriminator, ema, tmp_path):
    config = small_config(generator, discriminator, ema)
    saved = build_gan_trainer(config)
    randomize(saved)
    non_trainable = [v for v in saved.variables if not v.trainable]
    if generator == "srresnet":
        assert any("moving_mean" in v.path for v in non_trainable)  # the premise: BN statistics exist
    if ema:
        assert saved.generator_ema is not None and len(saved.generator_ema.weights) == len(saved.generator.weights)
    step = tf.Variable(0, dtype=tf.int64)
    path = run_checkpoint(saved, step, **saved.checkpoint_objects()).save(str(tmp_path / "ckpt"))  # as fit_run

    restored = build_gan_trainer(config.replace(seed=9))
    restore_run_checkpoint(run_checkpoint(restored, tf.Variable(0, dtype=tf.int64), **restored.checkpoint_objects()),
                           path, restored)
    assert state_keys(restored.variables) == state_keys(saved.variables)
    for a, b in zip(saved.variables, restored.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def test_a_checkpoint_without_the_model_state_is_refused_and_nothing_is_restored(tmp_path):
    config = small_config("srresnet", ema=True)
    old = build_gan_trainer(config)
    randomize(old)
    step = tf.Variable(1, dtype=tf.int64)
    # What the older code wrote: the model object alone, which misses variables kept in lists.
    written = tf.train.Checkpoint(model=old, optimizer=old.optimizer, step=step, **old.checkpoint_objects())
    written.write(str(tmp_path / "checkpoints" / "ckpt-1"))
    tf.train.CheckpointManager(written, tmp_path / "checkpoints", 3)  # no index file yet
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    assert not any(name.startswith(STATE_KEY) for name, _ in tf.train.list_variables(str(tmp_path / "checkpoints/ckpt-1")))

    fresh = build_gan_trainer(config.replace(seed=3))
    before = [np.array(v) for v in fresh.variables]
    options = RunOptions(tmp_path, 2, checkpoint_every=1, resume=True, tensorboard=False)
    with pytest.raises(IncompleteCheckpointError, match=r"lacks \d+ of the model's \d+ variables.*older version"):
        fit_run(fresh, make_dataset(8, 32), options, config=config, checkpoint_objects=fresh.checkpoint_objects(),
                verbose=0)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, fresh.variables))


def test_a_finished_run_resumed_after_deleting_its_model_writes_the_same_model(tmp_path):
    """SRResNet (BatchNorm statistics in list-held blocks) with an EMA copy: the state a kill
    during export or evaluation leaves behind."""
    config = small_config("srresnet", ema=True).replace(steps=2, checkpoint_every=1)
    run_gan(config, tmp_path, export_dir=None, eval_data=None, verbose=0)
    model_file = Path(tmp_path) / "generator.keras"
    first = keras.models.load_model(model_file)
    model_file.unlink()
    keras.backend.clear_session()
    run_gan(config, tmp_path, resume=True, export_dir=None, eval_data=None, verbose=0)
    again = keras.models.load_model(model_file)
    assert len(first.weights) == len(again.weights) and any("moving_variance" in w.path for w in first.weights)
    for a, b in zip(first.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
