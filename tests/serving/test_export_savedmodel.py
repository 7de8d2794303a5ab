"""SavedModel exports (generator and NIMA): signatures, TensorFlow-only serving with TF
Serving's REST JSON, warm-up requests, and numbers against the Keras models."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.serving.graph_resize import halve_matlab_graph
from eusr_perceptual.serving.savedmodel import export_savedmodel
from eusr_perceptual.inference import run_route
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.loading import SavedModelGenerator, load_generator
from eusr_perceptual.resize import imresize_tf, round_to_uint8_tf
from eusr_perceptual.serving import rest
from eusr_perceptual.serving.limits import DECODE_BYTES, read_limits
from eusr_perceptual.serving.warmup import WARMUP_FILE, read_warmup_requests
from nima.export import export_predictor
from nima.model import build_nima

REPO = Path(__file__).resolve().parents[2]
ROUTES = {"x2": 2, "x4": 4, "x8": 8, "x2x2": 4, "x8down": 4}
TENSOR_SIGNATURES = {f"{'upscale' if r[1:].isdigit() else 'path'}_{r}{kind}" for r in ROUTES for kind in ("", "_float")}
PNG_SIGNATURES = {f"{'upscale' if r[1:].isdigit() else 'path'}_{r}{kind}" for r in ROUTES for kind in ("_png", "_png_tiled")}
SIGNATURES = TENSOR_SIGNATURES | PNG_SIGNATURES | {"serving_default"}
NIMA_SIGNATURES = {"serve", "serving_default", "score_png"}

# Runs in a fresh interpreter where Keras and this project cannot be imported, as TF Serving
# would: the `saved_model_cli show --all` command (in-process, to start TensorFlow once) on
# every export; tf.saved_model.load; the warm-up requests of each export (parsed with
# tensorflow-serving-api's protos); every tensor signature of the generator on a batch of
# images; TF Serving's REST :predict JSON bodies through eusr_perceptual/serving/rest.py
# (TensorFlow only, run from its file, not imported as part of the project).
SERVE_WITHOUT_KERAS = """
import contextlib, io, json, runpy, sys
sys.modules["keras"] = None
sys.modules["eusr_perceptual"] = None
sys.modules["nima"] = None
import numpy as np, tensorflow as tf
from tensorflow.python.tools import saved_model_cli
from tensorflow_serving.apis import prediction_log_pb2

job = json.load(open(sys.argv[1]))
listings, loaded, warmup = {}, {}, {}
for name, path in job["exports"].items():
    listing = io.StringIO()
    sys.argv = ["saved_model_cli", "show", "--all", "--dir", path]
    with contextlib.redirect_stdout(listing), contextlib.suppress(SystemExit):
        saved_model_cli.main()
    listings[name] = listing.getvalue()
    loaded[name] = tf.saved_model.load(path)
    warmup[name] = []
    for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests").as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        outputs = loaded[name].signatures[request.model_spec.signature_name](**inputs)
        shapes = {key: list(value.shape) for key, value in outputs.items()}
        if "upscaled_bytes" in outputs:
            shapes["png"] = list(tf.io.decode_png(outputs["upscaled_bytes"][0]).shape)
        warmup[name].append([request.model_spec.name, request.model_spec.signature_name, shapes])
images = np.load(job["images"])
out = {}
for name, signature in loaded["eusr"].signatures.items():
    if "_png" not in name:
        x = images if "float" not in name else images.astype(np.float32)
        out[name] = signature(images=tf.constant(x))["upscaled"].numpy()
np.savez(job["out"], **out)
predict = runpy.run_path(job["rest"])["predict"]
responses = []
for request in job["requests"]:
    try:
        responses.append(predict(loaded[request["export"]], request["body"]))
    except (ValueError, tf.errors.OpError) as error:
        responses.append({"error": type(error).__name__, "message": str(error)})
json.dump({"listings": listings, "warmup": warmup, "responses": responses}, open(job["answers"], "w"))
print(json.dumps({name: [str(v.dtype), list(v.shape)] for name, v in out.items()}))
"""


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(payload: bytes) -> dict:
    return {"b64": base64.b64encode(payload).decode("ascii")}


def _unpng(value: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(value["b64"]))))


def calibrated_nima(seed: int = 0) -> keras.Model:
    """A NIMA model with random weights whose scores depend on the image: batch-norm statistics
    taken from one batch (randomly initialised MobileNetV2 features otherwise vanish)."""
    keras.utils.set_random_seed(seed)
    model = build_nima(weights=None, input_shape=(None, None, 3))
    backbone = model.get_layer("mobilenetv2")
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    backbone(np.random.default_rng(seed).uniform(-1, 1, (4, 48, 48, 3)).astype(np.float32), training=True)
    kernel, bias = model.get_layer("distribution").get_weights()
    model.get_layer("distribution").set_weights([kernel * 0.05, bias])
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(2, 4, 8)))
    model.build()
    base = tmp_path_factory.mktemp("saved_models")
    return model, export_savedmodel(model, base, "eusr", tile=4, overlap=16)  # several tiles per test image


@pytest.fixture(scope="module")
def nima_exported(tmp_path_factory):
    model = calibrated_nima()
    return model, export_predictor(model, tmp_path_factory.mktemp("nima"), "nima_ava").saved_model


def _factor(signature: str) -> int:
    return 4 if signature == "serving_default" else ROUTES[signature.split("_")[1]]


def test_export_goes_to_name_and_version_and_refuses_what_it_cannot_do(exported, tmp_path, tiny_x4_eusr):
    model, path = exported
    assert path.parts[-2:] == ("eusr", "1") and (path / "saved_model.pb").is_file()
    with pytest.raises(FileExistsError):
        export_savedmodel(model, path.parents[1], "eusr", version=1)
    with pytest.raises(ValueError, match="no x2x2 route"):
        export_savedmodel(tiny_x4_eusr, tmp_path, "m", paths=["x2x2"])
    with pytest.raises(ValueError, match="no x3 route"):
        export_savedmodel(model, tmp_path, "m", paths=["x4", "x3"])


# Row format (one image per instance, different sizes), columnar format, tensors as JSON lists.
LR_IMAGES = [np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8) for shape in ((7, 9, 3), (6, 5, 3))]
NIMA_IMAGES = [np.random.default_rng(4).integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 36, 3), (33, 48, 3))]


def _requests() -> list[dict]:
    encoded = [_b64(_png(image)) for image in LR_IMAGES]
    return [
        {"export": "eusr", "body": {"signature_name": "upscale_x4_png", "instances": encoded}},
        {"export": "eusr", "body": {"signature_name": "path_x2x2_png_tiled", "inputs": {"images_bytes": encoded}}},
        {"export": "eusr", "body": {"signature_name": "upscale_x8_png_tiled", "instances": [{"images_bytes": encoded[1]}]}},
        {"export": "eusr", "body": {"instances": LR_IMAGES[1][None].tolist()}},  # serving_default, uint8
        {"export": "nima", "body": {"signature_name": "score_png", "instances": [_b64(_png(image)) for image in NIMA_IMAGES]}},
        {"export": "nima", "body": {"inputs": NIMA_IMAGES[0][None].astype(float).tolist()}},  # serve, columnar
        # bad requests: no inputs; base64 text without the {"b64": ...} wrapper; too small for NIMA
        {"export": "eusr", "body": {"signature_name": "upscale_x2_png"}},
        {"export": "eusr", "body": {"signature_name": "upscale_x2_png", "instances": [encoded[0]["b64"]]}},
        {"export": "nima", "body": {"signature_name": "score_png", "instances": [encoded[0]]}},
        # values TF Serving refuses (a bare conversion wraps 300 and -5 into uint8 and truncates 1.7), bad base64,
        # an unknown signature
        {"export": "eusr", "body": {"instances": [[[[300, 0, 0]]], [[[-5, 0, 0]]]]}},
        {"export": "eusr", "body": {"inputs": [[[[1, 2, 1.7]]]]}},
        {"export": "eusr", "body": {"signature_name": "upscale_x2_png", "instances": [{"b64": "not base64!"}]}},
        {"export": "eusr", "body": {"signature_name": "upscale_x3_png", "instances": [encoded[0]]}},
    ]


@pytest.fixture(scope="module")
def served(exported, nima_exported, tmp_path_factory):
    """What a TensorFlow-only process sees: CLI listings, output shapes, outputs, REST answers."""
    work = tmp_path_factory.mktemp("serve")
    images = np.random.default_rng(0).integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    np.save(work / "images.npy", images)
    (work / "serve.py").write_text(SERVE_WITHOUT_KERAS)
    job = {"exports": {"eusr": str(exported[1]), "nima": str(nima_exported[1])}, "images": str(work / "images.npy"),
           "out": str(work / "out.npz"), "answers": str(work / "answers.json"), "rest": rest.__file__, "requests": _requests()}
    (work / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(work / "serve.py"), str(work / "job.json")], capture_output=True, text=True, cwd=work, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    answers = json.loads((work / "answers.json").read_text())
    return images, answers, shapes, np.load(work / "out.npz")


def _signature_block(listing: str, name: str) -> str:
    return listing.split(f"signature_def['{name}']")[1].split("signature_def[")[0]


@pytest.mark.slow
def test_saved_model_cli_lists_every_signature_with_dynamic_batch_and_size(served):
    listings = served[1]["listings"]
    for name in SIGNATURES:
        block = _signature_block(listings["eusr"], name)
        if name in PNG_SIGNATURES:
            assert "inputs['images_bytes']" in block and "DT_STRING" in block and "outputs['upscaled_bytes']" in block
            assert block.count("shape: (-1)") == 2, name
        else:
            assert "inputs['images']" in block and "outputs['upscaled']" in block
            assert block.count("shape: (-1, -1, -1, 3)") == 2, name
    serving = _signature_block(listings["eusr"], "serving_default")
    assert "DT_UINT8" in serving and "DT_FLOAT" not in serving
    for name in NIMA_SIGNATURES:
        assert f"signature_def['{name}']" in listings["nima"]
    score_png = _signature_block(listings["nima"], "score_png")
    assert "inputs['images_bytes']" in score_png and "shape: (-1)" in score_png and "shape: (-1, 10)" in score_png


@pytest.mark.slow
def test_loads_with_tensorflow_alone_and_matches_keras(exported, served):
    model, _ = exported
    images, _, shapes, outputs = served
    assert set(shapes) == SIGNATURES - PNG_SIGNATURES
    lr = tf.constant(images, tf.float32)
    for route, factor in ROUTES.items():
        prefix = "upscale" if route[1:].isdigit() else "path"
        expected = run_route(model, lr, route).numpy()
        assert shapes[f"{prefix}_{route}"] == ["uint8", [2, 7 * factor, 9 * factor, 3]]
        np.testing.assert_allclose(outputs[f"{prefix}_{route}_float"], expected, atol=2e-2)
        rounded = round_to_uint8_tf(expected).numpy().astype(int)
        assert np.abs(outputs[f"{prefix}_{route}"].astype(int) - rounded).max() <= 1
    np.testing.assert_array_equal(outputs["serving_default"], outputs["upscale_x4"])


@pytest.mark.slow
def test_rest_json_requests_match_keras(exported, nima_exported, served):
    """Row and columnar bodies with b64 PNGs of two sizes, whole and tiled, and tensor JSON."""
    model, _ = exported
    nima, _ = nima_exported
    responses = served[1]["responses"][:6]

    def keras_sr(image, route):
        return round_to_uint8_tf(run_route(model, tf.constant(image[None], tf.float32), route))[0].numpy().astype(int)

    whole, tiled_columnar, tiled_named, tensor, scores, serve = responses
    assert set(whole) == {"predictions"} and set(tiled_columnar) == {"outputs"}
    for image, png, tiled_png in zip(LR_IMAGES, whole["predictions"], tiled_columnar["outputs"]):
        assert np.abs(_unpng(png).astype(int) - keras_sr(image, "x4")).max() <= 1
        assert np.abs(_unpng(tiled_png).astype(int) - keras_sr(image, "x2x2")).max() <= 1
    assert np.abs(_unpng(tiled_named["predictions"][0]).astype(int) - keras_sr(LR_IMAGES[1], "x8")).max() <= 1
    assert np.abs(np.array(tensor["predictions"][0]) - keras_sr(LR_IMAGES[1], "x4")).max() <= 1
    for image, prediction in zip(NIMA_IMAGES, scores["predictions"]):
        expected = nima(image[None].astype(np.float32))
        assert set(prediction) == {"mean_score", "distribution"}
        np.testing.assert_allclose(prediction["mean_score"], expected["mean_score"][0], atol=1e-3)
        np.testing.assert_allclose(prediction["distribution"], expected["distribution"][0], atol=1e-4)
    assert abs(scores["predictions"][0]["mean_score"] - scores["predictions"][1]["mean_score"]) > 1e-2
    expected = nima(NIMA_IMAGES[0][None].astype(np.float32))
    assert set(serve["outputs"]) == {"mean_score", "distribution", "features"}
    np.testing.assert_allclose(serve["outputs"]["mean_score"], expected["mean_score"], atol=1e-3)


@pytest.mark.slow
def test_bad_requests_fail_clearly(served):
    no_inputs, unwrapped, too_small, out_of_range, fractional, bad_b64, unknown = served[1]["responses"][6:]
    assert tf.constant(np.array([300, -5]), tf.uint8).numpy().tolist() == [44, 251]  # what a bare conversion sends
    assert out_of_range == {"error": "ValueError", "message": 'input "images" of uint8 takes integers in [0, 255], got 300'}
    assert fractional == {"error": "ValueError", "message": 'input "images" of uint8 takes JSON integers, got 1.7'}
    assert bad_b64 == {"error": "ValueError", "message": "a \"b64\" value is not base64: 'not base64!'"}
    assert unknown["error"] == "ValueError" and unknown["message"].startswith("the model has no signature 'upscale_x3_png'; it has path_x2x2")
    assert no_inputs == {"error": "ValueError", "message": no_inputs["message"]} and "exactly one of" in no_inputs["message"]
    assert unwrapped["error"] == "InvalidArgumentError"
    assert re.search(r"images_bytes\[0\] is not an encoded image \(\d+ bytes; expected the bytes of a PNG", unwrapped["message"])
    assert too_small["error"] == "InvalidArgumentError" and "at least 32x32" in too_small["message"]


def test_rest_script_answers_errors_as_tf_serving_does(exported, tmp_path, capsys):
    """``python rest.py`` prints ``{"error": ...}`` and exits with 1 instead of a traceback."""
    request = tmp_path / "request.json"
    for text, expected in (("{not json", "Expecting property name"), ('{"signature_name": "nope", "instances": [1]}',
                                                                        "the model has no signature 'nope'; it has path_x2x2")):
        request.write_text(text)
        assert rest.main([str(exported[1]), str(request)]) == 1
        assert expected in json.loads(capsys.readouterr().out)["error"]
    assert rest.main([str(exported[1]), str(tmp_path / "missing.json")]) == 1
    assert "No such file" in json.loads(capsys.readouterr().out)["error"]


def _zeros(format: str, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, format=format)
    return buffer.getvalue()


def test_encoded_signatures_refuse_images_over_their_limits(exported, nima_exported):
    """The issue's small 4000x4000 zero PNG (and JPEG), under the default request budget of
    2048 MiB: refused from the header by the whole-image, tiled and NIMA signatures, with the
    limit and the tiled signature to use; 2000x2000 only fits the tiled one."""
    png, jpeg = _zeros("PNG", 4000), _zeros("JPEG", 4000)
    assert len(png) < 2**16 and len(jpeg) < 2**18 and tf.io.decode_png(png).shape == (4000, 4000, 3)
    limits = read_limits(exported[1])
    assert set(limits) == PNG_SIGNATURES
    # tiny EUSR at x4: twice two maps of 8 float32 channels at 4x4 output pixels per LR pixel
    assert limits["upscale_x4_png"].max_pixels == 2048 * 2**20 // (2 * 2 * 4 * 8 * 16 + DECODE_BYTES)
    assert limits["upscale_x4_png"].max_pixels < 2000**2 < limits["upscale_x4_png_tiled"].max_pixels < 4000**2
    loaded = tf.saved_model.load(str(exported[1]))
    for name, payload in (("upscale_x4_png", png), ("upscale_x4_png_tiled", png), ("path_x8down_png", jpeg)):
        limit = limits[name].max_pixels
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"images_bytes\[0\] is 4000x4000 pixels, over the {limit:,}-pixel limit of {name} "):
            loaded.signatures[name](images_bytes=tf.constant([payload]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"request budget of 2048 MiB\): send it to upscale_x4_png_tiled, or re-export"):
        loaded.signatures["upscale_x4_png"](images_bytes=tf.constant([_zeros("PNG", 2000)]))
    nima_limit = read_limits(nima_exported[1])["score_png"].max_pixels
    assert 32**2 < nima_limit < 4000**2
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"over the {nima_limit:,}-pixel limit of score_png .*: downscale it"):
        tf.saved_model.load(str(nima_exported[1])).signatures["score_png"](images_bytes=tf.constant([png]))


@pytest.mark.slow
def test_warmup_requests_run_through_the_loaded_models(exported, nima_exported, served):
    """The warm-up files, parsed and replayed in the TensorFlow-only process."""
    warmup = served[1]["warmup"]
    assert [name for name, _, _ in warmup["eusr"]] == ["eusr"] * len(SIGNATURES)
    assert sorted(signature for _, signature, _ in warmup["eusr"]) == sorted(SIGNATURES)
    for _, signature, shapes in warmup["eusr"]:
        side = 32 * _factor(signature)
        png = {"upscaled_bytes": [1], "png": [side, side, 3]}
        assert shapes == (png if signature in PNG_SIGNATURES else {"upscaled": [1, side, side, 3]}), signature
    assert [(name, signature) for name, signature, _ in warmup["nima"]] == [("nima_ava", "serve"), ("nima_ava", "score_png")]
    assert warmup["nima"][1][2] == {"mean_score": [1], "distribution": [1, 10]}
    # what the export wrote is what was replayed
    requests = read_warmup_requests(exported[1] / WARMUP_FILE)
    assert [signature for _, signature, _ in requests] == [signature for _, signature, _ in warmup["eusr"]]
    assert requests[0][2]["images"].shape == (1, 32, 32, 3)


def test_savedmodel_loads_back_as_a_generator(exported):
    model, path = exported
    generator = load_generator(path.parent)  # the model folder: its newest version
    assert isinstance(generator, SavedModelGenerator) and generator.path == path and generator.scales == (2, 4, 8)
    x = np.random.default_rng(1).uniform(0, 255, (1, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(run_route(generator, x, "x2x2"), run_route(model, x, "x2x2"), atol=2e-2)
    with pytest.raises(ValueError, match="not x3"):
        generator(x, scale=3)


def test_graph_halving_equals_matlab_imresize():
    x = np.random.default_rng(2).uniform(0, 255, (2, 12, 18, 3)).astype(np.float32)
    np.testing.assert_allclose(halve_matlab_graph(x), imresize_tf(x, scale=0.5), atol=1e-3)


def test_export_script(tmp_path, capsys, tiny_x4_keras):
    shutil.copy(tiny_x4_keras, tmp_path / "generator.keras")
    from eusr_perceptual.cli import export as script

    (tmp_path / "sm" / "tiny" / "7").mkdir(parents=True)
    command = [str(tmp_path), "--name", "tiny", "--out", str(tmp_path / "sm")]
    assert script.main(command + ["--no-warmup", "--max-pixels", "50"]) == 0
    exported = tmp_path / "sm" / "tiny" / "8"  # the next free version
    signatures = tf.saved_model.load(str(exported)).signatures
    assert set(signatures) == {"serving_default", "upscale_x4", "upscale_x4_float", "upscale_x4_png", "upscale_x4_png_tiled"}
    assert not (exported / WARMUP_FILE).exists()
    assert "upscale_x4_png_tiled: images up to 50 pixels (set at export)" in capsys.readouterr().out
    assert len(tf.io.decode_png(signatures["upscale_x4_png"](images_bytes=tf.constant([_zeros("PNG", 7)]))["upscaled_bytes"][0]).numpy()) == 28
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"is 8x8 pixels, over the 50-pixel limit of upscale_x4_png_tiled \(set at export\)"):
        signatures["upscale_x4_png_tiled"](images_bytes=tf.constant([_zeros("PNG", 8)]))
    assert script.main(command + ["--version", "8"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert script.main(command + ["--max-pixels", "0"]) == 2
    assert "max_pixels must be at least 1, got 0" in capsys.readouterr().err
    assert script.main(command + ["--format", "onnx", "--request-memory-mib", "100"]) == 2
    assert "apply to --format savedmodel only" in capsys.readouterr().err
