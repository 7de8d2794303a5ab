"""TFLite and ONNX exports, run in LiteRT and onnxruntime, against the Keras model."""

import importlib
import re
import shutil

import keras
import numpy as np
import pytest

from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.loading import float_signature_name
from eusr_perceptual.serving import convert
from eusr_perceptual.serving.warmup import MissingExtra

EXTRA = "needs the export extra: pip install .[export]"
ROUTES = ("x2x2", "x8down")  # the x2 path twice; the x8 path and the MATLAB halving


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


needs_litert = pytest.mark.skipif(not _installed("ai_edge_litert.interpreter"), reason=f"ai-edge-litert missing; {EXTRA}")
needs_onnx = pytest.mark.skipif(not (_installed("tf2onnx") and _installed("onnxruntime")), reason=f"tf2onnx/onnxruntime missing; {EXTRA}")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(11)
    eusr = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(2, 8)))
    eusr.build()
    return eusr


@pytest.fixture(scope="module")
def photographs():
    batches = convert.reference_images()
    assert [batch.shape for batch in batches] == [(3, 32, 32, 3), (3, 20, 28, 3)]
    return batches


@needs_litert
def test_tflite_float32_and_float16_run_at_two_sizes(model, photographs, tmp_path):
    differences = {}
    for float16 in (False, True):
        path = convert.export_tflite(model, tmp_path / f"m{float16}.tflite", float16=float16, routes=ROUTES)
        runners = {route: convert.tflite_runner(path, float_signature_name(route)) for route in ROUTES}
        assert runners["x2x2"](photographs[1]).shape == (3, 80, 112, 3)  # resized input, dynamic output
        differences[float16] = convert.differences_from_keras(model, runners, photographs)
    sizes = {float16: (tmp_path / f"m{float16}.tflite").stat().st_size for float16 in (False, True)}
    assert max(differences[False].values()) <= convert.TOLERANCE
    assert max(differences[True].values()) <= 0.5  # float16 weights: about 1e-2 on the [0, 255] scale
    assert max(differences[True].values()) > max(differences[False].values())
    assert sizes[True] < sizes[False]
    interpreter = convert.require("ai_edge_litert.interpreter", "ai-edge-litert").Interpreter(model_path=str(tmp_path / "mFalse.tflite"))
    assert set(interpreter.get_signature_list()) == {"path_x2x2_float", "path_x8down_float"}
    details = interpreter.get_signature_runner("path_x8down_float").get_input_details()["images"]
    assert list(details["shape_signature"]) == [-1, -1, -1, 3]
    # Other ranks and channel counts are refused (they ran, with answers of wrong shapes): by the
    # runner with a sentence, and by the signature itself, which TFLite resizes to any shape.
    runner = interpreter.get_signature_runner("path_x2x2_float")
    for shape in ((20, 28, 3), (1, 20, 28, 1), (1, 20, 28, 4), (2, 1, 20, 28, 3)):
        with pytest.raises(ValueError, match=re.escape(f"images must be RGB, [batch, height, width, 3]; got shape {shape}")):
            runners["x2x2"](np.zeros(shape, np.float32))
        with pytest.raises(RuntimeError, match="RESHAPE"):
            runner(images=np.zeros(shape, np.float32))
    assert runner(images=photographs[1])["upscaled"].shape == (3, 80, 112, 3)


@needs_onnx
def test_onnx_has_dynamic_axes_and_matches_keras(model, photographs, tmp_path):
    import onnx

    written = convert.export_onnx(model, tmp_path, "tiny", routes=ROUTES)
    assert {route: path.name for route, path in written.items()} == {"x2x2": "tiny_x2x2.onnx", "x8down": "tiny_x8down.onnx"}
    graph = onnx.load(str(written["x8down"])).graph
    (images,), (upscaled,) = graph.input, graph.output
    assert (images.name, upscaled.name) == ("images", "upscaled")
    dims = [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim]
    assert all(isinstance(d, str) and d for d in dims[:3]) and dims[3] == 3
    runners = {route: convert.onnx_runner(path) for route, path in written.items()}
    assert max(convert.differences_from_keras(model, runners, photographs).values()) <= convert.TOLERANCE


@needs_litert
def test_export_cli_writes_and_checks_tflite(tmp_path, capsys, tiny_x4_keras):
    from eusr_perceptual.cli import export as script

    shutil.copy(tiny_x4_keras, tmp_path / "generator.keras")
    assert script.main([str(tmp_path), "--name", "tiny", "--format", "tflite", "--out", str(tmp_path / "exports")]) == 0
    assert (tmp_path / "exports" / "tiny.tflite").is_file()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{tmp_path / 'exports' / 'tiny.tflite'} [x4]: max |tflite - keras| = ")
    assert float(line.split("= ")[1].split()[0]) <= convert.TOLERANCE


def test_a_missing_converter_names_the_extra(monkeypatch, model, tmp_path):
    def missing(name, *args):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(MissingExtra, match=r"tf2onnx is not installed: pip install \.\[export\]"):
        convert.export_onnx(model, tmp_path, "tiny", routes=ROUTES)
