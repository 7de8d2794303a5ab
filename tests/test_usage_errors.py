"""User mistakes are one-line errors with exit status 2, not tracebacks: wrong kinds of paths,
empty folders, images or corrupt files given as models, non-RGB input to an exported signature."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.errors import PathUsageError, UsageError, ValueUsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.data.images import EmptySourceError
from eusr_perceptual.data.samplers import load_training_images
from eusr_perceptual.serving.savedmodel import CHANNELS_MESSAGE, export_savedmodel
from eusr_perceptual.loading import GeneratorLoadError, check_model_path, load_generator


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_x4_eusr, tiny_x4_keras):
    """A tiny x4 model (.keras, a truncated copy, a corrupt one), a photo, an empty folder."""
    root = tmp_path_factory.mktemp("usage")
    model = tiny_x4_eusr
    shutil.copy(tiny_x4_keras, root / "model.keras")
    data = (root / "model.keras").read_bytes()
    (root / "truncated.keras").write_bytes(data[: len(data) // 2])
    (root / "corrupt.keras").write_bytes(b"not a zip archive at all")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "photo.png")
    (root / "empty").mkdir()
    return root, model


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "Traceback" not in error, error
    return error


def test_the_wrapper_turns_usage_errors_into_status_2_and_leaves_bugs_alone(capsys):
    @command()
    def main(argv=None):
        raise {"usage": PathUsageError("data folder x is a file, expected a folder"), "bug": KeyError("bug")}[argv]

    assert main("usage") == 2 and one_line_error(capsys) == "error: data folder x is a file, expected a folder\n"
    with pytest.raises(KeyError):
        main("bug")
    # Usage errors stay catchable as the built-in types callers already handle.
    assert issubclass(PathUsageError, FileNotFoundError) and issubclass(ValueUsageError, ValueError)
    assert issubclass(GeneratorLoadError, UsageError) and issubclass(EmptySourceError, UsageError)


def test_model_paths_are_checked_without_loading(files):
    root, _ = files
    with pytest.raises(GeneratorLoadError, match="photo.png is not a model file: expected a .keras file, a run folder"):
        check_model_path(root / "photo.png", "--generator")
    with pytest.raises(GeneratorLoadError, match=r"--aesthetic .*photo.png is not a model file: expected a .keras file or a SavedModel"):
        check_model_path(root / "photo.png", "--aesthetic", run_file=None)
    for name in ("corrupt.keras", "truncated.keras"):
        with pytest.raises(GeneratorLoadError, match="cannot be read as a Keras model") as error:
            load_generator(root / name)
        assert "File not found" not in str(error.value)
    with pytest.raises(PathUsageError, match="--subjective not found"):
        check_model_path(root / "absent.keras", "--subjective", run_file=None)
    with pytest.raises(GeneratorLoadError, match="holds no model"):
        check_model_path(root / "empty", "--generator")
    assert check_model_path(root / "model.keras") == root / "model.keras"


def test_upscale_refuses_bad_models_and_inputs_in_one_line(files, capsys):
    from eusr_perceptual.cli import upscale

    root, _ = files
    out = root / "out_upscale"
    cases = {
        (root / "photo.png", root / "photo.png"): "is not a model file",
        (root / "corrupt.keras", root / "photo.png"): "cannot be read as a Keras model",
        (root / "truncated.keras", root / "photo.png"): "cannot be read as a Keras model",
        (root / "model.keras", root / "empty"): "no image files among the inputs",
        (root / "model.keras", root / "absent.png"): "input not found",
    }
    for (model, source), message in cases.items():
        assert upscale.main([str(model), str(source), "--out", str(out)]) == 2
        assert message in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--tile", "--overlap"])
def test_a_negative_tile_or_overlap_is_refused_when_the_flags_are_parsed(files, capsys, flag):
    from eusr_perceptual.cli import evaluate, upscale

    root, _ = files
    model = str(root / "model.keras")
    for parse, argv in ((upscale.parse_args, [model, str(root / "photo.png")]),
                        (evaluate.parse_args, ["--model", model, "--data", "skimage"])):
        assert parse([*argv, flag, "0"]) is not None  # 0 is a size (--tile 0: the whole image)
        with pytest.raises(SystemExit) as stop:
            parse([*argv, flag, "-1"])
        assert stop.value.code == 2 and f"argument {flag}: must be 0 or more, got -1" in capsys.readouterr().err


def test_keras_files_load_with_safe_mode_on(tmp_path):
    """A .keras file is code: a Lambda layer's Python function must not run when one loads."""
    from nima.model import load_predictor

    marker = tmp_path / "ran"
    inputs = keras.Input((None, None, 3))
    touches = eval(f"lambda x: x + float(__import__('pathlib').Path({str(marker)!r}).touch() is None)")  # no closure
    outputs = keras.layers.Lambda(touches)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    marker.unlink()  # it ran when the model was built
    with pytest.raises(GeneratorLoadError, match="safe_mode"):
        load_generator(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_predictor(tmp_path / "lambda.keras")
    assert not marker.exists()
    keras.saving.load_model(tmp_path / "lambda.keras", safe_mode=False)  # the premise: the function is live
    assert marker.exists()


def test_evaluate_checks_models_before_data_and_rejects_files_and_empty_folders(files, capsys):
    from eusr_perceptual.cli import evaluate

    root, _ = files
    out = str(root / "out_eval")
    # The model is checked first: the (also wrong) data folder is not even looked at.
    assert evaluate.main(["--model", f"eusr={root / 'photo.png'}", "--data", str(root / "nowhere"), "--out", out]) == 2
    assert "photo.png is not a model file" in one_line_error(capsys)
    assert evaluate.main(["--model", f"eusr={root / 'corrupt.keras'}", "--data", str(root / "empty"), "--out", out]) == 2
    assert "cannot be read as a Keras model" in one_line_error(capsys)
    assert evaluate.main(["--model", "bicubic", "--data", str(root / "photo.png"), "--out", out]) == 2
    assert "benchmark folder" in (error := one_line_error(capsys)) and "is a file, expected a folder" in error
    assert evaluate.main(["--model", "bicubic", "--data", str(root / "empty"), "--out", out]) == 2
    assert "no image found in" in one_line_error(capsys)
    assert evaluate.main(["--model", "bicubic", "--data", "skimage", "--out", str(root / "photo.png")]) == 2
    assert "--out" in (error := one_line_error(capsys)) and "is a file, expected a folder" in error


def test_training_and_nima_data_paths(files, capsys):
    from eusr_perceptual.cli import train_nima as nima_cli

    root, _ = files
    with pytest.raises(PathUsageError, match="is a file, expected a folder"):
        load_training_images(root / "photo.png")
    with pytest.raises(EmptySourceError, match="no usable training image"):
        load_training_images(root / "empty")
    assert nima_cli.main(["--dataset", "tid2013", "--data-dir", str(root / "photo.png")]) == 2
    assert "TID2013 data folder" in (error := one_line_error(capsys)) and "is a file, expected a folder" in error


def test_training_tools_refuse_a_multi_worker_strategy_without_tf_config(files, capsys, monkeypatch):
    from eusr_perceptual.cli import pretrain
    from eusr_perceptual.cli import train_nima as nima_cli

    root, _ = files
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert nima_cli.main(["--dataset", "tid2013", "--data-dir", str(root), "--strategy", "multi-worker"]) == 2
    assert "needs the TF_CONFIG environment variable" in one_line_error(capsys)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}')
    assert pretrain.main(["--strategy", "multi-worker", "--run-dir", str(root / "run")]) == 2
    assert "TF_CONFIG task worker:3 is not in its cluster" in one_line_error(capsys)


def test_exported_signatures_check_the_channel_count(files, tmp_path):
    _, model = files
    target = export_savedmodel(model, tmp_path, "tiny", paths=())
    loaded = tf.saved_model.load(str(target))
    rgb = np.random.default_rng(0).integers(0, 256, (1, 5, 6, 3), dtype=np.uint8)
    assert loaded.signatures["upscale_x4"](images=tf.constant(rgb))["upscaled"].shape == (1, 20, 24, 3)
    for name, dtype in (("upscale_x4", tf.uint8), ("upscale_x4_float", tf.float32), ("serving_default", tf.uint8)):
        for channels in (1, 4):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be RGB.*\[{}\]".format(channels)):
                loaded.signatures[name](images=tf.zeros((1, 5, 6, channels), dtype))
    assert CHANNELS_MESSAGE.startswith("images must be RGB, [batch, height, width, 3]")
