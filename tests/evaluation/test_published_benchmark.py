"""benchmarks/published.py prints each release's measured scores beside the published ones
(issue 22, requirement 4), here with the tiny fixtures standing in for the releases."""

import gzip
import runpy
import sys
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

from eusr_perceptual.resize import make_lr
from eusr_perceptual.resize import imresize_uint8
from helpers import FIXTURES

REPO = Path(__file__).resolve().parents[2]
DATA = FIXTURES


def test_published_numbers_are_printed_beside_the_measured_ones(tmp_path, monkeypatch, capsys, request):
    graph = tmp_path / "4pp_eusr_paper_v2.pb"
    graph.write_bytes(gzip.decompress((DATA / "tiny_4pp_eusr.pb.gz").read_bytes()))
    hr = skimage.data.coffee()[:96, :100]
    for folder in ("Set5", "res"):
        (tmp_path / folder).mkdir()
    Image.fromarray(hr).save(tmp_path / "Set5" / "baby.png")
    Image.fromarray(imresize_uint8(make_lr(hr, 4), 4)).save(tmp_path / "res" / "baby_x4_SR.png")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it and imports from there
    request.addfinalizer(lambda: sys.modules.pop("table2_bicubic", None))
    main = runpy.run_path(str(REPO / "benchmarks" / "published.py"))["main"]
    assert main(["--data", str(tmp_path / "Set5"), "--fourpp", str(graph), "--fourpp-results", f"Set5={tmp_path / 'res'}",
                 "--esrgan-psnr", str(DATA / "rrdbnet_esrgan_legacy.pth"), "--esrgan", str(DATA / "rrdbnet_esrgan.pth")]) == 0
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "28.4178  0.8098  8.5404" in lines["bicubic"]
    assert "31.0846  0.8652  5.6068" in lines["4PP-EUSR (4pp_eusr_paper_v2.pb, x4 path)"]
    assert "31.0846" in lines["4PP-EUSR (released SR images)"]
    assert "32.7300  0.9011       -" in lines["RRDB_PSNR_x4 (rrdbnet_esrgan_legacy.pth)"]
    assert "not published" in lines["RRDB_ESRGAN_x4 (rrdbnet_esrgan.pth)"]
    # the released-images row is scored like the bicubic row it holds
    measured = {label: lines[label][len(label):].split()[:4] for label in ("bicubic", "4PP-EUSR (released SR images)")}
    assert measured["bicubic"] == measured["4PP-EUSR (released SR images)"] and np.isfinite(float(measured["bicubic"][1]))
