"""Shared test helpers: tiny networks, a stand-in NIMA predictor, deterministic batches, and
"a short run changes D and G and nothing else", reused by every trainer test."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eusr_perceptual.configs.demo import demo_version
from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.models.registry import build_network
from nima.model import MeanScore

#: The repository and the committed test fixtures (files in the real formats, with the scripts
#: that made them).
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

TINY_EUSR = EUSRConfig(channels=8, shared_blocks=1, upscale_blocks=0, scale_aware_blocks=1)

#: Network options even smaller than the demo's: 1-2 blocks of 4-8 channels.
TEST_NETWORKS = {
    "eusr": {"channels": 8, "shared_blocks": 1, "upscale_blocks": 0, "scale_aware_blocks": 1},
    "srresnet": {"num_feat": 8, "num_block": 1}, "msrresnet": {"num_feat": 8, "num_block": 1},
    "afm_srresnet": {"num_feat": 8, "num_block": 1}, "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow": 4},
    "4pp_eusr": {"base_channels": 4, "dense_units": 8}, "srgan": {"base_channels": 4, "dense_units": 8},
    "vgg_style": {"base_channels": 4, "dense_units": 8}, "afm": {"base_channels": 4, "dense_units": 8},
}


def tiny_network(name: str, role: str, **context) -> keras.Model:
    """A registered generator or discriminator at :data:`TEST_NETWORKS` size (``context``: the
    run's ``scale`` or ``input_size``), weights drawn from the global seed."""
    return build_network({"type": name, **TEST_NETWORKS[name]}, role, **context)


def tiny_preset(config: GANConfig) -> GANConfig:
    """A preset at test size: its demo version with :data:`TEST_NETWORKS`, batch 2, 8-32 px LR."""
    def shrink(spec):
        return None if spec is None else {**spec, **TEST_NETWORKS[spec["type"]]}

    patch = 8 if config.scale == 4 else 16 if config.scale == 2 else 32
    return demo_version(config).replace(generator=shrink(config.generator), discriminator=shrink(config.discriminator),
                                        patch_size=patch, batch_size=2)


#: The smallest EUSR with only the x4 path: what the export, upscale and evaluate tools' tests run
#: and save (one per session: the ``tiny_x4_eusr`` fixture of ``conftest.py``).
TINY_X4_EUSR = EUSRConfig(channels=4, shared_blocks=1, scales=(4,))


def tiny_eusr() -> EUSR:
    generator = EUSR(TINY_EUSR)
    generator.build()
    return generator


def built_eusr(config: EUSRConfig, seed: int) -> EUSR:
    """An EUSR of ``config``, built, its weights drawn after ``keras.utils.set_random_seed(seed)``."""
    keras.utils.set_random_seed(seed)
    generator = EUSR(config)
    generator.build()
    return generator


def stand_in_predictor(name: str, seed: int) -> keras.Model:
    """A predictor with NIMA's call contract (dict with ``mean_score`` and ``features``) and a
    BatchNormalization layer, so that a predictor that updated its statistics would be caught."""
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


#: tf.data options without autotuning, for the tests' synthetic datasets. Autotuning's background
#: thread leaves a core idle whenever two processes share the two cores (the two xdist workers):
#: 16 preset tests, two copies at once, 49-53 s with 20-28 core-seconds idle -> 38-39 s, none idle;
#: the whole suite 508 -> 477 s. The datasets' elements are the same either way.
WITHOUT_AUTOTUNE = tf.data.Options()
WITHOUT_AUTOTUNE.autotune.enabled = False


def make_dataset(lr_size: int, hr_size: int, batch: int = 2):
    """``make_dataset(start_step)``: the batch of step s depends on s only."""

    def for_start(start_step: int) -> tf.data.Dataset:
        def make(step):
            seed = tf.stack([step, tf.constant(7, tf.int64)])
            lr = tf.random.stateless_uniform((batch, lr_size, lr_size, 3), seed, 0.0, 255.0)
            hr = tf.random.stateless_uniform((batch, hr_size, hr_size, 3), seed + 1, 0.0, 255.0)
            return lr, hr

        return tf.data.Dataset.counter(start_step).map(make).with_options(WITHOUT_AUTOTUNE)

    return for_start


def snapshot(models: dict) -> dict[str, list[np.ndarray]]:
    """Every weight (trainable or not, e.g. BatchNormalization statistics) per named model."""
    return {name: [np.array(v) for v in model.weights] for name, model in models.items() if model is not None}


def changed(before: dict, models: dict) -> set[str]:
    """Names of the models any of whose weights differ from ``before``."""
    after = snapshot(models)
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def trainer_models(trainer, skip=()) -> dict:
    """The networks of a GANTrainer and every shared frozen network it uses (but ``skip``)."""
    models = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    models.update({name: model for name, model in trainer.resources.items()
                   if hasattr(model, "weights") and name not in skip})
    return models


def assert_short_run_changes_only_g_and_d(trainer, dataset, steps: int = 2, skip=()) -> dict:
    """Runs ``steps`` steps; asserts finite logs, that G and D (when present) changed and
    nothing else did (frozen predictors and loss networks, BN statistics included; networks
    named in ``skip`` are checked by the caller)."""
    models = trainer_models(trainer, skip)
    before = snapshot(models)
    history = trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values()), history
    expected = {"generator"} | ({"discriminator"} if trainer.discriminator is not None else set())
    assert changed(before, models) == expected
    return history
