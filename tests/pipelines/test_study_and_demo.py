"""The entry points end to end at a tiny scale: eusr-train-gan --demo (two stages), the study
runner's comparison table and plot, and resume through the command line."""

import json

import pytest

from eusr_perceptual.cli import study, train_gan
from eusr_perceptual.configs import demo as demo_module
from eusr_perceptual.configs.presets import PRESETS


@pytest.fixture
def two_step_demo(monkeypatch):
    """Demos of 2 steps with 4-channel networks: the pipeline, not the result, is under test."""
    monkeypatch.setattr(demo_module, "DEMO_STEPS", 2)
    tiny = {name: {**options, **{k: 4 for k in ("num_feat", "channels", "base_channels") if k in options}}
            for name, options in demo_module.TINY_NETWORKS.items()}
    monkeypatch.setattr(demo_module, "TINY_NETWORKS", tiny)


@pytest.mark.slow
def test_train_gan_demo_runs_both_stages_and_writes_everything(tmp_path, capsys, two_step_demo):
    run_dir = tmp_path / "run"
    assert train_gan.main(["--preset", "msrgan", "--demo", "--run-dir", str(run_dir), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] PSNR stage msrresnet_psnr" in printed and "[2/2] GAN stage msrgan" in printed
    assert "the trained generator against bicubic: skimage x4 (" in printed
    for name in ("generator.keras", "config.json", "log.csv", "evaluation.md"):
        assert (run_dir / "gan" / name).is_file(), name
    recorded = json.loads((run_dir / "gan" / "config.json").read_text())["config"]
    assert recorded["init_from"].endswith("psnr/generator.keras") and recorded["backbone_weights"] == "none"
    assert list((run_dir / "gan" / "saved_models").rglob("saved_model.pb"))
    # --resume continues with the recorded settings; a changed setting is refused by name.
    assert train_gan.main(["--run-dir", str(run_dir / "gan"), "--resume", "--steps", "4", "--no-eval", "--quiet"]) == 0
    record = json.loads((run_dir / "gan" / "config.json").read_text())
    assert record["config"]["steps"] == 2 and record["resumes"][0]["config"]["steps"] == 4
    capsys.readouterr()
    assert train_gan.main(["--run-dir", str(run_dir / "gan"), "--resume", "--seed", "3"]) == 2
    assert "seed: run has 0, command line asks 3" in capsys.readouterr().err


class Killed(Exception):
    """Stands for the process being killed."""


@pytest.mark.slow
def test_a_killed_two_stage_demo_resumes_with_the_same_command(tmp_path, two_step_demo, monkeypatch):
    from eusr_perceptual.training.runs import RunCheckpoint

    run_dir = tmp_path / "run"
    command = ["--preset", "msrgan", "--demo", "--run-dir", str(run_dir), "--steps", "4", "--checkpoint-every", "2",
               "--no-eval", "--quiet"]
    save = RunCheckpoint.on_epoch_end

    def killed_in_the_gan_stage(self, epoch, logs=None):
        save(self, epoch, logs)
        if "gan" in str(self.manager.directory):
            raise Killed

    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", killed_in_the_gan_stage)
    with pytest.raises(Killed):
        train_gan.main(command)
    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", save)
    psnr_log = (run_dir / "psnr" / "log.csv").read_text()
    assert train_gan.main([*command, "--resume"]) == 0
    # --steps and --checkpoint-every are honoured in both stages; the finished PSNR stage is not trained again.
    for stage in ("psnr", "gan"):
        assert sorted(p.name for p in (run_dir / stage / "checkpoints").glob("*.index")) == ["ckpt-2.index",
                                                                                            "ckpt-4.index"]
    assert (run_dir / "psnr" / "log.csv").read_text() == psnr_log
    # The GAN stage continued with its recorded settings: shrunk once (learning rates x10, not x100).
    record = json.loads((run_dir / "gan" / "config.json").read_text())
    assert record["config"]["g_learning_rate"] == pytest.approx(10 * PRESETS["msrgan"].g_learning_rate)
    assert record["resumes"][-1]["at_step"] == 2 and record["resumes"][-1]["changed"] == {}
    assert list((run_dir / "gan" / "saved_models" / "msrgan").rglob("saved_model.pb"))


def test_demo_refuses_steps_that_are_not_whole_checkpoint_intervals(tmp_path, capsys, two_step_demo):
    assert train_gan.main(["--preset", "msrgan", "--demo", "--run-dir", str(tmp_path / "run"), "--steps", "5",
                           "--checkpoint-every", "2"]) == 2
    assert "steps (5) must be a positive multiple of checkpoint_every (2)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_killed_study_resumes_and_reuses_its_finished_runs(tmp_path, capsys, two_step_demo, monkeypatch):
    from eusr_perceptual.pipelines import gan_run

    command = ["afm_p", "afm_pcsa", "--run-dir", str(tmp_path), "--steps", "2"]
    train = gan_run.run_gan

    def killed_at_the_second_preset(config, run_dir, **options):
        if run_dir.name == "afm_pcsa":
            raise Killed
        return train(config, run_dir, **options)

    monkeypatch.setattr(gan_run, "run_gan", killed_at_the_second_preset)
    with pytest.raises(Killed):
        study.main(command)
    monkeypatch.setattr(gan_run, "run_gan", train)
    capsys.readouterr()
    assert study.main(command) == 2 and "pass --resume" in capsys.readouterr().err  # one line, no traceback
    finished = {path: path.stat().st_mtime_ns for path in (tmp_path / "afm_p").rglob("*") if path.is_file()}
    assert study.main([*command, "--resume"]) == 0
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "afm_p").rglob("*") if path.is_file()} == finished
    table = (tmp_path / "study.md").read_text()
    assert "afm_p" in table and "afm_pcsa" in table


def test_study_writes_one_table_and_the_plot(tmp_path, capsys, two_step_demo):
    assert study.main(["afm_p", "afm_pcsa", "--run-dir", str(tmp_path), "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    for row in ("bicubic", "afm_p", "afm_pcsa"):
        assert row in printed
    assert (tmp_path / "study.md").is_file() and (tmp_path / "perception_distortion.png").stat().st_size > 1000


def test_pan_cascade_is_the_x2x2_route_of_an_x2_model(tiny_rrdbnet_x2):
    """Pan's conclusion: x4 as two passes of an x2 model; evaluate.py and upscale.py take it as
    the route ``x2x2`` of any x2 generator."""
    import numpy as np
    import tensorflow as tf

    from eusr_perceptual.inference import routes_of, run_route
    model = tiny_rrdbnet_x2
    assert routes_of(model) == ("x2", "x2x2")
    lr = tf.random.uniform((1, 6, 6, 3), 0, 255, seed=1)
    cascade = run_route(model, lr, "x2x2")
    assert cascade.shape == (1, 24, 24, 3)
    np.testing.assert_allclose(cascade, model(model(lr, scale=2), scale=2), rtol=1e-5, atol=1e-3)
