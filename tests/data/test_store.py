"""Prepared patch stores (issue 12): preparation, resumption, refusal, and streaming that gives
exactly the in-memory sampler's batches. All stores are made here from small generated images."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eusr_perceptual.cli import prepare
from eusr_perceptual.data import store_prepare as store_module
from eusr_perceptual.data.patches import PatchSampler, augment_into
from eusr_perceptual.resize import make_lr
from eusr_perceptual.data.samplers import load_training_images, make_sampler
from eusr_perceptual.data.store import STORE_VERSION, StoreError, StoreSampler, StoreSettings, open_store
from eusr_perceptual.data.store_prepare import prepare_store, sub_image_positions
from eusr_perceptual.data.store_integrity import DamagedStoreError

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
    with pytest.raises(StoreError, match=f"version 0; this code reads 'eusr-patch-store' version {STORE_VERSION}"):
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
    from eusr_perceptual.pipelines.pretrain_run import run_pretraining

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


# ----------------------------------------------------------------------------- damage (issue 19)


def _edit(field_path, value):
    """A damage that sets one manifest field (a path of keys and indices) to ``value``."""

    def damage(root, manifest):
        *parents, last = field_path
        target = manifest
        for key in parents:
            target = target[key]
        target[last] = value(target[last]) if callable(value) else value
        return json.dumps(manifest)

    return damage


def _swap_hr_and_lr(root, manifest):
    image = manifest["images"][0]
    image["hr"], image["lr"]["2"] = image["lr"]["2"], image["hr"]
    return json.dumps(manifest)


def _transpose_consistently(root, manifest):
    """Height and width swapped in the HR and every LR of one image: the schema and the layout
    still hold, only the manifest's own digest tells."""
    image = manifest["images"][0]
    for place in [image["hr"], *image["lr"].values()]:
        place[1], place[2] = place[2], place[1]
    return json.dumps(manifest)


def _shard_outside(path_of):
    def damage(root, manifest):
        outside = root.parent / "outside.npy"
        outside.write_bytes((root / "shards" / "00000.npy").read_bytes())  # old code read it without a word
        manifest["shards"][0]["file"] = path_of(root, outside)
        return json.dumps(manifest)

    return damage


def _symlinked_shard(root, manifest):
    outside = root.parent / "outside.npy"
    shard = root / "shards" / "00000.npy"
    outside.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(outside)
    return None


DAMAGES = {
    "truncated": (lambda root, manifest: json.dumps(manifest)[:200], "not readable JSON"),
    "empty": (lambda root, manifest: "", "not readable JSON"),
    "a list": (lambda root, manifest: json.dumps([manifest]), "manifest.json is a list, expected an object"),
    "missing key": (lambda root, manifest: json.dumps({k: v for k, v in manifest.items() if k != "images"}),
                    "manifest.json lacks 'images'"),
    "unknown setting": (_edit(["settings", "colour"], "rgb"), "settings has unknown key 'colour'"),
    "swapped HR and LR": (_swap_hr_and_lr, r"images\[0\].lr.2 is 52x40, but its HR 26x20 needs 13x10 at x2"),
    "swapped height and width": (_edit(["images", 0, "hr"], lambda p: [p[0], p[2], p[1]]),
                                 r"images\[0\].lr.2 is 26x20, but its HR 40x52 needs 20x26 at x2"),
    "swapped shapes consistently": (_transpose_consistently, "does not match its manifest_sha256"),
    "negative offset": (_edit(["images", 0, "hr", 0], -1), r"images\[0\].hr offset is -1, expected 0 to"),
    "huge offset": (_edit(["images", 0, "hr", 0], 2**62), r"images\[0\].hr offset is 4611686018427387904"),
    "offset past the shard": (_edit(["images", 0, "hr", 0], 10**6), r"images\[0\].hr ends at byte 1006240, past"),
    "string offset": (_edit(["images", 0, "hr", 0], "0"), r"images\[0\].hr offset is a string"),
    "shard index out of range": (_edit(["images", 0, "shard"], 3), r"images\[0\].shard is 3, expected 0 to 2"),
    "shard index -1": (_edit(["images", 0, "shard"], -1), r"images\[0\].shard is -1, expected 0 to 2"),
    "LR offset into HR bytes": (_edit(["images", 0, "lr", "2", 0], lambda offset: offset - 600),
                                "the LR x2 of image 'a' at byte 5640 of shards/00000.npy overlaps the HR of image 'a'"),
    "incomplete": (_edit(["complete"], False), "complete is false: the store was not finished"),
    "edited convention": (_edit(["settings", "convention"], "uint8"), "its key is not the SHA-256 of its format"),
    "shard path with ../": (_shard_outside(lambda root, outside: "../outside.npy"),
                            r"shards\[0\].file is \"../outside.npy\", expected 'shards/00000.npy'"),
    "absolute shard path": (_shard_outside(lambda root, outside: str(outside)), r"shards\[0\].file is \"/"),
    "shard symlinked outside": (_symlinked_shard, "shards/00000.npy leads outside the store"),
    "1000 flipped bytes": (lambda root, manifest: _flip_bytes(root / "shards" / "00001.npy", 2000, 1000),
                           "shards/00001.npy does not match its recorded checksum"),
}


def _flip_bytes(path, start, count):
    data = bytearray(path.read_bytes())
    data[start:start + count] = bytes(255 - b for b in data[start:start + count])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def prepared_store(tmp_path_factory):
    """A prepared store copied by each damage test (preparing it once keeps them fast)."""
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(7)
    for name, (h, w) in {"a": (40, 52), "b": (48, 36), "c": (36, 60), "d": (44, 44), "e": (40, 40)}.items():
        _save(root / "photos" / f"{name}.png", _photo(rng, h, w))
    _prepare(root / "photos", root / "store")
    return root / "store"


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_store_is_refused_with_one_message(prepared_store, tmp_path, damage, capsys):
    import shutil

    out = tmp_path / "store"
    shutil.copytree(prepared_store, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images"][0]["name"] == "a" and manifest["images"][0]["hr"] == [0, 40, 52]  # what the edits assume
    open_store(out)  # intact before the damage
    make_damage, expected = DAMAGES[damage]
    text = make_damage(out, manifest)
    if text is not None:
        (out / "manifest.json").write_text(text)

    with pytest.raises(DamagedStoreError, match=rf"^store {out} is damaged: .*{expected}") as error:
        open_store(out)
    assert "\n" not in str(error.value)
    with pytest.raises(DamagedStoreError, match=expected):  # what every trainer opens
        make_sampler(f"store:{out}", SCALES, PATCH, 2)
    assert prepare.main(["--verify", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: store {out} is damaged: ")


def test_verify_reads_every_byte_and_a_rerun_repairs(folder, tmp_path, monkeypatch, capsys):
    """At open only a sample of each shard is hashed (here 2 blocks of 64 bytes); a change
    outside the sample is caught by --verify, and the same command with --verify repairs it."""
    from eusr_perceptual.data import store_integrity

    monkeypatch.setattr(store_integrity, "SAMPLE_BLOCKS", 2)
    monkeypatch.setattr(store_integrity, "SAMPLE_BLOCK_BYTES", 64)
    out = tmp_path / "store"
    _prepare(folder, out)
    shard = out / "shards" / "00001.npy"
    original = shard.read_bytes()
    assert len(original) > 3000
    _flip_bytes(shard, 1000, 1000)
    open_store(out)  # the premise: the sample does not see it
    assert prepare.main(["--verify", "--out", str(out)]) == 2
    assert "shards/00001.npy does not match its recorded SHA-256" in capsys.readouterr().err

    arguments = [str(folder), "--out", str(out), "--scales", "2", "4", "--images-per-shard", "2", "--workers", "0",
                 "--quiet"]
    assert prepare.main(arguments) == 0 and shard.read_bytes() != original  # without --verify: kept as it is
    assert prepare.main([*arguments, "--verify"]) == 0 and shard.read_bytes() == original
    assert prepare.main(["--verify", "--out", str(out)]) == 0
    assert f"store {out} is intact: 5 images, 3 shards" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_status:  # neither sources nor --verify: a usage error
        prepare.main(["--out", str(out)])
    assert exit_status.value.code == 2 and "give at least one source" in capsys.readouterr().err


def test_damaged_metadata_is_rewritten_or_refused_when_preparing(folder, tmp_path, monkeypatch):
    out = tmp_path / "store"
    _prepare(folder, out)
    calls = []
    write_shard = store_module._prepare_shard
    monkeypatch.setattr(store_module, "_prepare_shard", lambda root, shard, *a: calls.append(shard) or write_shard(root, shard, *a))

    (out / "manifest.json").write_text("{")  # a damaged manifest is rewritten from the shard markers
    _prepare(folder, out)
    assert calls == [] and len(open_store(out)) == 5
    (out / "shards" / "00001.json").write_text("[]")  # a damaged marker: that shard is prepared again
    marker = json.loads((out / "shards" / "00002.json").read_text())
    (out / "shards" / "00002.json").write_text(json.dumps({**marker, "bytes": -1}))
    _prepare(folder, out)
    assert calls == [1, 2] and len(open_store(out)) == 5

    (out / "plan.json").write_text('{"key": ')
    with pytest.raises(DamagedStoreError, match=rf"store {out} is damaged: plan.json is not readable JSON .*--overwrite"):
        _prepare(folder, out)
    prepare_store(out, StoreSettings((str(folder),), SCALES, images_per_shard=2), workers=0, progress=False,
                  overwrite=True)
    assert len(open_store(out)) == 5


def test_a_second_preparation_of_the_same_folder_is_refused(folder, tmp_path, monkeypatch, capsys):
    write_shard = store_module._prepare_shard
    refusals = []

    def shard_with_a_second_prepare(root, shard, *args):
        if shard == 1:  # while the first one runs
            with pytest.raises(StoreError, match=rf"{tmp_path / 'store'} is being prepared by another eusr-prepare "
                                                 rf"\(process {os.getpid()}\); wait for it"):
                _prepare(folder, tmp_path / "store")
            assert prepare.main([str(folder), "--out", str(tmp_path / "store"), "--quiet"]) == 2
            refusals.append(capsys.readouterr().err)
        return write_shard(root, shard, *args)

    monkeypatch.setattr(store_module, "_prepare_shard", shard_with_a_second_prepare)
    _prepare(folder, tmp_path / "store")
    assert len(refusals) == 1 and "is being prepared by another eusr-prepare" in refusals[0]
    assert len(open_store(tmp_path / "store")) == 5
    monkeypatch.setattr(store_module, "_prepare_shard", write_shard)
    _prepare(folder, tmp_path / "store")  # the lock went with the first one


def test_metadata_files_get_the_umask_permissions(folder, tmp_path):
    """Like the shards: 0o666 less the umask (mkstemp gave the JSON files 0o600)."""
    from eusr_perceptual.files import write_json_atomically

    previous = os.umask(0o027)
    try:
        _prepare(folder, tmp_path / "store")
        write_json_atomically(tmp_path / "run" / "config.json", {"a": 1})  # a run folder's config.json
    finally:
        os.umask(previous)
    files = [path for path in (tmp_path / "store").rglob("*") if path.is_file()] + [tmp_path / "run" / "config.json"]
    names = {path.relative_to(tmp_path).as_posix() for path in files}
    assert {path.relative_to(tmp_path).as_posix(): oct(path.stat().st_mode & 0o777) for path in files} == \
        {name: oct(0o640) for name in names}
    assert {"store/manifest.json", "store/plan.json", "store/prepare.lock", "store/shards/00000.json",
            "store/shards/00000.npy", "run/config.json"} <= names
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"a": 1}
    assert not list((tmp_path / "run").glob("*.tmp"))


_BLOCKING_HOOK = '''
import os, sys, time


def _block_on_slow_image(event, args):
    """Holds the worker that opens slow.png, after saying so (stands for a long shard)."""
    if event == "open" and str(args[0]).endswith("slow.png"):
        open(os.environ["SLOW_IMAGE_OPENED"], "w").close()
        time.sleep(600)


sys.addaudithook(_block_on_slow_image)
'''


def _live_processes_in_group(group):
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(process_group) == group and state != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_a_killed_preparation_leaves_no_worker_running(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(5)
    for name in ("a", "b", "slow"):
        _save(tmp_path / "photos" / f"{name}.png", _photo(rng, 24, 24))
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(_BLOCKING_HOOK)  # runs in every Python process started
    opened = tmp_path / "slow_opened"
    env = {**os.environ, "SLOW_IMAGE_OPENED": str(opened),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "eusr_perceptual.cli.prepare", str(tmp_path / "photos"), "--out",
               str(tmp_path / "store"), "--scales", "2", "--images-per-shard", "1", "--workers", "2", "--quiet"]
    main = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # up to 2 minutes: two Python processes import TensorFlow
            if opened.exists() or main.poll() is not None:
                break
            time.sleep(0.1)
        assert opened.exists(), "no worker reached the slow image"
        workers = [pid for pid in _live_processes_in_group(main.pid) if pid != main.pid]
        assert workers  # the premise: eusr-prepare has processes besides itself
        main.send_signal(signal.SIGKILL)
        main.wait()
        for _ in range(300):
            if not _live_processes_in_group(main.pid):
                break
            time.sleep(0.1)
        assert _live_processes_in_group(main.pid) == []
    finally:
        main.kill()
        for pid in _live_processes_in_group(main.pid):
            os.kill(pid, signal.SIGKILL)
