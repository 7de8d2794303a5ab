"""NIMA model, losses and training phases (4PP-EUSR sections 3.4 and 4.2).

MobileNetV2 is built with ``weights=None`` (no download) and trained on 32x32 crops so that
the tests run on two CPU cores; the network accepts any size and the presets use 192.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.data.images import SkipReport
from nima.config import AVA_PAPER, TID2013_PAPER
from nima.datasets.common import ScoreDataset, ScoredImages
from nima.evaluation import evaluate_predictor, format_table, lcc, score_metrics, srocc
from nima.losses import emd, mean_score, squared_emd, threshold_accuracy
from nima.model import FEATURE_SIZE, PretrainedWeightsUnavailable, backbone_of, build_nima
from nima.preprocessing import ImageDecoder
from nima.train import build_models, prepare_phase, train_nima, validation_batch_size

MOBILENET_V2_BASE_PARAMETERS = 2_257_984
HEAD_PARAMETERS = 1280 * 10 + 10
BATCH_NORM_STATISTICS = 34_112  # moving means and variances: never trained by gradients

TINY = TID2013_PAPER.replace(weights="none", crop_size=32, phase1_batch_size=4, phase2_batch_size=4, run_eagerly=True)


def batch(size=4, seed=0, side=32):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (size, side, side, 3)).astype("float32")
    return images, rng.dirichlet(np.ones(10), size).astype("float32")


def snapshot(model):
    return {variable.path: variable.numpy().copy() for variable in model.weights}


def changed(before, model):
    return {variable.path for variable in model.weights if not np.array_equal(before[variable.path], variable.numpy())}


# ---------------------------------------------------------------------------------------------
# Losses and metrics


def test_emd_against_hand_computed_values():
    p = np.zeros((1, 10), "float32")
    q = np.zeros((1, 10), "float32")
    p[0, [0, 1]] = 0.5  # CDF 0.5, 1, 1, ...
    q[0, [1, 2]] = 0.5  # CDF 0, 0.5, 1, ...
    # CDF differences 0.5, 0.5, 0, ..., 0 -> eq. 1: 0.25 + 0.25; NIMA r=2: sqrt(0.5 / 10).
    np.testing.assert_allclose(squared_emd(p, q), [0.5], rtol=1e-6)
    np.testing.assert_allclose(emd(p, q), [math.sqrt(0.05)], rtol=1e-6)
    np.testing.assert_allclose(squared_emd(p, p), [0.0], atol=1e-7)
    np.testing.assert_allclose(mean_score(p), [1.5]) and np.testing.assert_allclose(mean_score(q), [2.5])
    high = np.zeros((1, 10), "float32")
    high[0, 7] = 1.0  # mean 8
    np.testing.assert_allclose(threshold_accuracy(np.concatenate([p, high]), np.concatenate([q, high])), [1.0, 1.0])
    np.testing.assert_allclose(threshold_accuracy(p, high), [0.0])


def test_srocc_lcc_and_the_metrics_table():
    assert srocc([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert srocc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties get average ranks
    assert lcc([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert math.isnan(srocc([1, 1, 1], [1, 2, 3])) and math.isnan(lcc([1], [2]))
    truth = np.eye(10, dtype="float32")[[2, 5, 8]]
    metrics = score_metrics(truth, truth)
    assert (metrics.images, metrics.squared_emd, metrics.srocc, metrics.accuracy) == (3, 0.0, 1.0, 1.0)
    table = format_table("NIMA tid2013", metrics, {"srocc": 0.780})
    assert "SROCC of mean scores" in table and "0.780" in table and table.startswith("NIMA tid2013")


def test_evaluation_under_two_replicas_matches_each_image(tmp_path, two_cpu_strategy):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    paths = []
    for k, image in enumerate(pixels):
        paths.append(str(tmp_path / f"{k}.png"))
        Image.fromarray(image).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths.insert(3, str(tmp_path / "broken.png"))
    truths = rng.dirichlet(np.ones(10), 8).astype("float32")
    images = ScoredImages(tuple(paths), truths)
    with two_cpu_strategy.scope():  # a small image -> distribution model stands in for NIMA
        model = keras.Sequential([
            keras.Input((None, None, 3)), keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(0, 5, seed=0)),
        ])
        model.compile()
    report = SkipReport()
    metrics = evaluate_predictor(model, images, crop_size=32, batch_size=3, decoder=ImageDecoder(report))
    expected = score_metrics(np.delete(truths, 3, axis=0), model(pixels.astype("float32")))
    assert metrics.images == 7 and report.count == 1 and not math.isnan(metrics.srocc)
    for name in ("squared_emd", "emd", "srocc", "lcc", "accuracy"):
        assert getattr(metrics, name) == pytest.approx(getattr(expected, name), rel=1e-5), name


# ---------------------------------------------------------------------------------------------
# Model


def test_model_outputs_and_parameter_counts():
    model = build_nima(weights=None, input_shape=(None, None, 3), seed=0)
    assert backbone_of(model).count_params() == MOBILENET_V2_BASE_PARAMETERS
    assert model.count_params() == MOBILENET_V2_BASE_PARAMETERS + HEAD_PARAMETERS
    assert model.get_layer("dropout").rate == 0.75
    images, _ = batch(2, side=40)
    outputs = model(images[:, :, :37])  # any size
    assert set(outputs) == {"distribution", "mean_score", "features"}
    assert outputs["distribution"].shape == (2, 10) and outputs["features"].shape == (2, FEATURE_SIZE)
    np.testing.assert_allclose(tf.reduce_sum(outputs["distribution"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(outputs["mean_score"], outputs["distribution"].numpy() @ np.arange(1, 11), rtol=1e-5)
    scaled = model.get_layer("preprocess")(tf.constant([0.0, 127.5, 255.0]))
    np.testing.assert_allclose(scaled, [-1.0, 0.0, 1.0], atol=1e-6)


def test_imagenet_weights_offline_raise_a_clear_error_and_a_weights_file_loads(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", offline)
    with pytest.raises(PretrainedWeightsUnavailable) as error:
        build_nima(weights="imagenet")
    message = str(error.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_192_no_top.h5" in message
    assert "--weights none" in message and "--weights /path/to/" in message
    with pytest.raises(FileNotFoundError):
        build_nima(weights=str(tmp_path / "absent.h5"))

    source = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None, pooling="avg")
    source.save_weights(tmp_path / "mobilenet_v2.weights.h5")
    model = build_nima(weights=str(tmp_path / "mobilenet_v2.weights.h5"))
    for expected, loaded in zip(source.weights, backbone_of(model).weights):
        np.testing.assert_array_equal(expected.numpy(), loaded.numpy())


def test_presets_hold_the_paper_numbers():
    assert (AVA_PAPER.crop_size, AVA_PAPER.dropout, AVA_PAPER.weights, AVA_PAPER.loss) == (192, 0.75, "imagenet", "squared_emd")
    for preset, epochs in ((AVA_PAPER, 5), (TID2013_PAPER, 100)):
        one, two = preset.phases()
        assert (one.epochs, one.batch_size, one.learning_rate, one.trains_base) == (epochs, 128, 1e-3, False)
        assert (two.epochs, two.batch_size, two.learning_rate, two.trains_base) == (epochs, 32, 1e-5, True)
        assert (preset.adam_beta_1, preset.adam_beta_2, preset.adam_epsilon) == (0.9, 0.999, 1e-7)
    assert TID2013_PAPER.validation_references == 3 and AVA_PAPER.validation_size == 5000
    # 2,640 TID2013 training images at batch 128: 21 steps per epoch, 2,100 steps in phase 1.
    assert TID2013_PAPER.phases()[0].steps(2640) == (2100, 21)
    assert TID2013_PAPER.replace(epochs_scale=0.001).phases()[0].steps(2640) == (2, 2)


def test_phase_one_trains_only_the_head_and_lowers_the_loss_phase_two_trains_everything():
    config = TINY.replace(phase1_learning_rate=0.1)
    model, trainer = build_models(config)
    one, two = config.phases()
    x, y = batch(8, seed=1)
    target = np.tile(y[:1], (8, 1))  # one target distribution: learnable by the head alone

    assert prepare_phase(model, trainer, config, one) == (HEAD_PARAMETERS, MOBILENET_V2_BASE_PARAMETERS)
    before = snapshot(model)
    start = trainer.evaluate(x, target, batch_size=8, verbose=0, return_dict=True)["loss"]
    history = trainer.fit(x, target, batch_size=8, epochs=5, verbose=0)
    end = trainer.evaluate(x, target, batch_size=8, verbose=0, return_dict=True)["loss"]
    assert end < 0.5 * start, (start, end, history.history["loss"])
    assert changed(before, model) == {"distribution/kernel", "distribution/bias"}

    trainable, frozen = prepare_phase(model, trainer, config, two)
    assert (trainable, frozen) == (MOBILENET_V2_BASE_PARAMETERS - BATCH_NORM_STATISTICS + HEAD_PARAMETERS, BATCH_NORM_STATISTICS)
    before = snapshot(model)
    trainer.fit(x[:4], target[:4], batch_size=4, epochs=1, verbose=0)
    moved = changed(before, model)
    assert {v.path for v in model.trainable_weights} <= moved
    assert any(path.endswith("moving_mean") for path in moved)  # batch statistics in phase 2


def test_mixed_precision_under_two_cpu_strategy(two_cpu_strategy):
    config = TINY.replace(mixed_precision=True)
    model, trainer = build_models(config, two_cpu_strategy)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert backbone_of(model).dtype_policy.name == "mixed_float16"
    outputs = model(batch(2)[0])
    assert {name: tensor.dtype for name, tensor in outputs.items()} == dict.fromkeys(outputs, tf.float32)
    prepare_phase(model, trainer, config, config.phases()[0])
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = batch(4)
    before = snapshot(model)
    history = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # Only the head trains. (A randomly initialised MobileNetV2 in inference mode outputs
    # features near 1e-13, which float16 rounds to 0, so here only the bias gets a gradient.)
    assert "distribution/bias" in changed(before, model) <= {"distribution/kernel", "distribution/bias"}


def test_batches_split_evenly_over_replicas(two_cpu_strategy, tmp_path):
    assert validation_batch_size(32, 360, 2) == 32
    assert validation_batch_size(32, 7, 2) == 6  # the first validation batch splits 3 + 3
    assert validation_batch_size(4, 1, 2) == 2
    nothing = ScoredImages((), np.zeros((0, 10), "float32"))
    with pytest.raises(ValueError, match="phase1 batch size 3 must be a multiple of the 2 replicas"):
        train_nima(TINY.replace(phase1_batch_size=3), ScoreDataset("tid2013", nothing, nothing), tmp_path,
                   strategy=two_cpu_strategy)
