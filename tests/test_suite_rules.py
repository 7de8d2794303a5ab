"""The suite's own rules (docs/architecture.md, "Tests"): the ``slow`` marker is registered, so
``-m "not slow"`` is the quick loop, and the README's plain ``python -m pytest`` deselects nothing;
what was alive after collection is frozen out of the garbage collector's scans; eager ops run
directly, with TensorFlow's default numbers."""

import configparser
import gc
import shlex
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.pipelines.gan_run import build_gan_trainer
from helpers import REPO, make_dataset, tiny_preset


def pytest_ini() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser["tool:pytest"]


def test_the_slow_marker_is_registered_and_used(pytestconfig):
    assert any(line.split(":")[0].strip() == "slow" for line in pytestconfig.getini("markers"))
    marked = [path for path in (REPO / "tests").rglob("test_*.py") if "@pytest.mark.slow" in path.read_text()]
    assert marked, "no test carries @pytest.mark.slow"


def test_the_default_command_selects_every_test():
    options = shlex.split(pytest_ini()["addopts"])
    assert not {"-m", "-k"} & set(options) and not any(o.startswith(("-m=", "--deselect", "--ignore")) for o in options)
    assert "python -m pytest" in (REPO / "README.md").read_text()


def test_the_objects_of_the_imports_are_frozen_out_of_the_per_test_collection():
    """``conftest.pytest_collection_finish``: TensorFlow's and Keras's objects (over 400,000) are
    not scanned again by the ``gc.collect`` of each test's ``keras.backend.clear_session``."""
    assert gc.get_freeze_count() > 100_000


def eager_ops_run_as_functions() -> bool:
    """Whether this process wraps each eager op in a one-op function (TensorFlow's default): an
    eager op's error then names the wrapping function."""
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        tf.debugging.check_numerics(tf.constant([np.nan]), "premise")
    return "__wrapped__" in str(error.value)


def two_eager_gan_steps() -> dict[str, np.ndarray]:
    """A tiny SRGAN-MSE (BatchNorm discriminator, seeded by its config) trained two steps eagerly:
    every weight of G and D, both optimizers' variables and the logged losses."""
    config = tiny_preset(PRESETS["srgan_mse"])
    trainer = build_gan_trainer(config)
    trainer.run_eagerly = True
    history = trainer.fit(make_dataset(config.patch_size, config.hr_size)(0), steps_per_epoch=2, epochs=1,
                          verbose=0).history
    variables = trainer.weights + trainer.optimizer.variables + trainer.d_optimizer.variables
    return {**{f"variable {i}": np.asarray(v) for i, v in enumerate(variables)},
            **{f"log {name}": np.asarray(values) for name, values in history.items()},
            "wrapped": np.asarray(eager_ops_run_as_functions())}


@pytest.mark.slow
def test_eager_ops_run_directly_with_the_numbers_of_tensorflows_default(tmp_path):
    """``conftest.run_eager_ops_directly``: here eager ops are not wrapped in functions; a fresh
    process with TensorFlow's default wraps them; the same seeded GAN steps give bit-identical
    weights, optimizer states and losses both ways."""
    script = ("import sys; import numpy as np; sys.path.insert(0, sys.argv[1]); "
              "from test_suite_rules import two_eager_gan_steps; np.savez(sys.argv[2], **two_eager_gan_steps())")
    run = subprocess.run([sys.executable, "-c", script, str(REPO / "tests"), str(tmp_path / "default.npz")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    default = dict(np.load(tmp_path / "default.npz"))
    direct = two_eager_gan_steps()
    assert default.pop("wrapped"), "TensorFlow's default no longer wraps eager ops: run_eager_ops_directly is moot"
    assert not direct.pop("wrapped"), "conftest.run_eager_ops_directly had no effect: see its docstring"
    assert default.keys() == direct.keys() and len(default) > 20
    for key, value in default.items():
        np.testing.assert_array_equal(direct[key], value, err_msg=key)
