"""Shipped DIV2K/Flickr2K LR images are checked against their HR image when a source is opened
(issue 19): a wrong ``X2/`` folder used to train silently on misaligned pairs, a wrong ``X4/``
to crash mid-run inside tf.data. Sizes come from the file headers."""

import numpy as np
import pytest
from PIL import Image

from eusr_perceptual.cli import prepare
from eusr_perceptual.data.images import header_size, load_rgb8
from eusr_perceptual.data.sources import MisfitLRError
from eusr_perceptual.data.samplers import load_training_images, make_sampler


def _save(path, height, width, seed=0, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, **options)


@pytest.fixture
def div2k(tmp_path):
    """HR 80x72 and 81x75 (not a multiple of 2 or 4: the LR is the floor, as published)."""
    root = tmp_path / "DIV2K"
    for name, (height, width) in {"0001": (72, 80), "0002": (75, 81)}.items():
        _save(root / "DIV2K_train_HR" / f"{name}.png", height, width)
        for scale in (2, 4):
            _save(root / "DIV2K_train_LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", height // scale, width // scale)
    return root


def test_fitting_shipped_lr_is_used_as_it_is(div2k):
    images = load_training_images(f"div2k:{div2k}", scales=(2, 4))
    assert [(image.name, image.lr[2].shape, image.lr[4].shape) for image in images] == [
        ("0001", (36, 40, 3), (18, 20, 3)), ("0002", (37, 40, 3), (18, 20, 3))]


@pytest.mark.parametrize("wrong_scale", [2, 4])
def test_a_wrong_scale_folder_is_refused_before_training(div2k, tmp_path, capsys, wrong_scale):
    """The X2 folder holding the X4 images (misaligned pairs), or the X4 folder holding the X2
    ones (patches past the LR image): refused naming the file and the size it needs."""
    other = 4 if wrong_scale == 2 else 2
    for name in ("0001", "0002"):
        source = div2k / "DIV2K_train_LR_bicubic" / f"X{other}" / f"{name}x{other}.png"
        (div2k / "DIV2K_train_LR_bicubic" / f"X{wrong_scale}" / f"{name}x{wrong_scale}.png").write_bytes(source.read_bytes())
    lr_file = div2k / "DIV2K_train_LR_bicubic" / f"X{wrong_scale}" / f"0001x{wrong_scale}.png"
    wrong, needed = (("20x18", "40x36") if wrong_scale == 2 else ("40x36", "20x18"))
    expected = (f"2 shipped LR image\\(s\\) do not fit their HR image; first: {lr_file}: LR is {wrong} but HR "
                f"0001.png 80x72 at x{wrong_scale} needs {needed}: wrong scale folder\\?")
    with pytest.raises(MisfitLRError, match=expected):
        load_training_images(f"div2k:{div2k}", scales=(2, 4))
    with pytest.raises(MisfitLRError, match=expected):  # what every trainer calls
        make_sampler(f"div2k:{div2k}", (2, 4), 4, 2)
    assert prepare.main([f"div2k:{div2k}", "--out", str(tmp_path / "store"), "--scales", "2", "4", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"error: 2 shipped LR image(s) do not fit their HR image; first: {lr_file}")
    assert not (tmp_path / "store" / "manifest.json").exists()
    load_training_images(f"div2k:{div2k}", scales=(other,))  # the other scale's files are not involved


def test_header_size_is_the_decoded_size_with_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: read upright as 30 wide, 50 high
    _save(tmp_path / "rotated.jpg", 30, 50, exif=exif)
    _save(tmp_path / "plain.png", 30, 50)
    for name in ("rotated.jpg", "plain.png"):
        height, width = load_rgb8(tmp_path / name).shape[:2]
        assert header_size(tmp_path / name) == (width, height)
    assert header_size(tmp_path / "rotated.jpg") == (30, 50)
