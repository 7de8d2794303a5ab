"""SavedModel export: signatures, TensorFlow-only loading, numbers against the Keras model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.export import export_savedmodel, halve_matlab_graph
from eusr_perceptual.inference import run_route
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.models.loading import SavedModelGenerator, load_generator
from eusr_perceptual.resize import imresize_tf, round_to_uint8_tf

REPO = Path(__file__).resolve().parents[1]
SIGNATURES = {
    "serving_default", "upscale_x2", "upscale_x4", "upscale_x8", "upscale_x2_float", "upscale_x4_float",
    "upscale_x8_float", "path_x2x2", "path_x8down", "path_x2x2_float", "path_x8down_float",
}

# Runs in a fresh interpreter where Keras and this project cannot be imported: the
# `saved_model_cli show --all` command (in-process, to start TensorFlow once), then
# tf.saved_model.load and every signature on a batch of images.
SERVE_WITHOUT_KERAS = """
import contextlib, io, json, sys
sys.modules["keras"] = None
sys.modules["eusr_perceptual"] = None
import numpy as np, tensorflow as tf
from tensorflow.python.tools import saved_model_cli

path, images_file, out_file, listing_file = sys.argv[1:5]
listing = io.StringIO()
sys.argv = ["saved_model_cli", "show", "--all", "--dir", path]
with contextlib.redirect_stdout(listing), contextlib.suppress(SystemExit):
    saved_model_cli.main()
open(listing_file, "w").write(listing.getvalue())
loaded = tf.saved_model.load(path)
images = np.load(images_file)
out = {}
for name, signature in loaded.signatures.items():
    x = images if "float" not in name else images.astype(np.float32)
    out[name] = signature(images=tf.constant(x))["upscaled"].numpy()
np.savez(out_file, **out)
print(json.dumps({name: [str(v.dtype), list(v.shape)] for name, v in out.items()}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(2, 4, 8)))
    model.build()
    base = tmp_path_factory.mktemp("saved_models")
    return model, export_savedmodel(model, base, "eusr")


def test_export_goes_to_name_and_version_and_refuses_what_it_cannot_do(exported, tmp_path):
    model, path = exported
    assert path.parts[-2:] == ("eusr", "1") and (path / "saved_model.pb").is_file()
    with pytest.raises(FileExistsError):
        export_savedmodel(model, path.parents[1], "eusr", version=1)
    x4_only = EUSR(EUSRConfig(channels=4, shared_blocks=1, scales=(4,)))
    x4_only.build()
    with pytest.raises(ValueError, match="no x2x2 route"):
        export_savedmodel(x4_only, tmp_path, "m", paths=["x2x2"])
    with pytest.raises(ValueError, match="no x3 route"):
        export_savedmodel(model, tmp_path, "m", paths=["x4", "x3"])


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """What a TensorFlow-only process sees: the CLI listing, output shapes and outputs."""
    _, path = exported
    work = tmp_path_factory.mktemp("serve")
    images = np.random.default_rng(0).integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    np.save(work / "images.npy", images)
    (work / "serve.py").write_text(SERVE_WITHOUT_KERAS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    files = [str(work / name) for name in ("images.npy", "out.npz", "listing.txt")]
    result = subprocess.run([sys.executable, str(work / "serve.py"), str(path), *files], capture_output=True, text=True, cwd=work, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    return images, (work / "listing.txt").read_text(), shapes, np.load(work / "out.npz")


def test_saved_model_cli_lists_the_signatures(served):
    _, listing, _, _ = served
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in listing
    serving = listing.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "inputs['images']" in serving and "DT_UINT8" in serving and "shape: (-1, -1, -1, 3)" in serving
    assert "outputs['upscaled']" in serving


def test_loads_with_tensorflow_alone_and_matches_keras(exported, served):
    model, _ = exported
    images, _, shapes, outputs = served
    assert set(shapes) == SIGNATURES
    lr = tf.constant(images, tf.float32)
    for route, factor in [("x2", 2), ("x4", 4), ("x8", 8), ("x2x2", 4), ("x8down", 4)]:
        prefix = "upscale" if route[1:].isdigit() else "path"
        expected = run_route(model, lr, route).numpy()
        assert shapes[f"{prefix}_{route}"] == ["uint8", [2, 7 * factor, 9 * factor, 3]]
        np.testing.assert_allclose(outputs[f"{prefix}_{route}_float"], expected, atol=2e-2)
        rounded = round_to_uint8_tf(expected).numpy().astype(int)
        assert np.abs(outputs[f"{prefix}_{route}"].astype(int) - rounded).max() <= 1
    np.testing.assert_array_equal(outputs["serving_default"], outputs["upscale_x4"])


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


def test_export_script(tmp_path, capsys):
    model = EUSR(EUSRConfig(channels=4, shared_blocks=1, scales=(4,)))
    model.build()
    model.save(tmp_path / "generator.keras")
    from eusr_perceptual.cli import export as script

    (tmp_path / "sm" / "tiny" / "7").mkdir(parents=True)
    assert script.main([str(tmp_path), "--name", "tiny", "--out", str(tmp_path / "sm")]) == 0
    exported = tmp_path / "sm" / "tiny" / "8"  # the next free version
    assert set(tf.saved_model.load(str(exported)).signatures) == {"serving_default", "upscale_x4", "upscale_x4_float"}
    assert script.main([str(tmp_path), "--name", "tiny", "--out", str(tmp_path / "sm"), "--version", "8"]) == 2
    assert "exists already" in capsys.readouterr().err
