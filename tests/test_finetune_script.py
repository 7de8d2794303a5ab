"""scripts/finetune_4pp.py: flags, presets, resume settings and the errors for missing inputs."""

import json
from pathlib import Path

import pytest

from eusr_perceptual.configs.finetune import DEMO, PAPER



@pytest.fixture(scope="module")
def script():
    from eusr_perceptual.cli import finetune_4pp

    return finetune_4pp


def config_of(script, *argv):
    return script.config_from_args(script.parse_args(list(argv)))


def test_flags_override_the_preset(script):
    assert config_of(script) == PAPER
    assert config_of(script, "--preset", "alpha_r_0.3").w_r == 0.3
    config = config_of(script, "--without-lg", "--w-ar", "0.2", "--downscale", "subsample", "--no-downscaled-copies")
    assert config == PAPER.replace(without_lg=True, w_ar=0.2, downscale="subsample", downscaled_copies=False)
    assert config_of(script, "--preset", "demo") == DEMO
    with pytest.raises(SystemExit):
        config_of(script, "--discriminator-head", "patch")


def test_resume_takes_the_settings_of_the_run(script, tmp_path):
    saved = PAPER.replace(generator="g.keras", w_r=0.3, steps=10)
    (tmp_path / "config.json").write_text(json.dumps({"config": saved.to_dict(), "run": {}}))
    assert config_of(script, "--run-dir", str(tmp_path), "--resume") == saved
    assert config_of(script, "--run-dir", str(tmp_path), "--resume", "--steps", "20") == saved.replace(steps=20)
    with pytest.raises(SystemExit, match="only --steps"):
        config_of(script, "--run-dir", str(tmp_path), "--resume", "--w-r", "0.03")


@pytest.mark.parametrize(
    "missing, maker",
    [
        ("generator", "scripts/pretrain_eusr.py"),
        ("aesthetic", "scripts/train_nima.py --dataset ava"),
        ("subjective", "scripts/train_nima.py --dataset tid2013"),
    ],
)
def test_a_missing_input_names_the_script_that_makes_it(script, tmp_path, missing, maker):
    inputs = {name: tmp_path / f"{name}.keras" for name in ("generator", "aesthetic", "subjective")}
    for name, path in inputs.items():
        if name != missing:
            path.write_bytes(b"")
    config = PAPER.replace(**{name: str(path) for name, path in inputs.items()})
    with pytest.raises(SystemExit, match=maker):
        script.check_inputs(config)


def test_an_ablated_predictor_is_not_needed(script, tmp_path):
    generator = tmp_path / "generator.keras"
    generator.write_bytes(b"")
    subjective = tmp_path / "subjective.keras"
    subjective.write_bytes(b"")
    config = PAPER.replace(generator=str(generator), aesthetic="/nowhere.keras", subjective=str(subjective),
                           without_aesthetic=True)
    script.check_inputs(config)  # no SystemExit
