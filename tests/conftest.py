"""Shared test set-up: quiet, deterministic TensorFlow on the CPU."""
import collections
import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# One thread per TensorFlow op: the two xdist workers (setup.cfg) already fill the two cores, and
# the suite's small ops lose more to handing work between threads than they gain from them
# (17 preset tests in one process: 50.4 -> 42.6 s; the whole suite: 676 -> 625 s).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    """In each process that runs tests, before TensorFlow initialises: eager ops run directly
    (:func:`run_eager_ops_directly`), and two logical CPU devices so that
    tf.distribute.MirroredStrategy paths run for real on a one-CPU machine. xdist's controller
    (``-n 2``, setup.cfg) only hands out files: it never starts TensorFlow, so that the workers
    start 3-4 s sooner."""
    if config.getoption("numprocesses", default=None) and not hasattr(config, "workerinput"):
        return
    import tensorflow as tf

    run_eager_ops_directly()
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker ends its process here, once pytest has sent its results to the
    controller (``workerfinished``, at the end of the session) and every plugin has unconfigured.
    What it skips: pytest's five full garbage collections over the worker's heap (looking for
    unraisable exceptions of finalizers; each test's are still reported) and the interpreter's
    teardown of TensorFlow, 10 s at the end of the suite while the controller waits (measured 6 s
    and 4 s). A run in one process (``-n 0``) ends as usual."""
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def run_eager_ops_directly() -> None:
    """Makes this process run each eager op on its kernel, not wrapped in a one-op function as
    TensorFlow does by default (its Python sets ``TFE_ContextOptionsSetRunEagerOpAsFunction`` to
    true when it creates the eager context; called here before that). The kernels are the same
    and so are the numbers (``tests/test_suite_rules.py`` trains a tiny GAN both ways and
    compares every weight); what changes is the cost of an op whose attributes are new, such as
    each variable's handle (its name and shape): 380 -> 19 us. The suite builds thousands of
    variables and runs many steps eagerly: 944 -> 810 test-seconds, 495 -> 428 s back to back
    (test_presets.py 160 -> 112 s). Processes the tests start (the commands, the exports'
    TF-only checks) keep TensorFlow's default. A TensorFlow without the option leaves the
    default in place (the suite is slower; the test of ``test_suite_rules.py`` says so)."""
    from tensorflow.python import pywrap_tfe

    set_option = getattr(pywrap_tfe, "TFE_ContextOptionsSetRunEagerOpAsFunction", None)
    if set_option is not None:
        pywrap_tfe.TFE_ContextOptionsSetRunEagerOpAsFunction = lambda options, enable: set_option(options, False)


def pytest_collection_finish(session):
    """Moves every object alive after collection (TensorFlow, Keras and the test modules: over
    400,000) out of the garbage collector's reach, so that its full collections scan only what
    the tests made (when each test's teardown still ran one: 0.17-0.25 s a test, 123 tests of 5
    files 69.6 -> 46.6 s in one process). Objects the tests create are collected as before."""
    gc.collect()
    gc.freeze()


#: What a ``slow``-marked test weighs against an ordinary one when the files are ordered (their
#: durations: 8-30 s against 0.1-3 s).
SLOW_WEIGHT = 15


def pytest_collection_modifyitems(config, items):
    """Orders the files heaviest first (a slow test counts as :data:`SLOW_WEIGHT` tests), each
    file's tests kept in their order. With ``--dist loadfile --no-loadscope-reorder`` (setup.cfg)
    the two workers start on the long files and end together on light ones; xdist's default
    order, by test count, left the files of 1-6 whole runs (multi-worker, NIMA training, XLA,
    the demo, the mirrored ESRGAN) for last, where one worker ran them while the other idled."""
    weight = collections.Counter()
    for item in items:
        weight[item.path] += SLOW_WEIGHT if item.get_closest_marker("slow") else 1
    items.sort(key=lambda item: -weight[item.path])


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over the two logical CPU devices, shared by the whole session.

    Several MirroredStrategy objects in one process share the collective-op key space; one
    object for all tests keeps their all-reduces from colliding.
    """
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def tiny_x4_eusr():
    """One built x4-only tiny EUSR (``helpers.TINY_X4_EUSR``, seed 4) for the whole session, for
    tests that only run, save or export it; a test that trains a network builds its own."""
    from helpers import TINY_X4_EUSR, built_eusr

    return built_eusr(TINY_X4_EUSR, seed=4)


@pytest.fixture(scope="session")
def tiny_x4_keras(tiny_x4_eusr, tmp_path_factory):
    """:func:`tiny_x4_eusr` saved once as ``generator.keras`` (read-only: copy it where a test
    needs it in a run folder of its own)."""
    path = tmp_path_factory.mktemp("tiny_x4_eusr") / "generator.keras"
    tiny_x4_eusr.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_rrdbnet_x2():
    """One built x2 RRDBNet at test size (``helpers.TEST_NETWORKS``, seed 2) for the session,
    read-only like :func:`tiny_x4_eusr`."""
    import keras
    from helpers import tiny_network

    keras.utils.set_random_seed(2)
    model = tiny_network("rrdbnet", "generator", scale=2)
    model.build()
    return model


def disable_op_determinism() -> None:
    """The inverse of ``tf.config.experimental.enable_op_determinism`` (only in TF's private API)."""
    from tensorflow.python.framework import config

    config.disable_op_determinism()


@pytest.fixture(autouse=True)
def _reset_global_state():
    """Each test starts with the float32 policy, op determinism off and a fresh Keras name
    scope, and leaves them so: a test that changes them cannot change what later tests test
    (op determinism, for one, makes Keras silently compile without XLA). The session is cleared
    without Keras' ``gc.collect``: Python's own collector frees the tests' cycles, and a full
    collection after every test scanned all that earlier tests left alive (module fixtures,
    function caches), up to 1 s a test late in a worker: 300 of the suite's 1,310 test-seconds."""
    import keras

    keras.mixed_precision.set_dtype_policy("float32")
    disable_op_determinism()
    yield
    keras.mixed_precision.set_dtype_policy("float32")
    disable_op_determinism()
    keras.backend.clear_session(free_memory=False)
