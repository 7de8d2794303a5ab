"""Evaluation: benchmark layouts, scoring, tables, plots and scripts/evaluate.py."""

import csv
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image

from eusr_perceptual.resize import make_lr
from eusr_perceptual.evaluation.benchmarks import discover_benchmark, load_pair
from eusr_perceptual.evaluation.plots import most_textured_box
from eusr_perceptual.evaluation.runner import Method, SummaryRow, evaluate_dataset, summarize
from eusr_perceptual.evaluation.tables import format_table
from eusr_perceptual.metrics.fidelity import psnr, ssim
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.metrics.niqe import niqe
from eusr_perceptual.metrics.vif import vifp
from eusr_perceptual.resize import RESIZE_CONVENTIONS, imresize, imresize_uint8, to_uint8_matlab

REPO = Path(__file__).resolve().parents[2]


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture(scope="module")
def photos():
    """Two HR crops of embedded photographs: one large enough for NIQE, one not."""
    return {"coffee": skimage.data.coffee()[:128, :120], "chelsea": skimage.data.chelsea()[100:160, 200:252]}


def test_hr_only_folder_gets_matlab_bicubic_lr(tmp_path, photos):
    for name, image in photos.items():
        save(tmp_path / "set" / f"{name}.png", image)
    benchmark = discover_benchmark(tmp_path / "set", 4)
    assert benchmark.name == "set" and "HR only" in benchmark.layout
    assert [i.name for i in benchmark.images] == ["chelsea", "coffee"]
    lr, hr = load_pair(benchmark.images[0], 4)
    np.testing.assert_array_equal(lr, make_lr(photos["chelsea"], 4))
    assert hr.shape == (60, 52, 3) and lr.shape == (15, 13, 3)


def test_paired_layouts_use_the_shipped_lr(tmp_path, photos):
    hr = photos["coffee"][:126, :118]  # not a multiple of 4: cropped to 124x116
    shipped = np.full((31, 29, 3), 7, np.uint8)
    save(tmp_path / "Set5" / "HR" / "coffee.png", hr)
    save(tmp_path / "Set5" / "LR_bicubic" / "X4" / "coffeex4.png", shipped)
    save(tmp_path / "Set5" / "HR" / "cat.png", photos["chelsea"])  # no LR: generated
    benchmark = discover_benchmark(tmp_path / "Set5", 4)
    assert benchmark.layout == "HR + LR_bicubic/X4"
    pairs = {image.name: load_pair(image, 4) for image in benchmark.images}
    np.testing.assert_array_equal(pairs["coffee"][0], shipped)
    assert pairs["coffee"][1].shape == (124, 116, 3) and pairs["cat"][0].shape == (15, 13, 3)

    save(tmp_path / "Set14" / "image_SRF_4" / "img_001_SRF_4_HR.png", hr)
    save(tmp_path / "Set14" / "image_SRF_4" / "img_001_SRF_4_LR.png", shipped)
    srf = discover_benchmark(tmp_path / "Set14", 4)
    assert [i.name for i in srf.images] == ["img_001_SRF_4"]
    np.testing.assert_array_equal(load_pair(srf.images[0], 4)[0], shipped)
    save(tmp_path / "Set14" / "image_SRF_4" / "img_002_SRF_4_HR.png", hr)
    save(tmp_path / "Set14" / "image_SRF_4" / "img_002_SRF_4_LR.png", shipped[:20])
    with pytest.raises(ValueError, match="wrong scale folder"):
        load_pair(discover_benchmark(tmp_path / "Set14", 4).images[1], 4)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        discover_benchmark(tmp_path / "nope", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image"):
        discover_benchmark(tmp_path / "empty", 4)
    (tmp_path / "photo.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="is a file, expected a folder"):
        discover_benchmark(tmp_path / "photo.png", 4)
    embedded = discover_benchmark("skimage", 4)
    assert [i.name for i in embedded.images] == ["astronaut", "chelsea", "coffee"]


def test_scores_follow_the_paper_protocol_and_skips_are_counted(tmp_path, photos):
    for name, image in photos.items():
        save(tmp_path / "set" / f"{name}.png", image)
    (tmp_path / "set" / "broken.png").write_bytes(b"garbage")
    result = evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")], keep=["coffee"], progress=False)
    assert result.skips.count == 1
    scores = {s.image: s for s in result.scores}
    (coffee,) = [i for i in discover_benchmark(tmp_path / "set", 4).images if i.name == "coffee"]
    lr, hr = load_pair(coffee, 4)
    # Default convention "double": LR and bicubic resized in double, rounded once.
    np.testing.assert_array_equal(lr, to_uint8_matlab(imresize(photos["coffee"] / 255.0, 0.25) * 255.0))
    sr = to_uint8_matlab(imresize(lr / 255.0, 4) * 255.0)
    assert scores["coffee"].psnr == pytest.approx(psnr(sr, hr, border=4))
    assert scores["coffee"].ssim == pytest.approx(ssim(sr, hr, border=4))
    assert scores["coffee"].niqe == pytest.approx(niqe(sr, border=4))
    assert scores["coffee"].vif == pytest.approx(vifp(hr, sr, border=4)) and 0.2 < scores["coffee"].vif < 1.0
    assert math.isnan(scores["chelsea"].niqe) and scores["chelsea"].lpips is None
    (row,) = summarize(result)
    assert row.images == 2 and row.niqe_images == 1 and row.niqe == pytest.approx(scores["coffee"].niqe)
    assert row.vif == pytest.approx(np.nanmean([s.vif for s in scores.values()]))
    np.testing.assert_array_equal(result.kept["coffee"]["bicubic"], sr)
    assert result.title == "set x4 (Y channel, 4-px border cropped; MATLAB bicubic LR, double convention)"

    native = evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")], progress=False, lr_convention="uint8")
    lr8 = imresize(photos["coffee"], 0.25)  # MATLAB's uint8 imresize: rounded after each pass
    sr8 = imresize(lr8, scale=4)
    assert {s.image: s for s in native.scores}["coffee"].psnr == pytest.approx(psnr(sr8, hr, border=4))
    assert not np.array_equal(sr8, sr) and "uint8 convention" in native.title
    with pytest.raises(ValueError, match="unknown LR convention"):
        evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")], progress=False, lr_convention="single")


def test_an_image_too_small_to_score_is_a_counted_skip(tmp_path, photos):
    from eusr_perceptual.metrics.lpips import CHANNELS, LPIPS, build_backbone

    save(tmp_path / "set" / "coffee.png", photos["coffee"])
    save(tmp_path / "set" / "tiny.png", photos["coffee"][:16, :16])  # 8 px after the 4-px crop: less than SSIM's 11
    result = evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")], progress=False)
    assert [score.image for score in result.scores] == ["coffee"]
    assert result.skips.count == 1 and result.skips.skipped[0][0].endswith("tiny.png")
    assert "16x16 is too small to score" in result.skips.skipped[0][1]
    # With LPIPS the backbone's pools must fit too (AlexNet: 31 px), else the image is skipped, not a crash.
    save(tmp_path / "set" / "small.png", photos["coffee"][:36, :36])
    lpips = LPIPS("alex", build_backbone("alex"), [np.ones(c, np.float32) for c in CHANNELS["alex"]])
    with pytest.raises(ValueError, match="LPIPS-alex needs images of at least 31 px per side, got 28x28"):
        lpips(photos["coffee"][:28, :28], photos["coffee"][:28, :28])
    scored = evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")], lpips, progress=False)
    assert [score.image for score in scored.scores] == ["coffee"] and scored.skips.count == 2
    assert [s.image for s in evaluate_dataset(discover_benchmark(tmp_path / "set", 4), [Method("bicubic")],
                                              progress=False).scores] == ["coffee", "small"]


def test_lr_conventions_differ_only_in_rounding():
    hr = skimage.data.astronaut()[:64, :48]
    double, native = make_lr(hr, 4, "double"), make_lr(hr, 4, "uint8")
    assert RESIZE_CONVENTIONS == ("double", "uint8") and make_lr(hr, 4).tobytes() == double.tobytes()
    np.testing.assert_array_equal(native, imresize(hr, 0.25))
    np.testing.assert_array_equal(double, to_uint8_matlab(imresize(hr.astype(np.float64) / 255, 0.25) * 255))
    difference = np.abs(double.astype(int) - native.astype(int))
    assert difference.max() == 1 and 0 < (difference > 0).mean() < 0.5
    np.testing.assert_array_equal(imresize_uint8(native, 4, "uint8"), imresize(native, 4))
    with pytest.raises(ValueError, match="uint8 image"):
        imresize_uint8(hr.astype(np.float32), 4)


def test_tables_show_lpips_na_with_the_reason():
    rows = [SummaryRow("bicubic", 3, 25.1234567, 0.71234, 6.5, None, 2), SummaryRow("eusr", 3, 27.0, 0.8, 5.25, None, 2)]
    text = format_table("Set5 x4", rows, lpips_reason="no LPIPS weights given", skipped=1)
    lines = text.splitlines()
    assert "PSNR (dB)" in lines[2] and "25.1235" in text and "6.5000 (2)" in text
    assert lines[4].split()[-2:] == ["n/a", "n/a"] and "LPIPS n/a: no LPIPS weights given" in text and "1 image(s) skipped" in text
    markdown = format_table("Set5 x4", rows, lpips_reason="absent", markdown=True)
    assert "| Method | Images | PSNR (dB) | SSIM | NIQE | LPIPS | VIF |" in markdown and "| eusr | 3 | 27.0000 |" in markdown


def test_most_textured_box_finds_the_texture():
    image = np.full((64, 64, 3), 128, np.uint8)
    image[32:48, 16:32] = np.random.default_rng(0).integers(0, 256, (16, 16, 3))
    assert most_textured_box(image, 16) == (32, 16, 16)


def test_evaluate_script_writes_tables_plots_and_crops(tmp_path, photos, capsys, tiny_x4_keras):
    for name, image in photos.items():
        save(tmp_path / "photos" / f"{name}.png", image)
    keras.utils.set_random_seed(0)
    model = EUSR(EUSRConfig(channels=4, shared_blocks=1, scales=(2, 4, 8)))
    model.build()
    model.save(tmp_path / "tiny.keras")
    from eusr_perceptual.cli import evaluate as script

    out = tmp_path / "results"
    argv = ["--model", "bicubic", "--model", f"eusr={tmp_path / 'tiny.keras'}", "--data", str(tmp_path / "photos"),
            "--routes", "x4,x2x2,x8down", "--out", str(out), "--plot", "--crops", "coffee", "--tile", "0", "--quiet"]
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    for label in ("bicubic", "eusr [x4]", "eusr [x2x2]", "eusr [x8down]"):
        assert label in printed
    assert "LPIPS n/a: no LPIPS weights given" in printed
    assert "photos x4 (Y channel, 4-px border cropped; MATLAB bicubic LR, double convention)" in printed
    with open(out / "photos_x4.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["bicubic", "eusr [x4]", "eusr [x2x2]", "eusr [x8down]"]
    assert all(r["lpips"] == "" and float(r["psnr"]) > 0 and r["niqe_images"] == "1" for r in rows)
    assert {r["lr"] for r in rows} == {"MATLAB bicubic LR, double convention"}
    assert (out / "photos_x4.md").read_text().startswith("### photos x4 (Y channel, 4-px border cropped; MATLAB bicubic LR, double")
    assert (out / "photos_x4_images.csv").is_file()
    for figure in ("perception_distortion.png", "crops_photos_coffee.png"):
        assert Image.open(out / figure).size[0] > 100

    x8_only = ["--model", str(tmp_path / "tiny.keras"), "--data", str(tmp_path / "photos"), "--scale", "8", "--routes", "x2x2"]
    assert script.main(x8_only) == 2
    assert script.main(["--model", str(tmp_path / "absent.keras"), "--data", str(tmp_path / "photos")]) == 2
    assert script.main(["--model", "bicubic", "--data", str(tmp_path / "nowhere")]) == 2
    assert script.main(["--model", str(tiny_x4_keras), "--data", str(tmp_path / "photos"), "--scale", "2"]) == 2
    errors = capsys.readouterr().err
    assert "use them with --scale 4" in errors and "model not found" in errors and "benchmark folder not found" in errors
    assert "has no x2 route; it supports x4" in errors
