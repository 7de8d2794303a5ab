"""The adversarial trainer, with 4PP-EUSR fine-tuning as its first configuration: which network
each update changes, step orders, warm-up, EMA, ablations, float32 / mixed_float16 /
MirroredStrategy, exact resume, and a regression against the monolithic trainer it replaced."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.configs.presets import FOURPP_EUSR, FOURPP_PRESETS
from eusr_perceptual.losses.adversarial import get_objective
from eusr_perceptual.models.fourpp_discriminator import build_fourpp_discriminator
from eusr_perceptual.training.gan import GANTrainer, Schedule
from eusr_perceptual.pipelines.gan_run import build_gan_trainer, render_samples
from eusr_perceptual.training.producers import MultiPass, SinglePath
from eusr_perceptual.training.runs import RunOptions, fit_run
from helpers import (FIXTURES, assert_short_run_changes_only_g_and_d, changed, make_dataset, snapshot, stand_in_predictor,
                     tiny_eusr, trainer_models)

LR_SIZE, HR_SIZE = 12, 48
CONFIG = FOURPP_EUSR.replace(g_learning_rate=1e-4, d_learning_rate=1e-4, patch_size=LR_SIZE, jit_compile=False)
DATASET = make_dataset(LR_SIZE, HR_SIZE)
REFERENCE = FIXTURES / "fourpass_reference.json"
INITIAL_WEIGHTS = FIXTURES / "fourpass_initial_weights.npz"


def first_batch():
    return next(iter(DATASET(0)))


def make_trainer(config=CONFIG, seed: int = 0, run_eagerly: bool = False) -> GANTrainer:
    """Tiny 4PP-EUSR trainer: networks created in the order the old FourPassTrainer tests used,
    so that seeded initial weights are the same."""
    keras.utils.set_random_seed(seed)
    generator = tiny_eusr()
    d_options = {k: v for k, v in config.discriminator.items() if k != "type"}
    discriminator = build_fourpp_discriminator(HR_SIZE, d_options["head"], base_channels=4, dense_units=16)
    resources = {"aesthetic": stand_in_predictor("aesthetic", 10), "subjective": stand_in_predictor("subjective", 20)}
    resources = {name: model for name, model in resources.items() if name in config.predictors}
    from eusr_perceptual.pipelines.gan_run import gan_optimizer
    from eusr_perceptual.training.producers import make_producer

    trainer = GANTrainer(generator, discriminator, make_producer(config.producer, config.scale, config.downscale),
                         get_objective(config.objective), config.terms,
                         Schedule(config.order, config.d_steps, config.d_warmup, config.ema_decay or None),
                         resources=resources, backbone_weights=None)
    trainer.compile(gan_optimizer(config, config.g_learning_rate), gan_optimizer(config, config.d_learning_rate),
                    run_eagerly=run_eagerly)
    return trainer


@pytest.mark.parametrize("name,config", [
    ("paper", CONFIG),
    ("simultaneous", CONFIG.replace(order="simultaneous")),
    ("mean_subsample", CONFIG.replace(downscale="subsample",
                                      terms=FOURPP_PRESETS["4pp_eusr_authors"].terms)),
])
def test_reproduces_the_monolithic_fourpass_trainer(name, config):
    """Per-term losses of three steps and weight checksums recorded from the FourPassTrainer of
    commit 8fdd459 (tests/fixtures/fourpass_reference.json) with the same batches, from the same
    initial weights: those the seed gave before EUSR's convolutions got one initialiser object
    each (tests/fixtures/fourpass_initial_weights.npz; the seed now gives other ones)."""
    reference = json.loads(REFERENCE.read_text())[name]
    trainer = make_trainer(config, seed=3)
    initial = np.load(INITIAL_WEIGHTS)
    for net in ("generator", "discriminator"):
        weights = getattr(trainer, net).weights
        assert len(weights) == len([k for k in initial if k.startswith(f"{net}/")])
        for i, weight in enumerate(weights):
            weight.assign(initial[f"{net}/{i:03d}"])
    iterator = iter(DATASET(0))
    for step, expected in enumerate(reference["logs"]):
        for tracker in trainer.metrics:
            tracker.reset_state()
        logs = {k: float(v) for k, v in trainer.train_step(next(iterator)).items()}
        assert set(logs) == set(expected)
        for key, value in expected.items():
            assert logs[key] == pytest.approx(value, rel=2e-4, abs=1e-5), (step, key)
    for net in ("generator", "discriminator"):
        checksum = float(sum(np.sum(np.abs(np.asarray(v, np.float64))) for v in getattr(trainer, net).weights))
        assert checksum == pytest.approx(reference["checksums"][net], rel=1e-5), net


def test_discriminator_update_changes_only_d_and_generator_update_only_g():
    trainer = make_trainer()
    lr, hr = first_batch()
    models = trainer_models(trainer)
    before = snapshot(models)
    with tf.GradientTape(persistent=True) as tape:
        sr = trainer.producer(trainer.generator, lr)
    assert sr.shape == (6, HR_SIZE, HR_SIZE, 3)  # 3 paths x 2 patches
    values = trainer._discriminator_updates(hr, sr)
    assert set(values) == {"d_loss", "d_real", "d_fake"}
    assert changed(before, models) == {"discriminator"}
    before = snapshot(models)
    terms = trainer._generator_update(tape, lr, hr, sr)
    assert set(terms) == {"loss", "l_r", "l_g", "l_as", "l_ar", "l_ss", "l_sr"}
    assert changed(before, models) == {"generator"}
    moved = [not np.array_equal(a, b) for a, b in zip(before["generator"], snapshot(models)["generator"])]
    assert all(moved)  # all three paths and the shared part get gradients


@pytest.mark.parametrize("preset", ["4pp_eusr", "4pp_eusr_without_lr", "4pp_eusr_without_lg",
                                    "4pp_eusr_without_aesthetic", "4pp_eusr_without_subjective"])
def test_logged_terms_and_total_follow_the_ablation(preset):
    config = FOURPP_PRESETS[preset].replace(patch_size=LR_SIZE)
    trainer = make_trainer(config)
    assert set(trainer.resources._items) == set(config.predictors)
    logs = {name: float(value) for name, value in trainer.test_step(first_batch()).items()}
    names = {spec.name for spec in config.active_terms}
    assert set(logs) == {"loss", "d_loss", "d_real", "d_fake"} | names
    weighted = sum(spec.weight * logs[spec.name] for spec in config.active_terms)
    assert logs["loss"] == pytest.approx(weighted, rel=1e-5)


def test_a_needed_predictor_must_be_given():
    with pytest.raises(KeyError, match="aesthetic"):
        GANTrainer(tiny_eusr(), build_fourpp_discriminator(HR_SIZE, base_channels=4, dense_units=16), MultiPass(),
                   get_objective("sigmoid_ce"), CONFIG.terms, resources={"subjective": stand_in_predictor("s", 1)})


def test_simultaneous_and_d_first_share_the_d_update_but_not_the_g_update():
    """Both orders update D identically (same pre-update D on the same images); only d_first
    computes l_g with the updated D, so the generator updates differ."""
    results = {}
    for order in ("d_first", "simultaneous", "g_first"):
        trainer = make_trainer(CONFIG.replace(order=order))
        trainer.train_step(first_batch())
        results[order] = snapshot({"g": trainer.generator, "d": trainer.discriminator})
    for a, b in zip(results["d_first"]["d"], results["simultaneous"]["d"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(results["d_first"]["g"], results["simultaneous"]["g"]))
    # g_first: G against the pre-update D = the simultaneous generator update.
    for a, b in zip(results["g_first"]["g"], results["simultaneous"]["g"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_discriminator_warmup_trains_only_d_then_both():
    trainer = make_trainer(CONFIG.replace(d_warmup=2).without("l_as", "l_ar", "l_ss", "l_sr"))
    models = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    before = snapshot(models)
    trainer.fit(DATASET(0), steps_per_epoch=2, epochs=1, verbose=0)
    assert changed(before, models) == {"discriminator"}
    assert int(trainer.optimizer.iterations) == 0 and int(trainer.d_optimizer.iterations) == 2
    trainer.fit(DATASET(2), steps_per_epoch=1, epochs=1, verbose=0)
    assert int(trainer.optimizer.iterations) == 1 and int(trainer.d_optimizer.iterations) == 3


def test_d_steps_and_generator_ema():
    trainer = make_trainer(CONFIG.replace(d_steps=2, ema_decay=0.9).without("l_as", "l_ar", "l_ss", "l_sr"))
    start = [np.array(w) for w in trainer.generator.weights]
    trainer.train_step(first_batch())
    assert int(trainer.d_optimizer.iterations) == 2 and int(trainer.optimizer.iterations) == 1
    assert trainer.inference_generator is trainer.generator_ema
    for ema, before, after in zip(trainer.generator_ema.weights, start, trainer.generator.weights):
        np.testing.assert_allclose(np.array(ema), 0.9 * before + 0.1 * np.array(after), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def single_device_run():
    """Three compiled (graph) steps on one device, float32."""
    trainer = make_trainer()
    models = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    before = snapshot(models)
    history = trainer.fit(DATASET(0), steps_per_epoch=3, epochs=1, verbose=0)
    return before, snapshot(models), history.history, trainer


def test_short_run_changes_g_and_d_only():
    trainer = make_trainer()
    history = assert_short_run_changes_only_g_and_d(trainer, DATASET(0))
    assert set(history) == {"loss", "l_r", "l_g", "l_as", "l_ar", "l_ss", "l_sr", "d_loss", "d_real", "d_fake"}
    strips = render_samples(trainer, *(np.asarray(t) for t in first_batch()))
    assert strips["lr_x4_x2x2_x8down_hr"].shape == (2, HR_SIZE, 5 * HR_SIZE, 3)


@pytest.mark.slow
def test_mirrored_strategy_gives_the_single_device_result(single_device_run, two_cpu_strategy):
    """Per-replica losses divided by the replica count, gradients summed: same updates."""
    _, expected, history, _ = single_device_run
    with two_cpu_strategy.scope():
        trainer = make_trainer()
    mirrored = trainer.fit(DATASET(0), steps_per_epoch=3, epochs=1, verbose=0).history
    got = snapshot({"generator": trainer.generator, "discriminator": trainer.discriminator})
    for name in ("generator", "discriminator"):
        for a, b in zip(expected[name], got[name]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for name in history:
        assert mirrored[name][-1] == pytest.approx(history[name][-1], rel=1e-4)


@pytest.mark.slow
def test_mixed_precision_each_optimizer_scales_its_loss():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    trainer = make_trainer()
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.optimizer is not trainer.d_optimizer
    assert trainer.discriminator.get_layer("conv1").compute_dtype == "float16"
    assert_short_run_changes_only_g_and_d(trainer, DATASET(0))
    assert int(trainer.optimizer.inner_optimizer.iterations) == int(trainer.d_optimizer.inner_optimizer.iterations) == 2


def test_resume_continues_exactly(tmp_path):
    def run(run_dir, total_steps, resume, seed):
        trainer = make_trainer(seed=seed, run_eagerly=True)
        options = RunOptions(run_dir, total_steps, checkpoint_every=1, resume=resume, tensorboard=False)
        fit_run(trainer, DATASET, options, config=CONFIG, checkpoint_objects=trainer.checkpoint_objects(), verbose=0)
        return trainer

    uninterrupted = run(tmp_path / "a", 2, False, seed=0)
    run(tmp_path / "b", 1, False, seed=0)
    resumed = run(tmp_path / "b", 2, True, seed=123)  # other initial weights: all must come from the checkpoint
    nets = ("generator", "discriminator")
    a, b = (snapshot({n: getattr(t, n) for n in nets}) for t in (uninterrupted, resumed))
    for name in nets:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y)
    for optimizer in ("optimizer", "d_optimizer"):
        for x, y in zip(getattr(uninterrupted, optimizer).variables, getattr(resumed, optimizer).variables):
            np.testing.assert_array_equal(x, y)


def test_single_path_producer_trains_only_that_eusr_path():
    keras.utils.set_random_seed(0)
    generator = tiny_eusr()
    trainer = GANTrainer(generator, None, SinglePath(2), None, [("l1", 1.0)])
    trainer.compile(keras.optimizers.Adam(1e-3))
    x8 = [np.array(v) for v in generator.path_variables(8) if all(v is not w for w in generator.path_variables(2))]
    history = assert_short_run_changes_only_g_and_d(trainer, make_dataset(8, 16)(0))
    assert set(history) == {"loss", "l1"}
    after = [np.array(v) for v in generator.path_variables(8) if all(v is not w for w in generator.path_variables(2))]
    assert x8 and all(np.array_equal(a, b) for a, b in zip(x8, after))


def test_build_gan_trainer_from_a_preset_seeds_the_initial_weights():
    config = FOURPP_EUSR.replace(generator={"type": "eusr", **{"channels": 8, "shared_blocks": 1, "upscale_blocks": 0}},
                                 discriminator={"type": "4pp_eusr", "head": "flatten", "base_channels": 4,
                                                "dense_units": 8}, patch_size=LR_SIZE, seed=5)
    resources = {"aesthetic": stand_in_predictor("a", 1), "subjective": stand_in_predictor("s", 2)}
    first, second = (build_gan_trainer(config, resources=resources) for _ in range(2))
    for a, b in zip(first.generator.weights + first.discriminator.weights,
                    second.generator.weights + second.discriminator.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    other = build_gan_trainer(config.replace(seed=6), resources=resources)
    assert any(not np.array_equal(np.array(a), np.array(b)) for a, b in zip(first.generator.weights,
                                                                               other.generator.weights))
