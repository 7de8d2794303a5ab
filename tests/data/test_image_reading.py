"""The one image reader (eusr_perceptual.data.images) reads files as users expect, everywhere:
16-bit by bit depth, EXIF orientation applied, decompression bombs skipped and counted,
alpha and grayscale kept apart for the upscaler."""

import warnings

import numpy as np
import pytest
from PIL import Image

from eusr_perceptual.data.images import (
    SkipReport,
    UnreadableImageError,
    decode_pixels,
    load_many,
    load_rgb8,
    read_image,
    to_rgb8,
)
from eusr_perceptual.data.samplers import load_training_images
from eusr_perceptual.evaluation.benchmarks import BenchmarkImage, load_pair
from nima.preprocessing import ImageDecoder


def test_16_bit_images_are_scaled_by_bit_depth_not_by_their_maximum(tmp_path):
    dark = np.array([[0, 128, 129, 255]], np.uint16)  # a dark 16-bit image: its maximum is 255 of 65535
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert Image.open(tmp_path / "dark16.png").mode == "I;16"
    # round(x * 255 / 65535): 128 -> 0.498 -> 0, 129 -> 0.502 -> 1, 255 -> 0.99 -> 1 (was read as 8-bit: 255)
    np.testing.assert_array_equal(load_rgb8(tmp_path / "dark16.png")[..., 0], [[0, 0, 1, 1]])
    bright = np.array([[65535, 32768, 32767, 257]], np.uint16)
    np.testing.assert_array_equal(to_rgb8(bright)[..., 1], [[255, 128, 127, 1]])
    # PIL's 32-bit "I" mode holds 16-bit data too.
    np.testing.assert_array_equal(to_rgb8(Image.fromarray(np.array([[200, 65535]], np.int32), "I"))[..., 2], [[1, 255]])
    assert read_image(tmp_path / "dark16.png").grayscale


@pytest.mark.parametrize("orientation,turn", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))])
def test_exif_orientation_is_applied_in_every_reader(tmp_path, orientation, turn):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif.tobytes())
    upright = turn(pixels)
    np.testing.assert_array_equal(load_rgb8(tmp_path / "rotated.png"), upright)
    # Training, evaluation and NIMA read it the same way.
    (training,) = load_training_images(tmp_path)
    np.testing.assert_array_equal(training.hr, upright)
    np.testing.assert_array_equal(load_pair(BenchmarkImage("rotated", tmp_path / "rotated.png"), 1)[1], upright)
    np.testing.assert_array_equal(ImageDecoder(SkipReport())(str(tmp_path / "rotated.png").encode()), upright)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_counted_skips(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "fine.png")          # 64 pixels
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "warned.png")      # 144: PIL only warns
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "bomb.png")        # 256 > 2 x 100: PIL raises
    for name in ("warned.png", "bomb.png"):
        with pytest.raises(UnreadableImageError, match=f"{name}.*(decompression|exceeds limit)"):
            load_rgb8(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # as under python -W error
        with pytest.raises(UnreadableImageError, match="warned.png"):
            load_rgb8(tmp_path / "warned.png")
    report = SkipReport()
    loaded = load_many(sorted(tmp_path.iterdir()), report)
    assert [path.name for path, _ in loaded] == ["fine.png"]
    assert sorted(name.rsplit("/", 1)[-1] for name, _ in report.skipped) == ["bomb.png", "warned.png"]
    decoder = ImageDecoder(SkipReport())
    assert decoder(str(tmp_path / "bomb.png").encode()).size == 0 and decoder.report.count == 1


def test_alpha_and_grayscale_are_reported_apart(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 0]]], np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(image.rgb, rgba[..., :3])  # straight colour for the upscaler
    np.testing.assert_array_equal(image.alpha, rgba[..., 3])
    np.testing.assert_array_equal(image.composited(), [[[100, 50, 25], [0, 0, 0]]])  # what training sees
    np.testing.assert_array_equal(load_rgb8(tmp_path / "rgba.png"), image.composited())
    assert not image.grayscale

    Image.fromarray(np.array([[10, 250]], np.uint8)).save(tmp_path / "gray.png")
    gray = read_image(tmp_path / "gray.png")
    assert gray.grayscale and gray.alpha is None and gray.rgb.tolist() == [[[10, 10, 10], [250, 250, 250]]]
    Image.fromarray(np.array([[[10, 255], [250, 51]]], np.uint8), "LA").save(tmp_path / "la.png")
    la = read_image(tmp_path / "la.png")
    assert la.grayscale and la.alpha.tolist() == [[255, 51]] and la.composited()[0, 1].tolist() == [50, 50, 50]

    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.info["transparency"] = 1
    palette.save(tmp_path / "palette.png")
    decoded = read_image(tmp_path / "palette.png")
    assert not decoded.grayscale and decoded.alpha.tolist() == [[255, 0]] and decoded.rgb[0, 0].tolist() == [255, 0, 0]
    assert decode_pixels(np.zeros((2, 2, 2), np.uint8)).grayscale
