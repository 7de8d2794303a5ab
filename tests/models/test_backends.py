"""The networks on every Keras backend (issue 23): each registered generator and discriminator,
saved as ``.keras`` under TensorFlow, loads under JAX and PyTorch and gives TensorFlow's output
within 1e-4 on [0, 255]; each builds, runs, saves and loads under those backends; the networks
import and build with TensorFlow absent. Each backend runs in its own subprocess
(``tests/models/backend_check.py``), all networks in one; a backend that is not installed skips
(``pip install "jax[cpu]" "torch==2.13.0+cpu"``, the ``backends`` extra and docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.models.common import depth_to_space
from eusr_perceptual.models.registry import ROLES, build_network, registered_networks
from helpers import TEST_NETWORKS

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("jax", "torch")
TOLERANCE = 1e-4
#: Discriminator input side (divisible by 32 for the VGG-style one); generator LR input, not
#: square so that a height/width mix-up in the pixel shuffle shows.
HR_SIDE, LR_SHAPE = 32, (1, 6, 10, 3)
#: JAX: XLA's CPU compiler without its LLVM optimisations (JAX compiles each new shape of every
#: initialiser and op once, hundreds of tiny programs here: 5-10x faster at -O0). PyTorch:
#: OpenMP threads that sleep instead of spinning at barriers (10x faster on a shared CPU).
ENV = {"jax": {"XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"},
       "torch": {"OMP_WAIT_POLICY": "PASSIVE"}}


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def _backend_env(backend: str) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": backend, **ENV[backend],
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _skip_unless_installed(backend: str) -> None:
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed (optional: pip install \"jax[cpu]\" \"torch==2.13.0+cpu\")")


@pytest.mark.parametrize("factor", [2, 3])
def test_depth_to_space_is_tensorflows_eagerly_and_in_a_graph_of_unknown_size(factor):
    images = tf.reshape(tf.range(2 * 3 * 5 * 4 * factor * factor, dtype=tf.float32), (2, 3, 5, 4 * factor * factor))
    expected = tf.nn.depth_to_space(images, factor)
    graph = tf.function(lambda x: depth_to_space(x, factor), input_signature=[tf.TensorSpec([None, None, None, None])])
    np.testing.assert_array_equal(depth_to_space(images, factor), expected)
    np.testing.assert_array_equal(graph(images), expected)
    assert not np.array_equal(expected, tf.reshape(images, expected.shape))  # the premise: it permutes


#: Kernel gain of :func:`_randomise`: generators' residual sums grow with 1, discriminators'
#: LeakyReLU stacks fade below 2 (outputs up to ~420 on [0, 255], logits ~1-4).
GAIN = {"generator": 0.5, "discriminator": (2 / (1 + 0.2**2)) ** 0.5}


def _randomise(model: keras.Model, role: str, rng: np.random.Generator) -> None:
    """Weights drawn so that every output depends on all of them at the scale of the signal
    (the initialisers start some networks near a constant: MSRResNet's x0.1 kernels, logits
    near 0): kernels N(0, gain^2/fan_in), BN scales and variances U(0.5, 1.5), the rest N(0, 0.1)."""
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.name == "kernel":
            value = rng.normal(0.0, GAIN[role] / np.sqrt(np.prod(shape[:-1])), shape)
        elif variable.name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        variable.assign(value.astype(variable.dtype))


def _save_under_tensorflow(folder: Path) -> None:
    """Every registered network at test size, randomised, saved as ``.keras`` with its input and
    outputs under TensorFlow (``cases.json``, ``reference.npz``); each file is loaded back here
    too (the TensorFlow round trip)."""
    rng = np.random.default_rng(23)
    cases, arrays = [], {}
    for role in ROLES:
        for name in registered_networks(role):
            case = {"name": name, "role": role, "spec": {"type": name, **TEST_NETWORKS[name]},
                    "context": {"scale": 4, "input_size": HR_SIDE}}
            model = build_network(case["spec"], role, **case["context"])
            if role == "generator":
                model.build()
            _randomise(model, role, rng)
            shape = LR_SHAPE if role == "generator" else (2, HR_SIDE, HR_SIDE, 3)
            inputs = rng.uniform(0.0, 255.0, shape).astype(np.float32)
            if role == "generator":
                case["scales"] = list(model.scales)
                outputs = {f"x{s}": np.asarray(model(inputs, scale=s)) for s in model.scales}
            else:
                outputs = {"logits": np.asarray(model(inputs, training=False))}
            model.save(folder / f"{name}.keras")
            reloaded = keras.models.load_model(folder / f"{name}.keras", compile=False)
            for key, value in outputs.items():
                again = reloaded(inputs, scale=int(key[1:])) if role == "generator" else reloaded(inputs, training=False)
                np.testing.assert_array_equal(again, value, err_msg=f"{name} {key} TensorFlow round trip")
                arrays[f"{name}/{key}"] = value
            arrays[f"{name}/input"] = inputs
            cases.append(case)
    (folder / "cases.json").write_text(json.dumps(cases))
    np.savez(folder / "reference.npz", **arrays)


@pytest.fixture(scope="module")
def saved_under_tensorflow(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    _save_under_tensorflow(folder)
    return folder


def _check_under(backend: str, folder: Path) -> dict:
    """The JSON of ``tests/models/backend_check.py`` run on ``folder`` under ``backend``."""
    run = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "backend_check.py"), str(folder)],
                         env=_backend_env(backend), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{backend}:\n{run.stderr[-4000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_registered_network_has_test_options():
    assert set(registered_networks("generator")) | set(registered_networks("discriminator")) == set(TEST_NETWORKS)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_tensorflow_files_load_and_match_and_networks_round_trip(backend, saved_under_tensorflow):
    _skip_unless_installed(backend)
    report = _check_under(backend, saved_under_tensorflow)
    assert report["backend"] == backend
    assert set(report["results"]) == set(TEST_NETWORKS)
    for name, differences in report["results"].items():
        assert differences["loaded"] <= TOLERANCE, (backend, name, differences)
        # The premise: the same spec with other weights is far off, so the comparison sees weights.
        assert differences["fresh"] > 100 * TOLERANCE, (backend, name, differences)
        assert differences["round_trip"] <= 1e-6, (backend, name, differences)
    assert not report["tensorflow_imported"], f"loading, building or running under {backend} imported TensorFlow"


#: Makes ``import tensorflow`` (and its submodules) fail as if it were not installed.
_BLOCK_TENSORFLOW = """
import importlib.abc, importlib.machinery, sys

class _NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ImportError(f"No module named {spec.name!r} (blocked by the test)")

    def exec_module(self, module):
        raise ImportError(f"No module named {module.__name__!r} (blocked by the test)")

sys.meta_path.insert(0, _NoTensorFlow())
try:
    import tensorflow
except ImportError:
    pass
else:
    raise SystemExit("the block did not hold")
"""

_IMPORT_AND_BUILD = """
import pkgutil, importlib
import numpy as np
import keras
import eusr_perceptual.models
import eusr_perceptual.models.registry
for module in pkgutil.iter_modules(eusr_perceptual.models.__path__):  # loading's SavedModel part is lazy
    importlib.import_module("eusr_perceptual.models." + module.name)
from eusr_perceptual.models.registry import build_network
model = build_network({"type": "eusr", "channels": 4, "shared_blocks": 1, "upscale_blocks": 0,
                       "scale_aware_blocks": 1, "scales": [2]}, "generator")
model.build()
lr = np.random.default_rng(0).uniform(0, 255, (1, 4, 6, 3)).astype("float32")
out = keras.ops.convert_to_numpy(model(lr, scale=2))
model.save("{path}")
from eusr_perceptual.loading import load_generator
again = keras.ops.convert_to_numpy(load_generator("{path}")(lr, scale=2))
assert out.shape == (1, 8, 12, 3) and np.array_equal(out, again), (out.shape, np.abs(out - again).max())
assert "tensorflow" not in sys.modules
print("ok", keras.backend.backend())
"""


def test_networks_import_build_save_and_load_without_tensorflow(tmp_path):
    _skip_unless_installed("jax")
    script = _BLOCK_TENSORFLOW + _IMPORT_AND_BUILD.replace("{path}", str(tmp_path / "eusr.keras"))
    run = subprocess.run([sys.executable, "-c", script], env=_backend_env("jax"), cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.split()[-2:] == ["ok", "jax"]
