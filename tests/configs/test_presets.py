"""Every GAN preset builds from its specs and trains two steps (tiny networks, eager), G and D
change and nothing else does (frozen loss networks and predictors included); every preset's
description and formula are printable; no term is counted twice."""

from pathlib import Path

import numpy as np
import pytest

from eusr_perceptual.cli import train_gan
from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.losses.backbones import FeatureNetwork, load_backbone
from eusr_perceptual.losses.registry import parse_terms
from eusr_perceptual.pipelines.gan_run import build_gan_trainer
from helpers import (assert_short_run_changes_only_g_and_d, changed, make_dataset, snapshot, stand_in_predictor,
                     tiny_eusr, tiny_preset)

@pytest.fixture(scope="module")
def shared_backbones():
    """Random-weight VGG19 and ResNet-50 built once for every preset of this module; after the
    last preset, every one of their weights (BN statistics included) must be unchanged."""
    networks = {f"{name}:random": FeatureNetwork(name, load_backbone(name, None), f"{name}:random")
                for name in ("vgg19", "resnet50")}
    before = snapshot(networks)
    yield networks
    assert not changed(before, networks)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_two_steps(name, shared_backbones):
    config = tiny_preset(PRESETS[name])
    resources = dict(shared_backbones)
    resources.update({predictor: stand_in_predictor(predictor, i) for i, predictor in enumerate(config.predictors)})
    generator = tiny_eusr() if config.producer == "multipass" else None
    trainer = build_gan_trainer(config, generator=generator, resources=resources)
    trainer.run_eagerly = True
    history = assert_short_run_changes_only_g_and_d(trainer, make_dataset(config.patch_size, config.hr_size)(0),
                                                    skip=shared_backbones)
    assert set(history) >= {"loss", *(spec.name for spec in config.active_terms)}
    weighted = sum(spec.weight * history[spec.name][-1] for spec in config.active_terms)
    assert history["loss"][-1] == pytest.approx(weighted, rel=1e-4)
    assert np.isfinite(trainer(np.zeros((1, config.patch_size, config.patch_size, 3), np.float32))).all()


def test_presets_have_descriptions_unique_term_names_and_known_parts():
    for name, config in PRESETS.items():
        assert config.description, name
        specs = parse_terms(config.terms)  # known kinds, unique names
        assert len({spec.name for spec in specs}) == len(specs)
        assert config.psnr_stage in ("", *PRESETS), name
        if config.psnr_stage:
            assert PRESETS[config.psnr_stage].discriminator is None


def test_the_docs_preset_table_lists_every_preset_as_the_code_defines_it():
    table = (Path(__file__).resolve().parents[2] / "docs" / "gan.md").read_text()
    for name, config in PRESETS.items():
        assert f"| `{name}` | {config.description} |" in table, name
        assert f"| {config.formula()} |" in table, name


def test_list_presets_prints_every_preset_with_its_formula(capsys):
    assert train_gan.main(["--list-presets"]) == 0
    printed = capsys.readouterr().out
    for name, config in PRESETS.items():
        assert f"{name}\n    {config.description}\n    loss = {config.formula()}" in printed


def test_paper_numbers_of_the_gan_presets():
    esrgan, dp = PRESETS["esrgan"], PRESETS["esrgan_dp"]
    assert esrgan.formula() == "0.01 * l_pix + 1 * l_percep + 0.005 * l_gan"
    assert (esrgan.objective, esrgan.order, esrgan.batch_size, esrgan.hr_size) == ("ragan", "g_first", 16, 128)
    assert (esrgan.adam_beta_1, esrgan.adam_beta_2, esrgan.g_learning_rate) == (0.9, 0.99, 1e-4)
    assert (esrgan.lr_milestones, esrgan.lr_gamma, esrgan.steps) == ((50_000, 100_000, 200_000, 300_000), 0.5, 400_000)
    assert dict(PRESETS["esrgan"].terms[1].options)["before_activation"] is True
    assert dp.terms[2].options["mu"] == 0.5 and dp.terms[2].options["beta"] == "3,6"
    assert PRESETS["srgan_dp"].objective == "vanilla" and PRESETS["srgan_dp"].discriminator["type"] == "vgg_style"
    assert [PRESETS[f"srgan_dp_mu{m}"].terms[2].options["mu"] for m in ("0.2", "inf")] == ["0.2", "inf"]
    assert {PRESETS[f"srgan_dp_mu{m}"].terms[2].options["beta"] for m in ("0.2", "1", "inf")} == {"1,3"}
    afm = PRESETS["afm_pcsva"]
    assert {s.name: s.weight for s in afm.terms} == {"l_content": 1.0, "l_point": 0.01, "l_vgg": 0.5, "l_adv": 0.005}
    assert (afm.patch_size, afm.hr_size, afm.batch_size, afm.steps) == (24, 96, 16, 200_000)
    assert PRESETS["afm_pca"].terms[0].options["combine"] == "mean"
    pan = PRESETS["pan_wgan_x3"]
    assert (pan.objective, pan.scale, pan.hr_size, pan.adam_beta_1, pan.adam_beta_2) == ("wgan_gp", 3, 96, 0.0, 0.9)
    assert pan.discriminator["batch_norm"] is False
    assert PRESETS["srgan_vgg54"].terms[0].options["rescale"] == pytest.approx(1 / 12.75)


def test_dp_presets_start_from_their_psnr_model_except_the_authors_code():
    """DP: settings "follow ESRGAN" (a PSNR-pretrained start); the authors' code trains from scratch."""
    for name, config in PRESETS.items():
        if "_dp" in name:
            base = "esrgan_psnr" if name.startswith("esrgan") else "msrresnet_psnr"
            assert config.psnr_stage == ("" if name == "esrgan_dp_authors" else base), name


def test_the_readme_example_composes_a_gan_that_trains(monkeypatch, shared_backbones):
    """The README's "A new GAN is a preset" block runs as printed (``run_gan`` captured), and
    the GAN it composes trains two steps at test size."""
    import re
    from pathlib import Path

    from eusr_perceptual.pipelines import gan_run

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = re.search(r"A new GAN is a preset:\n\n```python\n(.*?)```", readme, re.S).group(1)
    captured = {}
    monkeypatch.setattr(gan_run, "run_gan", lambda config, run_dir: captured.update(config=config, run_dir=run_dir))
    exec(compile(code, "README.md", "exec"), {})
    config = captured["config"]
    assert (config.objective, config.order, config.ema_decay) == ("hinge", "g_first", 0.999)
    assert [(spec.name, spec.weight) for spec in config.active_terms] == [("l1", 1e-2), ("vgg", 1.0), ("adversarial", 5e-3)]
    config = tiny_preset(config.replace(data="skimage"))
    trainer = build_gan_trainer(config, resources=dict(shared_backbones))
    trainer.run_eagerly = True
    history = assert_short_run_changes_only_g_and_d(trainer, make_dataset(config.patch_size, config.hr_size)(0),
                                                    skip=shared_backbones)
    assert {spec.name for spec in config.active_terms} <= set(history)
