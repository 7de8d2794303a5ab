"""Fine-tuning settings: the paper's numbers, the eq. 9 presets and the Table 4 ablation flags."""

import dataclasses

import pytest

from eusr_perceptual.configs.finetune import (
    ABLATIONS,
    ALPHA_R_0_003,
    ALPHA_R_0_3,
    PAPER,
    PRESETS,
    TERMS,
    FinetuneConfig,
)


def test_paper_configuration():
    assert PAPER.loss_weights == {"l_r": 0.03, "l_g": 0.1, "l_as": 0.01, "l_ar": 0.1, "l_ss": 0.01, "l_sr": 0.1}
    assert (PAPER.alpha_as, PAPER.alpha_ss, PAPER.max_score) == (0.8, 0.8, 10.0)
    assert (PAPER.g_learning_rate, PAPER.d_learning_rate) == (1e-5, 2e-5)
    assert (PAPER.adam_beta_1, PAPER.adam_beta_2, PAPER.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (PAPER.batch_size, PAPER.patch_size, PAPER.steps) == (2, 48, 200_000)
    assert (PAPER.downscale, PAPER.representation, PAPER.discriminator_head) == ("matlab", "sum", "per_position")
    assert not PAPER.simultaneous_updates
    assert PAPER.active_terms == TERMS and PAPER.needs_aesthetic and PAPER.needs_subjective


def test_alpha_r_presets_change_only_the_reconstruction_weight():
    assert [PRESETS[name].w_r for name in ("alpha_r_0.3", "alpha_r_0.03", "alpha_r_0.003")] == [0.3, 0.03, 0.003]
    for preset in (ALPHA_R_0_3, ALPHA_R_0_003):
        differences = {f.name for f in dataclasses.fields(PAPER) if getattr(preset, f.name) != getattr(PAPER, f.name)}
        assert differences == {"w_r"}


@pytest.mark.parametrize(
    "flag, removed",
    [
        ("without_lr", {"l_r"}),
        ("without_lg", {"l_g"}),
        ("without_aesthetic", {"l_as", "l_ar"}),
        ("without_subjective", {"l_ss", "l_sr"}),
    ],
)
def test_each_ablation_flag_removes_exactly_its_terms(flag, removed):
    assert set(ABLATIONS[flag]) == removed
    config = PAPER.replace(**{flag: True})
    assert set(config.active_terms) == set(TERMS) - removed
    for term, weight in config.loss_weights.items():
        assert weight == (0.0 if term in removed else PAPER.loss_weights[term])
    assert config.needs_aesthetic == ("l_as" not in removed)
    assert config.needs_subjective == ("l_ss" not in removed)


def test_a_zero_weight_is_an_inactive_term():
    assert PAPER.replace(w_ar=0.0, w_as=0.0).needs_aesthetic is False


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"downscale": "area"}, "downscale"),
        ({"representation": "max"}, "representation"),
        ({"discriminator_head": "patch"}, "discriminator_head"),
        ({"w_g": -0.1}, "non-negative"),
        ({"without_lr": True, "without_lg": True, "without_aesthetic": True, "without_subjective": True}, "disabled"),
    ],
)
def test_invalid_settings_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        PAPER.replace(**changes)


def test_round_trip_through_a_dict():
    config = ALPHA_R_0_3.replace(without_aesthetic=True, simultaneous_updates=True)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
