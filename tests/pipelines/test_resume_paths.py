"""Resume paths a user can follow (issue 19, item 4): a NaN stop is recovered by resuming with a
lower learning rate, which reaches the restored optimizers and is recorded; a second resume
continues with what the first changed; a resumed run exports under its own preset; a resume on
changed data is refused, naming the data. The demo and study paths are in test_study_and_demo.py."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.cli import finetune_4pp, train_gan
from eusr_perceptual.cli.gan_flags import gan_config_from_args
from eusr_perceptual.configs.presets import FOURPP_PRESETS, PRESETS
from eusr_perceptual.data.identity import DataChangedError, data_identity
from eusr_perceptual.pipelines.gan_run import build_gan_trainer, run_gan
from eusr_perceptual.training.runs import NonFiniteLossError, RunOptions, fit_run
from helpers import make_dataset, tiny_preset

CONFIG = tiny_preset(PRESETS["srgan_mse"]).replace(steps=1, checkpoint_every=1, g_learning_rate=1e-3,
                                                   d_learning_rate=2e-3)


def fit(config, run_dir, steps, resume, dataset=make_dataset(8, 32)):
    trainer = build_gan_trainer(config)
    fit_run(trainer, dataset, RunOptions(run_dir, steps, 1, resume=resume, tensorboard=False), config=config,
            checkpoint_objects=trainer.checkpoint_objects(), verbose=0)
    return trainer


@pytest.mark.slow
def test_a_nan_stop_is_recovered_by_resuming_with_lower_learning_rates(tmp_path):
    fit(CONFIG, tmp_path, 1, False)
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    # The premise: the checkpoint holds the generator's learning rate the run started with.
    assert tf.train.load_variable(checkpoint, "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE") == np.float32(1e-3)

    def poisoned(start_step):
        return make_dataset(8, 32)(start_step).map(lambda lr, hr: (lr, hr * np.nan))

    with pytest.raises(NonFiniteLossError) as stop:
        fit(CONFIG, tmp_path, 2, True, poisoned)
    assert "run again with --resume and a lower --g-learning-rate / --d-learning-rate" in str(stop.value)

    lower = CONFIG.replace(steps=2, g_learning_rate=1e-4, d_learning_rate=5e-4)
    trainer = fit(lower, tmp_path, 2, True)
    assert float(trainer.optimizer.learning_rate) == pytest.approx(1e-4)
    assert float(trainer.d_optimizer.learning_rate) == pytest.approx(5e-4)
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["config"]["g_learning_rate"] == 1e-3  # the original record is kept
    assert record["resumes"][-1]["changed"] == {"g_learning_rate": {"from": 1e-3, "to": 1e-4},
                                                "d_learning_rate": {"from": 2e-3, "to": 5e-4},
                                                "steps": {"from": 1, "to": 2}}


def test_a_second_resume_continues_with_what_the_first_changed(tmp_path):
    started = FOURPP_PRESETS["4pp_eusr"].replace(steps=10, checkpoint_every=5)
    resumed = started.replace(steps=20, g_learning_rate=1e-6)
    (tmp_path / "config.json").write_text(json.dumps(
        {"config": started.to_dict(), "run": {}, "resumes": [{"at_step": 10, "config": resumed.to_dict()}]}))
    args = finetune_4pp.parse_args(["--run-dir", str(tmp_path), "--resume"])
    assert gan_config_from_args(args, FOURPP_PRESETS) == resumed


@pytest.fixture
def runs_started(monkeypatch):
    """Records ``(config, run_dir, options)`` of every run_gan call instead of training."""
    calls = []
    monkeypatch.setattr("eusr_perceptual.pipelines.gan_run.run_gan",
                        lambda config, run_dir, **options: calls.append((config, run_dir, options)))
    return calls


def recorded_run(folder, config, with_preset=True):
    record = config.to_dict()
    if not with_preset:
        del record["preset"]  # written before presets were recorded
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"config": record, "run": {}}))
    return folder


def test_runs_export_under_their_own_preset(tmp_path, runs_started):
    run = recorded_run(tmp_path / "srgan", PRESETS["srgan_vgg54"].replace(preset="srgan_vgg54"))
    assert train_gan.main(["--run-dir", str(run), "--resume", "--no-eval"]) == 0  # --preset's default is esrgan
    assert finetune_4pp.main(["--preset", "4pp_eusr_alpha_r_0.3", "--run-dir", str(tmp_path / "new"), "--no-eval"]) == 0
    old = recorded_run(tmp_path / "old", FOURPP_PRESETS["4pp_eusr_without_lg"], with_preset=False)
    assert finetune_4pp.main(["--run-dir", str(old), "--resume", "--no-eval"]) == 0
    assert [options["export_name"] for _, _, options in runs_started] == [
        "srgan_vgg54", "4pp_eusr_alpha_r_0.3", "4pp_eusr_without_lg"]
    assert finetune_4pp.main(["--run-dir", str(old), "--resume", "--export-name", "mine", "--no-eval"]) == 0
    assert runs_started[-1][2]["export_name"] == "mine"


def write_photos(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"p{index}.png")


def test_data_identity_follows_the_files_not_the_folder(tmp_path):
    write_photos(tmp_path / "a", 3)
    first = data_identity(tmp_path / "a", (4,))
    (tmp_path / "a").rename(tmp_path / "b")  # the same files elsewhere are the same data
    assert data_identity(tmp_path / "b", (4,))["digest"] == first["digest"]
    write_photos(tmp_path / "b", 4)
    assert data_identity(tmp_path / "b", (4,))["digest"] != first["digest"]
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"key": "k1", "shards": [], "images": [], "seconds": 1.0}))
    prepared = data_identity(f"store:{store}", (4,))
    (store / "manifest.json").write_text(json.dumps({"key": "k1", "shards": [], "images": [], "seconds": 9.0}))
    assert data_identity(f"store:{store}", (4,))["digest"] == prepared["digest"]  # the same store prepared again
    (store / "manifest.json").write_text(json.dumps({"key": "k2", "shards": [], "images": [], "seconds": 1.0}))
    assert data_identity(f"store:{store}", (4,))["digest"] != prepared["digest"]


def test_a_resume_on_changed_data_is_refused_naming_it(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, 3)
    config = tiny_preset(PRESETS["msrresnet_psnr"]).replace(data=str(photos), steps=1, checkpoint_every=1)
    options = dict(export_dir=None, eval_data=None, verbose=0)
    run_gan(config, tmp_path / "run", **options)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert recorded["data"] == str(photos) and recorded["what"].startswith("3 images")
    run_gan(config.replace(steps=2), tmp_path / "run", resume=True, **options)  # the same data: continues
    (photos / "p2.png").unlink()
    with pytest.raises(DataChangedError, match=re.escape(f"data behind --data {photos} changed since the run started: "
                                                         "it held 3 images")):
        run_gan(config.replace(steps=3), tmp_path / "run", resume=True, **options)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")
