"""The entry points end to end at a tiny scale: eusr-train-gan --demo (two stages), the study
runner's comparison table and plot, and resume through the command line."""

import json

import pytest

from eusr_perceptual.cli import study, train_gan
from eusr_perceptual.configs import demo as demo_module


@pytest.fixture
def two_step_demo(monkeypatch):
    """Demos of 2 steps with 4-channel networks: the pipeline, not the result, is under test."""
    monkeypatch.setattr(demo_module, "DEMO_STEPS", 2)
    tiny = {name: {**options, **{k: 4 for k in ("num_feat", "channels", "base_channels") if k in options}}
            for name, options in demo_module.TINY_NETWORKS.items()}
    monkeypatch.setattr(demo_module, "TINY_NETWORKS", tiny)


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
    with pytest.raises(SystemExit, match="g_learning_rate"):
        train_gan.main(["--run-dir", str(run_dir / "gan"), "--resume", "--g-learning-rate", "0.1"])


def test_study_writes_one_table_and_the_plot(tmp_path, capsys, two_step_demo):
    assert study.main(["afm_p", "afm_pcsa", "--run-dir", str(tmp_path), "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    for row in ("bicubic", "afm_p", "afm_pcsa"):
        assert row in printed
    assert (tmp_path / "study.md").is_file() and (tmp_path / "perception_distortion.png").stat().st_size > 1000


def test_pan_cascade_is_the_x2x2_route_of_an_x2_model():
    """Pan's conclusion: x4 as two passes of an x2 model; evaluate.py and upscale.py take it as
    the route ``x2x2`` of any x2 generator."""
    import numpy as np
    import tensorflow as tf

    from eusr_perceptual.inference import routes_of, run_route
    from eusr_perceptual.models.registry import build_network

    model = build_network({"type": "rrdbnet", "num_feat": 4, "num_block": 1, "num_grow": 4}, "generator", scale=2)
    model.build()
    assert routes_of(model) == ("x2", "x2x2")
    lr = tf.random.uniform((1, 6, 6, 3), 0, 255, seed=1)
    cascade = run_route(model, lr, "x2x2")
    assert cascade.shape == (1, 24, 24, 3)
    np.testing.assert_allclose(cascade, model(model(lr, scale=2), scale=2), rtol=1e-5, atol=1e-3)
