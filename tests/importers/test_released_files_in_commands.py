"""Every command that takes a model takes a released file directly (issue 22, requirement 2):
``eusr-evaluate``, ``eusr-upscale``, ``eusr-export``, ``eusr-train-gan --init-from`` and the
4PP fine-tuning's ``--init-from``, each converting in memory through ``load_generator``."""

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eusr_perceptual.configs.presets import FOURPP_EUSR, PRESETS
from eusr_perceptual.loading import load_generator
from eusr_perceptual.pipelines.gan_run import build_generator, check_inputs
from helpers import FIXTURES

DATA = FIXTURES
OUTPUTS = np.load(DATA / "import_fixture_outputs.npz")
RRDBNET = DATA / "rrdbnet_basicsr.pth"


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("graph") / "4pp_eusr_tiny.pb"
    path.write_bytes(gzip.decompress((DATA / "tiny_4pp_eusr.pb.gz").read_bytes()))
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_evaluate_scores_released_files(tmp_path, photos, graph_file, capsys):
    from eusr_perceptual.cli import evaluate

    out = tmp_path / "results"
    argv = ["--model", "bicubic", "--model", f"esrgan={RRDBNET}", "--model", f"4pp={graph_file}", "--data", str(photos),
            "--out", str(out), "--tile", "0", "--quiet"]
    assert evaluate.main(argv) == 0
    with open(out / "photos_x4.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["bicubic", "esrgan", "4pp"] and all(float(row["psnr"]) > 0 for row in rows)


def test_upscale_runs_a_released_graph(tmp_path, photos, graph_file):
    from eusr_perceptual.cli import upscale

    assert upscale.main([str(graph_file), str(photos / "a.png"), "--out", str(tmp_path / "up"), "--route", "x2x2"]) == 0
    assert np.asarray(Image.open(tmp_path / "up" / "a_x2x2.png")).shape == (96, 112, 3)


def test_export_writes_a_released_state_dict_as_a_savedmodel(tmp_path):
    from eusr_perceptual.cli import export

    assert export.main([str(RRDBNET), "--name", "esrgan-psnr", "--out", str(tmp_path), "--no-warmup"]) == 0
    exported = load_generator(tmp_path / "esrgan-psnr")
    difference = np.abs(np.asarray(exported(OUTPUTS["lr"].astype(np.float32), scale=4)) - OUTPUTS["rrdbnet_params_ema"])
    assert difference.max() < 0.05


def test_gan_stages_start_from_released_files(graph_file):
    config = PRESETS["esrgan_dp"].replace(init_from=str(RRDBNET))
    check_inputs(config)
    generator = build_generator(config)
    assert generator.provenance["source"] == RRDBNET.name and generator.num_block == 2
    fourpp = FOURPP_EUSR.replace(init_from=str(graph_file))
    generator = build_generator(fourpp)
    assert generator.scales == (2, 4, 8) and generator.provenance["format"] == "tf1_frozen_graph"
