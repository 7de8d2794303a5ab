"""Every requirement setup.cfg declares is used (a declared dependency that nothing uses is a
defect), and what the code imports from outside the standard library is declared."""

import configparser
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: distribution name -> how the code reaches it (module names; tensorboard provides ``tf.summary``)
MODULES = {
    "tensorflow": ["tensorflow"], "tensorboard": ["tensorboard", "tf.summary"], "keras": ["keras"],
    "tensorflow-datasets": ["tensorflow_datasets"], "numpy": ["numpy"], "pillow": ["PIL"], "opencv-python-headless": ["cv2"],
    "scikit-image": ["skimage"], "scipy": ["scipy"], "matplotlib": ["matplotlib"], "pytest": ["pytest"],
    "sewar": ["sewar"], "tensorflow-serving-api": ["tensorflow_serving"], "ai-edge-litert": ["ai_edge_litert"],
    "tf2onnx": ["tf2onnx"], "onnx": ["onnx"], "onnxruntime": ["onnxruntime"], "jax": ["jax"],
}
#: requirements used by configuration rather than by an import
CONFIGURED = {"pytest-xdist": "-n 2"}  # setup.cfg [tool:pytest] addopts


def _requirements() -> dict[str, list[str]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    groups = {"install_requires": config["options"]["install_requires"], **config["options.extras_require"]}
    return {group: [re.split(r"[<>=!~\[; ]", line.strip())[0].lower() for line in text.splitlines()
                    if line.strip() and not line.strip().startswith("#")]
            for group, text in groups.items()}


def _sources(*folders: str) -> str:
    return "\n".join(path.read_text() for folder in folders for path in (REPO / folder).rglob("*.py"))


def _uses(source: str, module: str) -> bool:
    if "." in module and not module.startswith(("import", "from")):
        return module in source
    name = re.escape(module)
    return re.search(rf"^\s*(import {name}\b|from {name}[\w.]* import )|require\(\"{name}\b", source, re.M) is not None


def test_every_declared_requirement_is_used():
    package, tests = _sources("eusr_perceptual", "nima"), _sources("tests")
    requirements = _requirements()
    assert "keras-cv" not in requirements["install_requires"]  # unused: README, "Dependencies, and one left out"
    for group, names in requirements.items():
        for name in names:
            if name in CONFIGURED:
                config = configparser.ConfigParser()
                config.read(REPO / "setup.cfg")
                assert CONFIGURED[name] in config["tool:pytest"]["addopts"], f"{name} ({group}) is declared but unused"
                continue
            assert name in MODULES, f"{name} ({group}) has no entry saying how it is used"
            where = {"test": tests, "export": package + tests, "backends": tests + _sources("benchmarks")}.get(group, package)
            assert any(_uses(where, module) for module in MODULES[name]), f"{name} ({group}) is declared but unused"


def test_every_third_party_import_of_the_package_is_declared():
    declared = {module for names in _requirements().values() for name in names if name not in CONFIGURED
                for module in MODULES[name]}
    imported = set(re.findall(r"^\s*(?:import ([A-Za-z_]\w*)|from ([A-Za-z_]\w*)[\w.]* import )", _sources("eusr_perceptual", "nima"), re.M))
    imported = {name for pair in imported for name in pair if name}
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("eusr_perceptual", "nima")}
    assert third_party <= declared, f"imported but not declared: {sorted(third_party - declared)}"


def test_keras_floor_is_above_the_versions_with_safe_mode_bypasses():
    """Keras before 3.14 loads .keras files with public safe_mode bypasses (CVE-2025-1550,
    CVE-2025-9906, CVE-2026-1462) and an archive path traversal."""
    import keras

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    (line,) = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip().startswith("keras")]
    floor = re.search(r">=\s*(\d+)\.(\d+)", line)
    assert floor and (int(floor.group(1)), int(floor.group(2))) >= (3, 14), line
    assert tuple(int(part) for part in keras.__version__.split(".")[:2]) >= (3, 14)  # the tests run on a fixed Keras
