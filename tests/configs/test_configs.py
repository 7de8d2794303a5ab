"""One configuration scheme: frozen dataclasses, JSON round trip, validation, generated flags,
resume that keeps the run's settings, and the 4PP-EUSR presets' numbers."""

import argparse
import json
import zipfile

import pytest

from eusr_perceptual.errors import UsageError

from eusr_perceptual.cli import finetune_4pp, pretrain
from eusr_perceptual.configs.base import ConfigError
from eusr_perceptual.configs.demo import DEMO_STEPS, demo_version
from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.configs.presets import FOURPP_EUSR, FOURPP_PRESETS, PRESETS
from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS, PretrainConfig
from eusr_perceptual.pipelines.gan_run import check_inputs
from nima.config import PRESETS as NIMA_PRESETS
from nima.config import NimaConfig


@pytest.mark.parametrize("config", [*PRESETS.values(), *PRETRAIN_PRESETS.values(), *NIMA_PRESETS.values()],
                         ids=[*PRESETS, *(f"pretrain_{n}" for n in PRETRAIN_PRESETS), *(f"nima_{n}" for n in NIMA_PRESETS)])
def test_every_preset_round_trips_through_json(config):
    restored = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


def test_unknown_settings_and_bad_choices_are_refused():
    with pytest.raises(ConfigError, match="no setting"):
        GANConfig.from_dict({"w_r": 0.3})
    with pytest.raises(ConfigError, match="order must be one of"):
        FOURPP_EUSR.replace(order="sideways")
    with pytest.raises(ConfigError, match="no loss term"):
        FOURPP_EUSR.with_weights({"l_x": 1.0})
    with pytest.raises(ConfigError, match="need a discriminator"):
        FOURPP_EUSR.replace(discriminator=None)
    with pytest.raises(ConfigError, match="scale_weights"):
        PretrainConfig(scale_weights=(1.0, 2.0))


def test_fourpp_paper_numbers_and_table_presets():
    weights = {spec.name: spec.weight for spec in FOURPP_EUSR.terms}
    assert weights == {"l_r": 0.03, "l_g": 0.1, "l_as": 0.01, "l_ar": 0.1, "l_ss": 0.01, "l_sr": 0.1}
    assert FOURPP_EUSR.formula() == "0.03 * l_r + 0.1 * l_g + 0.01 * l_as + 0.1 * l_ar + 0.01 * l_ss + 0.1 * l_sr"
    assert (FOURPP_EUSR.g_learning_rate, FOURPP_EUSR.d_learning_rate) == (1e-5, 2e-5)
    assert (FOURPP_EUSR.adam_beta_1, FOURPP_EUSR.adam_beta_2, FOURPP_EUSR.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (FOURPP_EUSR.batch_size, FOURPP_EUSR.patch_size, FOURPP_EUSR.steps) == (2, 48, 200_000)
    assert (FOURPP_EUSR.producer, FOURPP_EUSR.downscale, FOURPP_EUSR.order) == ("multipass", "matlab", "d_first")
    alphas = {spec.options["alpha"] for spec in FOURPP_EUSR.terms if spec.kind == "nima_score"}
    assert alphas == {0.8}
    assert {n: dict((s.name, s.weight) for s in FOURPP_PRESETS[n].terms)["l_r"]
            for n in ("4pp_eusr_alpha_r_0.3", "4pp_eusr_alpha_r_0.003")} == {
        "4pp_eusr_alpha_r_0.3": 0.3, "4pp_eusr_alpha_r_0.003": 0.003}
    assert {s.name for s in FOURPP_PRESETS["4pp_eusr_without_aesthetic"].terms} == {"l_r", "l_g", "l_ss", "l_sr"}
    assert FOURPP_PRESETS["4pp_eusr_without_aesthetic"].predictors == {"subjective": FOURPP_EUSR.subjective}
    authors = FOURPP_PRESETS["4pp_eusr_authors"]
    assert (authors.downscale, authors.order) == ("subsample", "simultaneous")
    assert {s.options.get("reduction") for s in authors.terms} == {None, "mean"}


def parse_finetune(*argv) -> GANConfig:
    args = finetune_4pp.parse_args(list(argv))
    from eusr_perceptual.cli.gan_flags import gan_config_from_args

    return gan_config_from_args(args, FOURPP_PRESETS)


def test_flags_are_generated_from_the_fields_and_override_the_preset():
    assert parse_finetune() == FOURPP_EUSR
    config = parse_finetune("--preset", "4pp_eusr_alpha_r_0.3", "--weight", "l_g=0", "--downscale", "subsample",
                            "--no-downscaled-copies", "--discriminator-option", "head=flatten", "--lr-milestones",
                            "10,20")
    assert dict((s.name, s.weight) for s in config.terms)["l_r"] == 0.3
    assert dict((s.name, s.weight) for s in config.terms)["l_g"] == 0.0
    assert (config.downscale, config.downscaled_copies, config.lr_milestones) == ("subsample", False, (10, 20))
    assert config.discriminator["head"] == "flatten"
    with pytest.raises(SystemExit):
        parse_finetune("--downscale", "nearest")


def test_resume_takes_the_recorded_settings_and_refuses_changes(tmp_path):
    recorded = FOURPP_EUSR.replace(init_from="g.keras", steps=10).with_weights({"l_r": 0.3})
    (tmp_path / "config.json").write_text(json.dumps({"config": recorded.to_dict(), "run": {}}))
    run = ["--run-dir", str(tmp_path), "--resume"]
    assert parse_finetune(*run) == recorded
    assert parse_finetune(*run, "--steps", "20") == recorded.replace(steps=20)
    # The learning rates may change (the recovery from a NaN stop), every other setting may not.
    assert parse_finetune(*run, "--g-learning-rate", "1e-6") == recorded.replace(g_learning_rate=1e-6)
    with pytest.raises(UsageError, match=r"batch_size: run has 2, command line asks 4"):
        parse_finetune(*run, "--batch-size", "4")
    with pytest.raises(UsageError, match="terms"):
        parse_finetune(*run, "--weight", "l_r=0.03")
    with pytest.raises(UsageError, match="does not exist"):
        parse_finetune("--run-dir", str(tmp_path / "nowhere"), "--resume")


def test_pretraining_resume_names_a_changed_architecture(tmp_path):
    recorded = PRETRAIN_PRESETS["demo"].replace(data="/my/photos", steps=100)
    (tmp_path / "config.json").write_text(json.dumps({"config": recorded.to_dict(), "run": {}}))
    args = pretrain.parse_args(["--run-dir", str(tmp_path), "--resume"])
    assert pretrain.config_from_args(args) == recorded  # not the preset's embedded photographs
    for flags, named in ((["--channels", "8"], "model.channels: run has 16"),
                         (["--data", "skimage"], "data: run has '/my/photos'"),
                         (["--seed", "3"], "seed"), (["--batch-size", "4"], "batch_size")):
        with pytest.raises(UsageError, match=named):
            pretrain.config_from_args(pretrain.parse_args(["--run-dir", str(tmp_path), "--resume", *flags]))


def test_pretraining_flags_reach_nested_model_fields():
    args = pretrain.parse_args(["--channels", "8", "--shared-blocks", "1", "--steps", "2"])
    config = pretrain.config_from_args(args)
    assert (config.model.channels, config.model.shared_blocks, config.steps) == (8, 1, 2)
    assert config.model.upscale_blocks == PRETRAIN_PRESETS["demo"].model.upscale_blocks


def keras_archive(path):
    """A file that passes the pre-load check of a .keras model (a zip holding config.json)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    return path


@pytest.mark.parametrize("missing,maker", [("init_from", "eusr-pretrain"), ("aesthetic", "nima-train --dataset ava"),
                                           ("subjective", "nima-train --dataset tid2013")])
def test_a_missing_input_names_the_command_that_makes_it(tmp_path, missing, maker):
    inputs = {name: tmp_path / f"{name}.keras" for name in ("init_from", "aesthetic", "subjective")}
    for name, path in inputs.items():
        if name != missing:
            keras_archive(path)
    with pytest.raises(UsageError, match=maker):
        check_inputs(FOURPP_EUSR.replace(**{name: str(path) for name, path in inputs.items()}))


def test_an_ablated_predictor_is_not_needed(tmp_path):
    for name in ("g", "s"):
        keras_archive(tmp_path / f"{name}.keras")
    config = FOURPP_PRESETS["4pp_eusr_without_aesthetic"].replace(
        init_from=str(tmp_path / "g.keras"), aesthetic="/nowhere.keras", subjective=str(tmp_path / "s.keras"))
    check_inputs(config)  # no error
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match="not a model file"):
        check_inputs(config.replace(init_from=str(tmp_path / "photo.png")))


def test_a_gan_stage_without_its_psnr_start_is_named_in_a_warning(tmp_path, caplog):
    from eusr_perceptual.configs.presets import PRESETS

    with caplog.at_level("WARNING", logger="eusr_perceptual.pipelines.gan_run"):
        check_inputs(PRESETS["esrgan_dp"])
    assert "PSNR stage esrgan_psnr" in caplog.text and "random weights" in caplog.text
    caplog.clear()
    keras_archive(tmp_path / "psnr.keras")
    with caplog.at_level("WARNING", logger="eusr_perceptual.pipelines.gan_run"):
        check_inputs(PRESETS["esrgan_dp"].replace(init_from=str(tmp_path / "psnr.keras")))
        check_inputs(PRESETS["esrgan_dp_authors"])
    assert "random weights" not in caplog.text


def test_nima_config_uses_the_same_scheme():
    assert NimaConfig.from_dict(NIMA_PRESETS["tid2013"].to_dict()) == NIMA_PRESETS["tid2013"]
    parser = argparse.ArgumentParser()
    from eusr_perceptual.cli.flags import add_config_flags, config_from_flags

    add_config_flags(parser, NimaConfig, NIMA_PRESETS["ava"])
    config = config_from_flags(parser.parse_args(["--phase1-epochs", "2", "--no-jit-compile"]), NIMA_PRESETS["ava"])
    assert (config.phase1_epochs, config.jit_compile) == (2.0, False)


def test_a_demo_keeps_a_presets_generator_ema_on_the_demos_horizon():
    """``msrresnet_psnr``'s EMA 0.999 kept in a 200-step demo held 0.999**200 = 82 % of the
    random initial weights, and the SRGAN-DP demos that start from it collapsed (7.60 dB)."""
    with_ema = [name for name, preset in PRESETS.items() if preset.ema_decay]
    assert "msrresnet_psnr" in with_ema
    for name, preset in PRESETS.items():
        for steps in (DEMO_STEPS, 1000):
            decay = demo_version(preset, steps).ema_decay
            if name in with_ema:
                assert 0.0 < decay <= preset.ema_decay and decay ** steps < 1e-6, (name, steps, decay)
            else:
                assert decay == 0.0
    assert demo_version(PRESETS["msrresnet_psnr"], 10).ema_decay == 0.0
