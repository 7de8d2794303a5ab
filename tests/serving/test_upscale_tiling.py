"""Tiled inference, self-ensemble, routes, model loading and scripts/upscale.py."""

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.data.images import decode_pixels, read_image
from eusr_perceptual.inference import (
    check_route,
    make_tile_function,
    route_factor,
    routes_of,
    run_route,
    tile_boxes,
    upscale_decoded,
    upscale_image,
)
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.loading import GeneratorLoadError, load_generator
from eusr_perceptual.resize import imresize, round_to_uint8_tf, to_uint8_matlab

REPO = Path(__file__).resolve().parents[2]
# Receptive-field radius of the tiny EUSR's x4 path in LR pixels is about 33 (x8: 36): an
# overlap of 40 makes tiles see everything the whole image would.
FULL_CONTEXT = 40


@pytest.fixture(scope="module")
def tiny_eusr():
    keras.utils.set_random_seed(3)
    model = EUSR(EUSRConfig(channels=8, shared_blocks=2, scales=(2, 4, 8)))
    model.build()
    return model


def test_tile_cores_partition_the_image_and_contexts_stay_inside():
    for length, tile, overlap in [(1, 4, 2), (10, 4, 3), (37, 16, 5), (32, 16, 0), (5, 100, 8)]:
        boxes = tile_boxes(length, tile, overlap)
        cores = [i for _, _, a, b in boxes for i in range(a, b)]
        assert cores == list(range(length))
        for start, stop, core_start, core_stop in boxes:
            assert 0 <= start <= core_start < core_stop <= stop <= length
            assert core_start - start == min(overlap, core_start) and stop - core_stop == min(overlap, length - core_stop)
    with pytest.raises(ValueError):
        tile_boxes(10, 0, 2)


@pytest.mark.parametrize("route", ["x4", "x2x2", "x8down"])
def test_tiled_output_equals_whole_image_output(tiny_eusr, route):
    lr = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    whole = upscale_image(tiny_eusr, lr, route, tile=None)
    tiled = upscale_image(tiny_eusr, lr, route, tile=12, overlap=FULL_CONTEXT)
    assert tiled.shape == whole.shape == (96, 120, 3) and tiled.dtype == np.uint8
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # within 1/255
    # The whole-image path is the model's float output rounded like MATLAB's uint8().
    expected = round_to_uint8_tf(run_route(tiny_eusr, tf.constant(lr[None], tf.float32), route))[0].numpy()
    assert np.abs(whole.astype(int) - expected.astype(int)).max() <= 1


def test_short_overlap_stays_within_1_level_away_from_borders(tiny_eusr):
    lr = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    whole = upscale_image(tiny_eusr, lr, "x4", tile=None)
    tiled = upscale_image(tiny_eusr, lr, "x4", tile=16, overlap=12)
    inner = np.abs(tiled.astype(int) - whole.astype(int))[16:-16, 16:-16]
    assert inner.max() <= 1


def test_self_ensemble_is_the_mean_over_the_eight_dihedral_transforms(tiny_x4_eusr):
    lr = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    ensembled = upscale_image(tiny_x4_eusr, lr, "x4", tile=None, self_ensemble=True)
    outputs = []
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(lr, k)
            x = x[:, ::-1] if flip else x
            y = tiny_x4_eusr(tf.constant(np.ascontiguousarray(x)[None], tf.float32), scale=4)[0].numpy()
            y = y[:, ::-1] if flip else y
            outputs.append(np.rot90(y, -k))
    expected = round_to_uint8_tf(np.mean(outputs, axis=0))
    assert np.abs(ensembled.astype(int) - expected.numpy().astype(int)).max() <= 1
    assert not np.array_equal(ensembled, upscale_image(tiny_x4_eusr, lr, "x4", tile=None))


def test_routes_follow_the_models_paths(tiny_eusr, tiny_x4_eusr):
    assert routes_of(tiny_eusr) == ("x2", "x4", "x8", "x2x2", "x8down")
    assert routes_of(tiny_x4_eusr) == ("x4",)
    assert [route_factor(r) for r in ("x2", "x8", "x2x2", "x8down")] == [2, 8, 4, 4]
    with pytest.raises(ValueError, match="no x2x2 route; it supports x4"):
        check_route(tiny_x4_eusr, "x2x2")
    with pytest.raises(ValueError, match="unknown upscaling route"):
        route_factor("bilinear")
    with pytest.raises(ValueError, match="HxWx3"):
        upscale_image(tiny_x4_eusr, np.zeros((4, 4), np.uint8))
    lr = np.zeros((6, 5, 3), np.uint8)
    run = make_tile_function(tiny_x4_eusr, "x4")
    assert upscale_image(tiny_x4_eusr, lr, tile=4, overlap=2, tile_function=run).shape == (24, 20, 3)


def test_load_generator_accepts_keras_files_and_run_folders(tmp_path, tiny_x4_eusr, tiny_x4_keras):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(tiny_x4_keras, run_dir / "generator.keras")
    x = np.random.default_rng(0).uniform(0, 255, (1, 5, 6, 3)).astype(np.float32)
    for path in (run_dir, run_dir / "generator.keras"):
        loaded = load_generator(path)
        assert loaded.scales == (4,)
        np.testing.assert_allclose(loaded(x, scale=4), tiny_x4_eusr(x, scale=4), atol=1e-4)
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "absent.keras")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(GeneratorLoadError, match="expected a .keras file"):
        load_generator(tmp_path / "notes.txt")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(GeneratorLoadError, match="has not finished"):
        load_generator(tmp_path / "empty")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / "other.keras")
    with pytest.raises(GeneratorLoadError, match="not a generator"):
        load_generator(tmp_path / "other.keras")


def test_upscale_script_writes_pngs_and_reports_unreadable_files(tmp_path, tiny_x4_keras, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 256, (5, 6), dtype=np.uint8)).save(photos / "sub" / "b.jpg")
    (photos / "broken.png").write_bytes(b"not a png")
    from eusr_perceptual.cli import upscale as script

    out = tmp_path / "out"
    status = script.main([str(tiny_x4_keras), str(photos), "--out", str(out), "--tile", "4", "--overlap", "2"])
    captured = capsys.readouterr()
    assert status == 1 and "broken.png" in captured.err and "2 upscaled, 1 failed" in captured.out
    a, b = np.asarray(Image.open(out / "a_x4.png")), np.asarray(Image.open(out / "sub" / "b_x4.png"))
    assert a.shape == (36, 28, 3) and a.dtype == np.uint8 and b.shape == (20, 24)  # b.jpg is grayscale
    assert script.main([str(tiny_x4_keras), str(photos / "a.png"), "--out", str(out), "--route", "x8down"]) == 2
    assert "no x8down route" in capsys.readouterr().err
    assert script.main([str(tiny_x4_keras), str(tmp_path / "missing.png")]) == 2


# ---------------------------------------------------------------------------------------------
# What upscale.py writes: the kind of the file kept, unique names, checked output folder.


def run_upscale(*argv):
    from eusr_perceptual.cli import upscale as script

    return script.main([str(a) for a in argv])


def test_grayscale_stays_gray_and_alpha_is_kept(tmp_path, tiny_x4_eusr, tiny_x4_keras):
    rng = np.random.default_rng(6)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([gray, gray[::-1]])).save(tmp_path / "graya.png")
    out = tmp_path / "out"
    assert run_upscale(tiny_x4_keras, tmp_path / "gray.png", tmp_path / "rgba.png", tmp_path / "graya.png", "--out", out) == 0

    written = Image.open(out / "gray_x4.png")
    assert written.mode == "L" and written.size == (20, 24)
    colour = upscale_image(tiny_x4_eusr, np.repeat(gray[..., None], 3, axis=-1), tile=None)
    assert not (colour[..., 0] == colour[..., 1]).all()  # the model does tint a gray input...
    np.testing.assert_array_equal(np.asarray(written), to_uint8_matlab(colour.mean(axis=-1)))  # ...the file is gray

    written = Image.open(out / "rgba_x4.png")
    assert written.mode == "RGBA" and written.size == (28, 20)
    pixels = np.asarray(written)
    np.testing.assert_array_equal(pixels[..., 3], imresize(rgba[..., 3], scale=4))  # MATLAB bicubic alpha
    np.testing.assert_array_equal(pixels[..., :3], upscale_image(tiny_x4_eusr, rgba[..., :3], tile=None))  # straight colour

    written = Image.open(out / "graya_x4.png")
    assert written.mode == "LA" and np.array_equal(np.asarray(written)[..., 1], imresize(gray[::-1].copy(), scale=4))


def test_upscale_decoded_returns_what_pil_writes_back(tiny_eusr):
    rng = np.random.default_rng(7)
    gray = decode_pixels(rng.integers(0, 256, (4, 4), dtype=np.uint8))
    assert upscale_decoded(tiny_eusr, gray, "x2", tile=None).shape == (8, 8)
    rgba = decode_pixels(rng.integers(0, 256, (4, 3, 4), dtype=np.uint8))
    assert upscale_decoded(tiny_eusr, rgba, "x2x2", tile=None).shape == (16, 12, 4)


def test_exif_orientation_is_applied_before_upscaling(tmp_path, tiny_x4_keras):
    pixels = np.random.default_rng(8).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "portrait.png", exif=exif.tobytes())
    shutil.copy(tiny_x4_keras, tmp_path / "model.keras")
    assert run_upscale(tmp_path / "model.keras", tmp_path / "portrait.png", "--out", tmp_path / "out") == 0
    np.testing.assert_array_equal(read_image(tmp_path / "portrait.png").rgb, np.rot90(pixels, -1))
    assert Image.open(tmp_path / "out" / "portrait_x4.png").size == (12, 20)


def test_same_stem_inputs_get_distinct_names_and_nothing_is_overwritten(tmp_path, tiny_x4_keras, capsys):
    rng = np.random.default_rng(9)
    photos = tmp_path / "photos"
    photos.mkdir()
    first, second = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), rng.integers(0, 256, (6, 3, 3), dtype=np.uint8)
    Image.fromarray(first).save(photos / "photo.png")
    Image.fromarray(second).save(photos / "photo.bmp")
    Image.fromarray(first).save(photos / "other.png")
    shutil.copy(tiny_x4_keras, tmp_path / "model.keras")
    out = tmp_path / "out"
    assert run_upscale(tmp_path / "model.keras", photos, photos / "other.png", "--out", out) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["other_x4.png", "photo_bmp_x4.png", "photo_png_x4.png"]
    assert Image.open(out / "photo_png_x4.png").size == (20, 16) and Image.open(out / "photo_bmp_x4.png").size == (12, 24)
    assert "3 upscaled, 0 failed" in printed and "replaced" not in printed  # other.png was given twice: done once

    assert run_upscale(tmp_path / "model.keras", photos / "other.png", "--out", out) == 0
    assert "replaced the earlier file" in capsys.readouterr().out

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    Image.fromarray(first).save(tmp_path / "a" / "x.png")
    Image.fromarray(second).save(tmp_path / "b" / "x.png")
    fresh = tmp_path / "fresh"
    assert run_upscale(tmp_path / "model.keras", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", fresh) == 2
    error = capsys.readouterr().err
    assert "same output file" in error and "a/x.png" in error and "b/x.png" in error and not fresh.exists()


def test_no_input_is_replaced_and_out_may_not_lie_in_an_input_folder(tmp_path, tiny_x4_keras, capsys):
    shutil.copy(tiny_x4_keras, tmp_path / "model.keras")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(8)
    Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)).save(photos / "a_x4.png")  # the user's photo
    kept = (photos / "a_x4.png").read_bytes()
    for out in (photos, photos / "upscaled"):
        assert run_upscale(tmp_path / "model.keras", photos, "--out", out) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"--out {out} is inside the input folder {photos}" in error
    assert run_upscale(tmp_path / "model.keras", photos / "a.png", photos / "a_x4.png", "--out", photos) == 2
    error = capsys.readouterr().err
    assert f"the output of {photos / 'a.png'} would replace the input file {photos / 'a_x4.png'}" in error
    assert (photos / "a_x4.png").read_bytes() == kept and sorted(p.name for p in photos.iterdir()) == ["a.png", "a_x4.png"]
    # Beside the inputs, with no name of an input, is fine.
    assert run_upscale(tmp_path / "model.keras", photos / "a.png", "--out", tmp_path / "out") == 0


def test_a_bad_output_folder_is_a_one_line_error(tmp_path, tiny_x4_keras, capsys):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "in.png")
    shutil.copy(tiny_x4_keras, tmp_path / "model.keras")
    (tmp_path / "taken").write_text("a file")
    cases = {tmp_path / "taken": "is a file, expected a folder", tmp_path / "taken" / "sub": "cannot be created"}
    for out, message in cases.items():
        assert run_upscale(tmp_path / "model.keras", tmp_path / "in.png", "--out", out) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: --out") and message in error and error.count("\n") == 1
