"""Inference without waste: one trace per model and route, batched tiles equal to one tile per
call, the XLA fallback, and mixed precision keeping float32 where precision matters."""

import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual import inference
from eusr_perceptual.evaluation.benchmarks import discover_benchmark
from eusr_perceptual.evaluation.runner import Method, evaluate_dataset
from eusr_perceptual.inference import make_tile_function, run_route, tiles_per_call, upscale_image
from eusr_perceptual.losses.registry import Resources, build_terms
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.training.context import StepContext
from eusr_perceptual.training.producers import MultiPass

ROUTES = ("x4", "x2x2", "x8down")


def tiny_eusr(seed: int) -> EUSR:
    keras.utils.set_random_seed(seed)
    model = EUSR(EUSRConfig(channels=4, shared_blocks=1, scales=(2, 4, 8)))
    model.build()
    return model


@pytest.fixture(scope="module")
def shared_model():
    """One model for the tests that do not count traces (its tile functions are traced once)."""
    return tiny_eusr(3)


@pytest.fixture
def tensorflow_warnings(caplog):
    """Records of TensorFlow's logger (where the retracing warning goes) and Python warnings."""
    logger = logging.getLogger("tensorflow")
    logger.addHandler(caplog.handler)
    with warnings.catch_warnings(record=True) as python_warnings:
        warnings.simplefilter("always")
        yield lambda: [r.getMessage() for r in caplog.records] + [str(w.message) for w in python_warnings]
    logger.removeHandler(caplog.handler)


def retracing(messages):
    return [m for m in messages if "retracing" in m]


def test_the_warning_detector_sees_retracing(tensorflow_warnings):
    # The pattern inference used before: one tf.function per model and route from one closure.
    def make(k):
        return tf.function(lambda x: x * k)

    for k in range(6):
        make(k)(tf.ones((k + 1,)))
    assert retracing(tensorflow_warnings())


def test_two_models_three_routes_several_sizes_trace_once_each(tmp_path, monkeypatch, tensorflow_warnings):
    traced = []
    monkeypatch.setattr(inference, "run_route", lambda model, x, route: traced.append((model.name, route))
                        or run_route(model, x, route))
    models = [tiny_eusr(1), tiny_eusr(2)]
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 40), (36, 60), (64, 52)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    methods = [Method(f"{model.name} {route}", route, model, tile=6, overlap=2) for model in models for route in ROUTES]
    for _ in range(2):  # a second evaluation run reuses the same functions
        result = evaluate_dataset(discover_benchmark(tmp_path, 4), methods, progress=False)
    assert len(result.scores) == 18
    assert sorted(traced) == sorted((model.name, route) for model in models for route in ROUTES)
    assert all(make_tile_function(m, r).traces == 1 for m in models for r in ROUTES)
    assert not retracing(tensorflow_warnings())


@pytest.mark.parametrize("route", ROUTES)
def test_batched_tiles_equal_one_tile_per_call(shared_model, route):
    model = shared_model
    lr = np.random.default_rng(4).integers(0, 256, (29, 35, 3), dtype=np.uint8)
    one = upscale_image(model, lr, route, tile=8, overlap=3, max_tiles_per_call=1)
    batched = upscale_image(model, lr, route, tile=8, overlap=3)
    np.testing.assert_array_equal(batched, one)
    # The float outputs of a batch are those of its tiles alone.
    tiles = tf.random.uniform((5, 11, 14, 3), 0, 255, seed=5)
    alone = np.concatenate([run_route(model, tiles[i : i + 1], route).numpy() for i in range(5)])
    np.testing.assert_allclose(run_route(model, tiles, route).numpy(), alone, atol=1e-5)


def test_tiles_per_call_follows_the_memory_budget():
    # 192 x 192 LR at x4: 768^2 output pixels x 1024 bytes = 576 MiB a tile.
    assert tiles_per_call(192, 192, 4, 2048) == 3
    assert tiles_per_call(192, 192, 4, 1152) == 2
    assert tiles_per_call(192, 192, 4, 100) == 1
    assert tiles_per_call(12, 12, 8, 100) == 11  # x8down peaks at x8: 96^2 x 1024 bytes = 9 MiB


def test_xla_tile_functions_compile_or_fall_back_with_one_log_line(shared_model, caplog):
    model = shared_model
    lr = np.random.default_rng(7).integers(0, 256, (13, 11, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="eusr_perceptual.inference"):
        for route in ROUTES:
            xla = make_tile_function(model, route, jit_compile=True)
            plain = make_tile_function(model, route, jit_compile=False)
            a = upscale_image(model, lr, route, tile=None, tile_function=xla)
            b = upscale_image(model, lr, route, tile=None, tile_function=plain)
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # x8down's MATLAB halving of a tile of unknown size builds its matrix with
    # tf.numpy_function, which XLA cannot compile: that function, and only it, falls back.
    assert [make_tile_function(model, r, jit_compile=True).jit_compile for r in ROUTES] == [True, True, False]
    assert len(caplog.records) == 1 and "x8down" in caplog.records[0].getMessage()
    assert "PyFunc" in caplog.records[0].getMessage()


def test_mixed_precision_keeps_float32_where_precision_matters():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = tiny_eusr(8)
    seen = []
    forward = model._forward
    model._forward = lambda inputs, scale: seen.append((scale, inputs.dtype)) or forward(inputs, scale)
    lr = tf.random.uniform((2, 6, 6, 3), 0, 255, seed=9)
    # Inference: the x2-x2 route's second pass takes the first pass's float32 output.
    make_tile_function(model, "x2x2")(lr)
    assert seen == [(2, tf.float32), (2, tf.float32)]
    assert model.first_conv.compute_dtype == "float16"
    assert all(model.output_convs[f"x{s}"].compute_dtype == "float32" for s in model.scales)
    # Training: the multi-pass images and the loss on them are float32.
    sr = MultiPass()(model, lr)
    assert sr.dtype == tf.float32 and seen[2:] == [(s, tf.float32) for s in (4, 2, 2, 8)]
    (l1,) = build_terms([("l1", 1.0)], Resources())
    loss = l1(StepContext(lr, tf.image.resize(lr, (24, 24)), sr, None, repeats=3))
    assert loss.dtype == tf.float32
