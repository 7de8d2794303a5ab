"""``scripts/train_nima.py`` end to end on small AVA and TID2013 trees in the release formats:
both phases, the metrics table, checkpoints and logs, export and reload, resume.

Runs are one or two steps per phase on 32x32 crops with ``--weights none`` and
``--run-eagerly`` (on two CPU cores, compiling MobileNetV2's training step takes longer
than running a step eagerly).
"""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nima.config import TID2013_PAPER
from nima.datasets import load_dataset
from nima.export import ExportedPredictor
from nima.model import FEATURE_SIZE, count_parameters, load_predictor
from test_nima_data import make_ava_tree, make_tid_tree

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--weights", "none", "--crop-size", "32", "--phase1-batch-size", "4", "--phase2-batch-size", "4",
         "--run-eagerly", "--quiet"]


def train_nima_script():
    from eusr_perceptual.cli import train_nima as cli

    return cli


def log_rows(run_dir, phase):
    with open(run_dir / phase / "log.csv") as stream:
        return list(csv.DictReader(stream))


def check_run(run_dir: Path, dataset: str, output: str) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for phase in ("phase1", "phase2"):
        assert list((run_dir / phase / "checkpoints").glob("ckpt-*.index"))
        assert log_rows(run_dir, phase) and (run_dir / phase / "config.json").is_file()
    assert [p["trainable"] for p in metrics["phases"]] == [12_810, 2_236_682]
    assert [p["frozen"] for p in metrics["phases"]] == [2_257_984, 34_112]
    validation = metrics["validation"]
    assert 0 <= validation["squared_emd"] and 0 <= validation["accuracy"] <= 1 and validation["images"] > 0
    table = output[output.index(f"NIMA {dataset} validation"):]
    for label in ("squared EMD (eq. 1)", "EMD, r=2 (NIMA)", "SROCC of mean scores", "LCC of mean scores", "accuracy at score 5"):
        assert label in table
    assert re.search(rf"validation images +{validation['images']} *\n", table)
    return metrics


def check_predictors(run_dir: Path, dataset: str):
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 36, 3)).astype("float32")
    outputs = []
    for path in (run_dir / "export" / f"nima_{dataset}.keras", run_dir / "export" / f"nima_{dataset}_savedmodel"):
        predictor = load_predictor(path)
        assert not predictor.trainable and count_parameters(predictor.trainable_weights) == 0
        assert all(layer.dtype_policy.name == "float32" for layer in predictor.layers)  # also when trained mixed
        result = predictor(images, training=True)  # frozen and dropout-free: training changes nothing
        assert result["distribution"].shape == (2, 10) and result["mean_score"].shape == (2,)
        assert result["features"].shape == (2, FEATURE_SIZE)
        outputs.append(result)
    for name in ("distribution", "mean_score", "features"):
        np.testing.assert_allclose(outputs[0][name], outputs[1][name], rtol=1e-4, atol=1e-5)


def test_without_data_dir_the_script_names_the_files_and_sources(capsys):
    script = train_nima_script()
    assert script.main(["--dataset", "ava"]) == 2
    message = capsys.readouterr().err
    assert "AVA.txt" in message and "images/" in message and "ava_downloader" in message
    assert script.main(["--dataset", "tid2013"]) == 2
    message = capsys.readouterr().err
    for name in ("mos_with_names.txt", "mos_std.txt", "distorted_images/", "reference_images/", "ponomarenko.info"):
        assert name in message


@pytest.mark.slow
def test_tid2013_trains_exports_and_resumes(tmp_path, capsys, monkeypatch):
    data_dir = tmp_path / "tid2013"
    make_tid_tree(data_dir, references=range(1, 6), distortions=range(1, 3), levels=range(1, 3), size=(36, 44))
    run_dir = tmp_path / "run"
    script = train_nima_script()
    # 100 epochs x 0.005 = half an epoch of 8 training images at batch 4: one step per phase.
    argv = ["--dataset", "tid2013", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--epochs-scale", "0.005", *SMOKE]
    assert script.main(argv) == 0
    output = capsys.readouterr().out
    metrics = check_run(run_dir, "tid2013", output)
    assert metrics["validation"]["images"] == 12  # distortions of references 1-3
    assert (run_dir / "phase1" / "tensorboard").is_dir()
    check_predictors(run_dir, "tid2013")

    # Both phases are finished: --resume restores them without training and evaluates the same weights.
    logs = [log_rows(run_dir, phase) for phase in ("phase1", "phase2")]
    monkeypatch.setattr(  # the export itself is checked above; skip its cost here
        "nima.train.export_predictor",
        lambda model, directory, name: ExportedPredictor(directory / f"{name}.keras", directory / f"{name}_savedmodel"),
    )
    from nima.train import train_nima

    config = TID2013_PAPER.replace(weights="none", crop_size=32, phase1_batch_size=4, phase2_batch_size=4,
                                   epochs_scale=0.005, run_eagerly=True)
    result = train_nima(config, load_dataset(config, data_dir), run_dir, resume=True, tensorboard=False, verbose=0)
    assert [log_rows(run_dir, phase) for phase in ("phase1", "phase2")] == logs
    assert [phase.history for phase in result.phases] == [{}, {}]
    assert result.metrics.squared_emd == pytest.approx(metrics["validation"]["squared_emd"], rel=1e-5)
    with pytest.raises(FileExistsError, match="--resume"):
        train_nima(config, load_dataset(config, data_dir), run_dir, resume=False, tensorboard=False, verbose=0)


@pytest.mark.slow
def test_ava_trains_and_exports_with_mixed_precision_and_bad_files(tmp_path, capsys):
    data_dir = tmp_path / "ava"
    make_ava_tree(data_dir)
    run_dir = tmp_path / "run"
    script = train_nima_script()
    argv = ["--dataset", "ava", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--validation-size", "4",
            "--epochs-scale", "0.1", "--mixed-precision", "--no-tensorboard", *SMOKE]
    assert script.main(argv) == 0
    output = capsys.readouterr().out
    metrics = check_run(run_dir, "ava", output)
    # 3 malformed lines, 1 missing and 1 truncated image.
    assert metrics["skipped_files"] == 5 and "skipped files or label lines: 5" in output
    assert not (run_dir / "phase1" / "tensorboard").exists()
    check_predictors(run_dir, "ava")
