"""Released result folders are rows (issue 22, requirement 3): ``eusr-evaluate --model
LABEL=results:<folder>`` scores SR images made elsewhere with the protocol of a model row,
matched to the HR images by name with the usual suffixes stripped."""

import csv
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from eusr_perceptual.cli import evaluate
from eusr_perceptual.resize import make_lr
from eusr_perceptual.evaluation.results import base_name
from eusr_perceptual.resize import imresize_uint8

METRICS = ("psnr", "ssim", "niqe", "vif")


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def bench(tmp_path):
    """HR images in Huang et al.'s naming, and a result folder holding their MATLAB-bicubic
    x4 upscalings in another naming (what the bicubic row computes, made outside the run)."""
    hr = {"img_001": skimage.data.coffee()[:128, :120], "img_002": skimage.data.chelsea()[100:196, 200:300]}
    for name, image in hr.items():
        save(tmp_path / "Set" / f"{name}_SRF_4_HR.png", image)
        sr = imresize_uint8(make_lr(image, 4), 4)
        save(tmp_path / "results" / f"{name}_x4_SR.png", sr)
    return tmp_path


def run(tmp_path, *extra, folder="results"):
    argv = ["--model", "bicubic", "--model", f"made-elsewhere=results:{tmp_path / folder}", "--data", str(tmp_path / "Set"),
            "--out", str(tmp_path / "out"), "--quiet", *extra]
    return evaluate.main(argv)


def rows(tmp_path) -> dict[str, dict]:
    with open(tmp_path / "out" / "Set_x4.csv") as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("stem, name", [
    ("baby_x4_SR", "baby"), ("img_001_SRF_4_HR", "img_001"), ("babyx4", "baby"), ("baboon_SRGAN-VGG54", "baboon"),
    ("comic_4pp_eusr", "comic"), ("butterfly_rlt", "butterfly"), ("108005_SRResNet-MSE", "108005"), ("Lenna", "lenna"),
])
def test_suffixes_are_stripped_before_matching(stem, name):
    assert base_name(stem) == name


def test_a_result_folder_is_scored_exactly_like_a_row(bench, capsys):
    assert run(bench) == 0
    scored = rows(bench)
    assert scored["made-elsewhere"]["images"] == scored["bicubic"]["images"] == "2"
    for metric in METRICS:
        assert scored["made-elsewhere"][metric] == scored["bicubic"][metric], metric
    assert "made-elsewhere" in capsys.readouterr().out


def test_missing_extra_and_mis_sized_files_are_one_line_errors_or_counted_skips(bench, capsys):
    results = bench / "results"
    (results / "img_002_x4_SR.png").rename(bench / "img_002_x4_SR.png")
    assert run(bench) == 2
    assert capsys.readouterr().err.startswith(f"error: result folder {results} has no image for img_002_SRF_4_HR")
    assert run(bench, "--skip-mismatched") == 0
    assert rows(bench)["made-elsewhere"]["images"] == rows(bench)["bicubic"]["images"] == "1"
    assert "1 image(s) skipped" in capsys.readouterr().out

    (bench / "img_002_x4_SR.png").rename(results / "img_002_x4_SR.png")
    save(results / "butterfly_x4_SR.png", np.zeros((16, 16, 3), np.uint8))
    assert run(bench) == 2
    assert "butterfly_x4_SR.png matches no image of Set" in capsys.readouterr().err
    assert run(bench, "--skip-mismatched") == 0 and rows(bench)["made-elsewhere"]["images"] == "2"
    (results / "butterfly_x4_SR.png").unlink()

    save(results / "img_001_x4_SR.png", np.zeros((124, 120, 3), np.uint8))
    assert run(bench) == 2
    error = capsys.readouterr().err
    assert "img_001_x4_SR.png is 120x124; the HR image img_001_SRF_4_HR is 120x128" in error and error.count("\n") == 1


def test_a_missing_result_folder_is_refused_before_any_work(bench, capsys):
    assert run(bench, folder="nowhere") == 2
    assert "result folder not found" in capsys.readouterr().err
