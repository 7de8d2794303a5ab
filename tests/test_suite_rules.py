"""The suite's own rules (docs/architecture.md, "Tests"): the ``slow`` marker is registered, so
``-m "not slow"`` is the quick loop, and the README's plain ``python -m pytest`` deselects nothing;
what was alive after collection is frozen out of the garbage collector's scans."""

import configparser
import gc
import shlex

from helpers import REPO


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
