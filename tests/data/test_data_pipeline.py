"""Training data: image decoding of odd files, sources and their layouts, patch batches."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.data.images import SkipReport, UnreadableImageError, load_rgb8, to_rgb8
from eusr_perceptual.data.patches import PatchSampler, augment_into
from eusr_perceptual.resize import make_lr
from eusr_perceptual.data.images import EmptySourceError, TrainingImage
from eusr_perceptual.data.samplers import load_training_images
from eusr_perceptual.data.sources import with_downscaled_copies
from eusr_perceptual.resize import imresize


def smooth_image(height, width, seed=0):
    """A smooth random RGB image (bicubic pairs of it are well defined)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, height // 8), max(2, width // 8), 3))
    return imresize(small.astype(np.uint8), output_shape=(height, width))


@pytest.fixture
def odd_files(tmp_path):
    """A folder with one file of each awkward kind plus two good RGB images."""
    rgb = smooth_image(64, 72)
    Image.fromarray(rgb).save(tmp_path / "good.png")
    Image.fromarray(smooth_image(70, 64, 1)).save(tmp_path / "good.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep16.png")
    Image.fromarray(rgb).save(tmp_path / "bitmap.bmp")
    Image.fromarray(rgb).save(tmp_path / "scan.tiff")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    good_bytes = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    (tmp_path / "notes.jpg").write_text("not an image")
    Image.fromarray(smooth_image(20, 20)).save(tmp_path / "tiny.png")
    (tmp_path / "readme.txt").write_text("ignored: not an image suffix")
    return tmp_path


def test_every_mode_becomes_8_bit_rgb(odd_files):
    for name in ["good.png", "gray.png", "rgba.png", "palette.png", "deep16.png", "bitmap.bmp", "scan.tiff"]:
        image = load_rgb8(odd_files / name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    gray = load_rgb8(odd_files / "gray.png")
    assert (gray[..., 0] == gray[..., 1]).all()
    np.testing.assert_array_equal(load_rgb8(odd_files / "deep16.png")[..., 0], load_rgb8(odd_files / "gray.png")[..., 0])
    np.testing.assert_array_equal(load_rgb8(odd_files / "rgba.png"), load_rgb8(odd_files / "good.png"))


def test_alpha_is_composited_on_black():
    pixel = np.array([[[200, 100, 50, 128]]], np.uint8)
    np.testing.assert_array_equal(to_rgb8(pixel), [[[100, 50, 25]]])


@pytest.mark.parametrize("name", ["corrupt.png", "truncated.png", "notes.jpg"])
def test_unreadable_files_raise_a_clear_error(odd_files, name):
    with pytest.raises(UnreadableImageError, match=name):
        load_rgb8(odd_files / name)


def test_folder_source_skips_bad_and_small_files_with_one_warning_each(odd_files, caplog):
    report = SkipReport()
    with caplog.at_level(logging.WARNING):
        images = load_training_images(odd_files, min_side=32, report=report)
    assert sorted(i.name for i in images) == sorted(["good", "good", "gray", "rgba", "palette", "deep16", "bitmap", "scan"])
    skipped = sorted(name.rsplit("/", 1)[-1] for name, _ in report.skipped)
    assert skipped == ["corrupt.png", "notes.jpg", "tiny.png", "truncated.png"]
    assert sum("skipping" in r.message for r in caplog.records) == 4


def test_empty_or_missing_sources_fail_before_training(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_training_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySourceError):
        load_training_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="DIV2K_train_HR"):
        load_training_images(f"div2k:{tmp_path}")


def test_div2k_layout_uses_shipped_lr_when_present(tmp_path):
    hr_dir = tmp_path / "DIV2K_train_HR"
    hr_dir.mkdir()
    for index in (1, 2):
        Image.fromarray(smooth_image(64, 80, index)).save(hr_dir / f"{index:04d}.png")
    x2 = tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    x2.mkdir(parents=True)
    shipped = np.full((32, 40, 3), 7, np.uint8)
    Image.fromarray(shipped).save(x2 / "0001x2.png")
    images = load_training_images(f"div2k:{tmp_path}:train", scales=(2, 4))
    assert [i.name for i in images] == ["0001", "0002"]
    assert set(images[0].lr) == {2} and not images[1].lr
    sampler = PatchSampler(images, scales=(2,), patch_size=8, batch_size=2)
    np.testing.assert_array_equal(sampler.lr[2][0], shipped)
    np.testing.assert_array_equal(sampler.lr[2][1], make_lr(images[1].hr, 2))


def test_tfds_source_without_prepared_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build"):
        load_training_images(f"tfds:div2k@{tmp_path}")


def test_embedded_photographs_are_the_default_source():
    train = load_training_images("skimage")
    held_out = load_training_images("skimage:held_out")
    assert len(train) >= 10 and {i.name for i in held_out} == {"astronaut", "chelsea", "coffee"}
    assert not {i.name for i in train} & {i.name for i in held_out}


def test_downscaled_copies_double_the_ground_truth():
    images = [TrainingImage("a", smooth_image(40, 48))]
    both = with_downscaled_copies(images)
    assert [i.name for i in both] == ["a", "a_down2"] and both[1].hr.shape == (20, 24, 3)


@pytest.fixture
def sampler():
    images = [TrainingImage(f"img{i}", smooth_image(96 + 8 * i, 104, i)) for i in range(3)]
    return PatchSampler(images, scales=(2, 4, 8), patch_size=8, batch_size=4, seed=3)


def test_batches_have_the_right_shapes_ranges_and_dtypes(sampler):
    for step in range(12):
        lr, hr = sampler.batch(step)
        scale = sampler.scale_for_step(step)
        assert lr.shape == (4, 8, 8, 3) and hr.shape == (4, 8 * scale, 8 * scale, 3)
        assert lr.dtype == hr.dtype == np.float32
        assert 0 <= lr.min() and lr.max() <= 255 and 0 <= hr.min() and hr.max() <= 255
    assert {sampler.scale_for_step(s) for s in range(40)} == {2, 4, 8}


def test_lr_patches_are_the_bicubic_downscale_of_their_hr_patches(sampler):
    for step in range(6):
        lr, hr = sampler.batch(step)
        scale = sampler.scale_for_step(step)
        for lr_patch, hr_patch in zip(lr, hr):
            remade = imresize(hr_patch.astype(np.uint8), 1 / scale).astype(np.float32)
            # Away from the patch border, the downscaled HR patch is the LR patch (the mirror
            # padding of the patch differs from the image's real neighbours at the border).
            assert np.abs(remade[2:-2, 2:-2] - lr_patch[2:-2, 2:-2]).mean() < 2.0


def test_a_step_is_a_pure_function_of_seed_and_step(sampler):
    np.testing.assert_array_equal(sampler.batch(5)[1], sampler.batch(5)[1])
    assert not np.array_equal(sampler.batch(5)[0], sampler.batch(6)[0])
    dataset_batches = list(sampler.dataset(start_step=4).take(3).as_numpy_iterator())
    for k, (lr, hr) in enumerate(dataset_batches):
        assert lr.dtype == hr.dtype == np.float32  # cut in uint8, cast by the pipeline
        np.testing.assert_array_equal(lr, sampler.batch(4 + k)[0])
        np.testing.assert_array_equal(hr, sampler.batch(4 + k)[1])


def test_augmentation_moves_lr_and_hr_together():
    hr = smooth_image(16, 16)
    lr = make_lr(hr, 2)
    for rotations in range(4):
        for flip in (False, True):
            lr_a, hr_a = (np.zeros(np.rot90(a, rotations).shape, np.uint8) for a in (lr, hr))
            augment_into(lr, lr_a, rotations, flip)
            augment_into(hr, hr_a, rotations, flip)
            # Equal up to the uint8 rounding between MATLAB's two passes, whose order follows
            # the axes and so changes under a quarter turn.
            remade = make_lr(np.ascontiguousarray(hr_a), 2).astype(int)
            assert np.abs(remade - lr_a.astype(int)).max() <= 1


def test_images_smaller_than_one_patch_are_skipped_or_rejected():
    report = SkipReport()
    images = [TrainingImage("big", smooth_image(64, 64)), TrainingImage("small", smooth_image(30, 64))]
    sampler = PatchSampler(images, scales=(2, 4), patch_size=8, batch_size=1, report=report)
    assert [i.name for i in sampler.images] == ["big"] and report.count == 1
    with pytest.raises(EmptySourceError):
        PatchSampler(images[1:], scales=(4,), patch_size=8, batch_size=1)


def test_single_scale_dataset_has_static_shapes(sampler):
    single = PatchSampler(sampler.images, scales=(4,), patch_size=8, batch_size=2)
    spec = single.dataset().element_spec
    assert spec[0].shape == (2, 8, 8, 3) and spec[1].shape == (2, 32, 32, 3)
    assert spec[1].dtype == tf.float32


def test_scale_weights_set_how_often_each_path_is_drawn(sampler):
    weighted = PatchSampler(sampler.images, scales=(2, 4, 8), patch_size=8, batch_size=1, scale_weights=(6, 3, 1))
    drawn = np.array([weighted.scale_for_step(s) for s in range(3000)])
    np.testing.assert_allclose([(drawn == s).mean() for s in (2, 4, 8)], [0.6, 0.3, 0.1], atol=0.03)
    assert all(weighted.batch(s)[1].shape[1] == 8 * weighted.scale_for_step(s) for s in range(5))
    with pytest.raises(ValueError, match="scale_weights"):
        PatchSampler(sampler.images, scales=(2, 4), patch_size=8, batch_size=1, scale_weights=(1, 2, 3))
