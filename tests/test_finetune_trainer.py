"""The 4PP-EUSR fine-tuning step (section 4.3): which network each update changes, ablations,
short runs in float32, mixed_float16 and MirroredStrategy, and exact resume.

Tiny networks: an EUSR with 8 channels, LR 12 -> HR 48 patches, a narrow discriminator for 48
pixels, and stand-in quality predictors with the NIMA call contract (dict with
``mean_score`` and ``features``), including a BatchNormalization layer so that a predictor
that updated its statistics would be caught.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.configs.finetune import PAPER, TERMS
from eusr_perceptual.models.discriminator import build_discriminator
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.training.finetune import STATISTICS, FourPassTrainer, render_paths
from eusr_perceptual.training.runs import RunOptions, fit_run
from nima.model import MeanScore

TINY_EUSR = EUSRConfig(channels=8, shared_blocks=1, upscale_blocks=0, scale_aware_blocks=1)
LR_SIZE, HR_SIZE = 12, 48
CONFIG = PAPER.replace(g_learning_rate=1e-4, d_learning_rate=1e-4, patch_size=LR_SIZE)
NETWORKS = ("generator", "discriminator", "aesthetic", "subjective")


def stand_in_predictor(name: str, seed: int) -> keras.Model:
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=4, kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    x = keras.layers.BatchNormalization()(x)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    distribution = keras.layers.Dense(
        10, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed + 1), dtype="float32"
    )(pooled)
    outputs = {
        "distribution": distribution,
        "mean_score": MeanScore(dtype="float32")(distribution),
        "features": keras.layers.Activation("linear", dtype="float32")(pooled),
    }
    predictor = keras.Model(images, outputs, name=name)
    predictor.trainable = False
    return predictor


def make_trainer(config=CONFIG, seed: int = 0, **compile_args) -> FourPassTrainer:
    keras.utils.set_random_seed(seed)
    generator = EUSR(TINY_EUSR)
    generator.build()
    discriminator = build_discriminator(HR_SIZE, config.discriminator_head, base_channels=4, dense_units=16)
    aesthetic = stand_in_predictor("aesthetic", 10) if config.needs_aesthetic else None
    subjective = stand_in_predictor("subjective", 20) if config.needs_subjective else None
    trainer = FourPassTrainer(generator, discriminator, aesthetic, subjective, config)
    trainer.compile(**compile_args)
    return trainer


def make_dataset(start_step: int) -> tf.data.Dataset:
    """Deterministic per step: the batch of step s depends on s only."""

    def batch(step):
        seed = tf.stack([step, tf.constant(7, tf.int64)])
        lr = tf.random.stateless_uniform((2, LR_SIZE, LR_SIZE, 3), seed, 0.0, 255.0)
        hr = tf.random.stateless_uniform((2, HR_SIZE, HR_SIZE, 3), seed + 1, 0.0, 255.0)
        return lr, hr

    return tf.data.Dataset.counter(start_step).map(batch)


def first_batch():
    return next(iter(make_dataset(0)))


def snapshot(trainer) -> dict[str, list[np.ndarray]]:
    """Every weight (trainable or not, e.g. BatchNormalization statistics) per network."""
    return {
        name: [np.array(v) for v in getattr(trainer, name).weights]
        for name in NETWORKS
        if getattr(trainer, name) is not None
    }


def changed_networks(before, trainer) -> set[str]:
    after = snapshot(trainer)
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def test_discriminator_step_changes_only_d_and_generator_step_only_eusr():
    trainer = make_trainer()
    lr, hr = first_batch()
    before = snapshot(trainer)
    with tf.GradientTape() as tape:
        sr = trainer.upscale(lr)
    assert sr.shape == (6, HR_SIZE, HR_SIZE, 3)  # 3 paths x 2 patches

    stats = trainer.discriminator_step(hr, sr)
    assert set(stats) == {"d_loss", "d_real", "d_fake"}
    assert changed_networks(before, trainer) == {"discriminator"}
    assert (int(trainer.d_optimizer.iterations), int(trainer.optimizer.iterations)) == (1, 0)

    before = snapshot(trainer)
    terms = trainer.generator_step(tape, hr, sr)
    assert set(terms) == {"loss", *TERMS}
    assert changed_networks(before, trainer) == {"generator"}
    assert (int(trainer.d_optimizer.iterations), int(trainer.optimizer.iterations)) == (1, 1)
    every_generator_weight_moved = [
        not np.array_equal(a, b) for a, b in zip(before["generator"], snapshot(trainer)["generator"])
    ]
    assert all(every_generator_weight_moved)  # all three paths and the shared part get gradients


@pytest.mark.parametrize("flag", [None, "without_lr", "without_lg", "without_aesthetic", "without_subjective"])
def test_logged_terms_and_total_follow_the_ablation_flags(flag):
    config = CONFIG if flag is None else CONFIG.replace(**{flag: True})
    trainer = make_trainer(config)
    assert (trainer.aesthetic is None) == (not config.needs_aesthetic)
    assert (trainer.subjective is None) == (not config.needs_subjective)
    logs = {name: float(value) for name, value in trainer.test_step(first_batch()).items()}
    assert set(logs) == set(STATISTICS) | set(config.active_terms)
    weighted = sum(config.loss_weights[term] * logs[term] for term in config.active_terms)
    assert logs["loss"] == pytest.approx(weighted, rel=1e-5)
    assert all(np.isfinite(list(logs.values())))


def test_a_needed_predictor_must_be_given():
    generator, discriminator = EUSR(TINY_EUSR), build_discriminator(HR_SIZE, base_channels=4, dense_units=16)
    with pytest.raises(ValueError, match="aesthetic"):
        FourPassTrainer(generator, discriminator, None, stand_in_predictor("s", 1), CONFIG)


def test_simultaneous_updates_share_the_d_update_but_not_the_g_update():
    """Both orders update D identically (same pre-update D on the same images); only the
    paper's order computes l_g with the updated D, so the EUSR updates differ."""
    results = {}
    for simultaneous in (False, True):
        trainer = make_trainer(CONFIG.replace(simultaneous_updates=simultaneous))
        trainer.train_step(first_batch())
        results[simultaneous] = snapshot(trainer)
    for a, b in zip(results[False]["discriminator"], results[True]["discriminator"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(results[False]["generator"], results[True]["generator"]))


def test_ablated_run_trains():
    """Without l_g the generator step skips the discriminator; D still trains (logged)."""
    trainer = make_trainer(CONFIG.replace(without_lg=True, without_subjective=True))
    before = snapshot(trainer)
    logs = trainer.train_step(first_batch())
    assert set(logs) == set(STATISTICS) | {"l_r", "l_as", "l_ar"}
    assert changed_networks(before, trainer) == {"generator", "discriminator"}


@pytest.fixture(scope="module")
def single_device_run():
    """Three compiled (graph) steps on one device, float32."""
    trainer = make_trainer()
    before = snapshot(trainer)
    history = trainer.fit(make_dataset(0), steps_per_epoch=3, epochs=1, verbose=0)
    return before, snapshot(trainer), history.history, trainer


def test_short_run_changes_the_generator_and_keeps_losses_finite(single_device_run):
    before, after, history, trainer = single_device_run
    assert set(history) == set(STATISTICS) | set(TERMS)
    assert all(np.isfinite(values).all() for values in history.values())
    changed = {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}
    assert changed == {"generator", "discriminator"}
    assert int(trainer.optimizer.iterations) == int(trainer.d_optimizer.iterations) == 3
    strips = render_paths(trainer, *(np.asarray(t) for t in first_batch()))
    assert strips["lr_x4_x2x2_x8down_hr"].shape == (2, HR_SIZE, 5 * HR_SIZE, 3)


def test_mirrored_strategy_gives_the_single_device_result(single_device_run, two_cpu_strategy):
    """Per-replica losses divided by the replica count, gradients summed: same updates."""
    _, expected, history, _ = single_device_run
    with two_cpu_strategy.scope():
        trainer = make_trainer()
    mirrored = trainer.fit(make_dataset(0), steps_per_epoch=3, epochs=1, verbose=0).history
    for name in ("generator", "discriminator"):
        for a, b in zip(expected[name], snapshot(trainer)[name]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for name in history:
        assert mirrored[name][-1] == pytest.approx(history[name][-1], rel=1e-4)


def test_mixed_precision_each_optimizer_scales_its_loss():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    trainer = make_trainer()
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.optimizer is not trainer.d_optimizer
    assert trainer.discriminator.get_layer("conv1").compute_dtype == "float16"
    before = snapshot(trainer)
    history = trainer.fit(make_dataset(0), steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values())
    assert changed_networks(before, trainer) == {"generator", "discriminator"}
    assert int(trainer.optimizer.inner_optimizer.iterations) == int(trainer.d_optimizer.inner_optimizer.iterations) == 2


def test_resume_continues_exactly(tmp_path):
    def run(run_dir, total_steps, resume, seed):
        trainer = make_trainer(seed=seed, run_eagerly=True)
        options = RunOptions(run_dir, total_steps, checkpoint_every=1, resume=resume, tensorboard=False)
        fit_run(trainer, make_dataset, options, config=CONFIG, checkpoint_objects={"d_optimizer": trainer.d_optimizer},
                verbose=0)
        return trainer

    uninterrupted = run(tmp_path / "a", 2, False, seed=0)
    run(tmp_path / "b", 1, False, seed=0)
    resumed = run(tmp_path / "b", 2, True, seed=123)  # other initial weights: all must come from the checkpoint
    for name, weights in snapshot(uninterrupted).items():
        for a, b in zip(weights, snapshot(resumed)[name]):
            np.testing.assert_array_equal(a, b)
    for optimizer in ("optimizer", "d_optimizer"):
        for a, b in zip(getattr(uninterrupted, optimizer).variables, getattr(resumed, optimizer).variables):
            np.testing.assert_array_equal(a, b)
