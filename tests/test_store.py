"""Prepared patch stores (issue 12): preparation, resumption, refusal, and streaming that gives
exactly the in-memory sampler's batches. All stores are made here from small generated images."""

import json

import numpy as np
import pytest
from PIL import Image

from eusr_perceptual.cli import prepare
from eusr_perceptual.data import store as store_module
from eusr_perceptual.data.patches import PatchSampler, augment_into, make_lr
from eusr_perceptual.data.sources import load_training_images, make_sampler
from eusr_perceptual.data.store import (
    StoreError, StoreSampler, StoreSettings, open_store, prepare_store, sub_image_positions,
)

SCALES = (2, 4)
PATCH = 8  # LR; the HR patches need 32 px at x4


def _photo(rng, height, width):
    """Noise plus a gradient, so that every crop position gives different pixels."""
    gradient = np.linspace(0, 120, width)[None, :, None] + np.linspace(0, 80, height)[:, None, None]
    return np.clip(gradient + rng.integers(0, 56, (height, width, 3)), 0, 255).astype(np.uint8)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(7)
    for name, (h, w) in {"a": (40, 52), "b": (48, 36), "c": (36, 60), "d": (44, 44), "tiny": (12, 16)}.items():
        _save(tmp_path / "photos" / f"{name}.png", _photo(rng, h, w))
    (tmp_path / "photos" / "broken.png").write_bytes(b"not a png")
    return tmp_path / "photos"


def _prepare(source, out, **settings):
    settings = {"scales": SCALES, "images_per_shard": 2, **settings}
    return prepare_store(out, StoreSettings(sources=(str(source),), **settings), workers=0, progress=False)


def _assert_same_batches(streamed, in_memory, steps):
    assert [image.name for image in streamed.images] == [image.name for image in in_memory.images]
    for step in steps:
        assert streamed.scale_for_step(step) == in_memory.scale_for_step(step)
        for mine, reference in zip(streamed.batch(step), in_memory.batch(step)):
            np.testing.assert_array_equal(mine, reference)


def test_streamed_batches_equal_the_in_memory_batches(folder, tmp_path):
    manifest = _prepare(folder, tmp_path / "store")
    assert [s[0] for s in manifest["skipped"]] == ["broken"]  # 'tiny' is stored; the samplers skip it
    assert len(manifest["shards"]) == 3 and manifest["settings"]["convention"] == "double"

    streamed = make_sampler(f"store:{tmp_path / 'store'}", SCALES, PATCH, 4, seed=3, scale_weights=(1, 2))
    in_memory = PatchSampler(load_training_images(folder, scales=SCALES, min_side=PATCH * 4), SCALES, PATCH, 4, 3,
                             scale_weights=(1, 2))
    assert isinstance(streamed, StoreSampler) and len(streamed.images) == 4
    image = streamed.images[0]
    assert not image.hr.flags.writeable and not image.hr.flags.owndata  # a view of the mapped shard
    np.testing.assert_array_equal(streamed.lr[4][0], make_lr(np.asarray(image.hr), 4))
    _assert_same_batches(streamed, in_memory, range(12))
    assert {streamed.scale_for_step(step) for step in range(12)} == set(SCALES)
    records = load_training_images(f"store:{tmp_path / 'store'}", scales=(4,), min_side=PATCH * 4)  # also a --data form
    assert [r.name for r in records] == [i.name for i in in_memory.images] and list(records[0].lr) == [4]
    np.testing.assert_array_equal(records[3].hr, in_memory.images[3].hr)

    # The tf.data pipeline from a resume step, and page release, change nothing.
    streamed.release_every = 1
    for step, (lr, hr) in zip((5, 6), streamed.dataset(start_step=5).take(2)):
        reference_lr, reference_hr = in_memory.batch(step)
        np.testing.assert_array_equal(lr.numpy(), reference_lr)
        np.testing.assert_array_equal(hr.numpy(), reference_hr)


def test_div2k_layout_uses_shipped_lr_and_stores_downscaled_copies(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "DIV2K"
    for name in ("0001", "0002", "0003"):
        _save(root / "DIV2K_train_HR" / f"{name}.png", _photo(rng, 72, 80))
    shipped = rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)  # not the bicubic LR: proves it is used
    _save(root / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png", shipped)

    manifest = _prepare(f"div2k:{root}", tmp_path / "store", downscaled_copies=2)
    names = [entry["name"] for entry in manifest["images"]]
    assert names == ["0001", "0002", "0003", "0001_down2", "0002_down2", "0003_down2"]
    assert [entry["shipped"] for entry in manifest["images"][:3]] == [[], [2], []]
    store = open_store(tmp_path / "store", scales=SCALES, downscaled_copies=2)
    np.testing.assert_array_equal(store.training_images()[1].lr[2], shipped)

    streamed = make_sampler(f"store:{tmp_path / 'store'}", SCALES, 4, 3, seed=5, downscaled_copies=2)
    in_memory = make_sampler(f"div2k:{root}", SCALES, 4, 3, seed=5, downscaled_copies=2)
    _assert_same_batches(streamed, in_memory, range(8))


def test_mismatched_partial_stale_or_old_stores_are_refused(folder, tmp_path, capsys):
    out = tmp_path / "store"
    _prepare(folder, out)
    with pytest.raises(StoreError, match=r"scales \[2, 8\] requested, the store holds \[2, 4\]"):
        open_store(out, scales=(2, 8))
    with pytest.raises(StoreError, match="resize convention 'uint8' requested"):
        open_store(out, convention="uint8")
    with pytest.raises(StoreError, match="downscaled copies 1/2 requested, the store has none"):
        make_sampler(f"store:{out}", SCALES, PATCH, 2, downscaled_copies=2)
    with pytest.raises(StoreError, match=r"prepared differently \(scales: \[2, 4\] -> \[2, 3\]"):
        _prepare(folder, out, scales=(2, 3))
    assert prepare.main([str(folder), "--out", str(out), "--scales", "2", "--quiet"]) == 2
    assert "prepared differently" in capsys.readouterr().err

    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "version": 0}))
    with pytest.raises(StoreError, match="version 0; this code reads 'eusr-patch-store' version 1"):
        open_store(out)
    (out / "manifest.json").unlink()
    with pytest.raises(StoreError, match=r"incomplete \(no manifest.json; 3 shard\(s\) finished\)"):
        open_store(out)

    _prepare(folder, out)  # brings the store back (shards kept), then a source changes
    source = folder / "b.png"
    _save(source, 255 - np.asarray(Image.open(source)))
    with pytest.raises(StoreError, match="stale: 1 source file"):
        open_store(out)
    open_store(out, check_sources=False)


def test_augmentation_is_exactly_rot90_then_flip():
    """augment_into copies through OpenCV for speed (benchmarks/data_pipeline.py); the pixels of
    numpy's rot90 and mirror, also from a strided crop as the sampler passes it."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    for patch in (image[1:6, 2:9], image[2:12, 3:17], image[:8, 4:12]):
        for rotations in range(4):
            for flip in (False, True):
                expected = np.rot90(patch, rotations)
                expected = expected[:, ::-1] if flip else expected
                out = np.zeros(expected.shape, np.uint8)
                augment_into(patch, out, rotations, flip)
                np.testing.assert_array_equal(out, expected)


class Killed(Exception):
    """Stands for the process being killed (pytest reserves KeyboardInterrupt for itself)."""


def test_interrupted_preparation_resumes_where_it_stopped(folder, tmp_path, monkeypatch):
    write_shard = store_module._prepare_shard
    calls, interrupt = [], {1}

    def interrupted_at_second_shard(root, shard, *args):
        calls.append(shard)
        if shard in interrupt:  # killed while writing: a temporary file is left behind
            interrupt.clear()
            (tmp_path / "store" / "shards" / f"{shard:05d}.npy.tmp999").write_bytes(b"half")
            raise Killed
        return write_shard(root, shard, *args)

    monkeypatch.setattr(store_module, "_prepare_shard", interrupted_at_second_shard)
    with pytest.raises(Killed):
        _prepare(folder, tmp_path / "store")
    with pytest.raises(StoreError, match="incomplete"):
        open_store(tmp_path / "store")

    calls.clear()
    resumed = _prepare(folder, tmp_path / "store")
    assert calls == [1, 2]  # shard 0 was kept
    assert not list((tmp_path / "store" / "shards").glob("*.tmp*"))
    assert _prepare(folder, tmp_path / "store") == resumed and calls == [1, 2]  # complete: nothing redone

    monkeypatch.setattr(store_module, "_prepare_shard", write_shard)
    fresh = _prepare(folder, tmp_path / "fresh")
    assert resumed["images"] == fresh["images"]
    for shard in range(3):
        name = f"shards/{shard:05d}.npy"
        assert (tmp_path / "store" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_cli_prepares_in_parallel_processes(folder, tmp_path, capsys):
    _prepare(folder, tmp_path / "serial")
    assert prepare.main([str(folder), "--out", str(tmp_path / "parallel"), "--scales", "2", "4",
                         "--images-per-shard", "2", "--workers", "2"]) == 0
    output = capsys.readouterr().out
    assert "5 images in 3 shards" in output and f"--data store:{tmp_path / 'parallel'}" in output
    for shard in range(3):
        name = f"shards/{shard:05d}.npy"
        assert (tmp_path / "parallel" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()


def test_sub_images_follow_basicsr_positions_aligned_to_every_scale(tmp_path):
    # BasicSR: range(0, 100 - 48 + 1, 24) = 0, 24, 48, plus 100 - 48 = 52 for the remainder.
    assert sub_image_positions(100, 48, 24, 4) == [0, 24, 48, 52]
    assert sub_image_positions(100, 48, 24, 8) == [0, 24, 48]  # 52 -> 48 (multiple of 8)
    assert sub_image_positions(40, 48, 24, 4) == []

    hr = _photo(np.random.default_rng(2), 56, 40)
    _save(tmp_path / "photos" / "p.png", hr)
    manifest = _prepare(tmp_path / "photos", tmp_path / "store", crop=32, step=16)
    assert manifest["settings"]["crop"] == 32
    pieces = open_store(tmp_path / "store").training_images()
    # rows 0, 16, 24 (56 - 32); columns 0, 8 (40 - 32): six sub-images
    assert [p.name for p in pieces] == [f"p_s{k:03d}" for k in range(1, 7)]
    np.testing.assert_array_equal(pieces[5].hr, hr[24:56, 8:40])
    np.testing.assert_array_equal(pieces[5].lr[4], make_lr(hr, 4)[6:14, 2:10])
    assert np.load(tmp_path / "store" / "shards" / "00000.npy").size == 6 * 32 * 32 * 3 * (1 + 1 / 4 + 1 / 16)


def test_pretraining_streams_from_a_store_exactly_as_from_the_folder(folder, tmp_path, monkeypatch):
    """The trainer itself (``run_pretraining``) takes ``store:``: a StoreSampler, no LR made at
    start, the same weights as the in-memory run; a store of another resize convention is refused."""
    import keras

    from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS
    from eusr_perceptual.data import patches
    from eusr_perceptual.models.eusr import EUSRConfig
    from eusr_perceptual.training.pretrain_run import run_pretraining

    _prepare(folder, tmp_path / "store")
    config = PRETRAIN_PRESETS["demo"].replace(
        model=EUSRConfig(channels=4, shared_blocks=1, upscale_blocks=1, scales=SCALES, scale_aware_blocks=1),
        steps=2, checkpoint_every=2, batch_size=2, patch_size=PATCH, jit_compile=False, scale_weights=None)
    in_memory = run_pretraining(config.replace(data=str(folder)), tmp_path / "folder_run", eval_data=None, verbose=0)

    def no_lr_making(*args, **kwargs):
        raise AssertionError("a store run must not make LR images")

    monkeypatch.setattr(patches, "make_lr", no_lr_making)
    streamed = run_pretraining(config.replace(data=f"store:{tmp_path / 'store'}"), tmp_path / "store_run",
                               eval_data=None, verbose=0)
    for a, b in zip(in_memory.weights, streamed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(StoreError, match="resize convention 'uint8' requested"):
        run_pretraining(config.replace(data=f"store:{tmp_path / 'store'}", lr_convention="uint8"), tmp_path / "u8",
                        eval_data=None, verbose=0)
