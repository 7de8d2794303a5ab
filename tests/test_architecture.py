"""The package's imports point down (docs/architecture.md): every module of ``eusr_perceptual``
and ``nima`` sits on a floor and imports no module of a higher floor; there is no import cycle;
nothing outside the command line imports it; importing a library module changes no process state."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Floors, lowest first: a module is on the floor of the longest prefix that names it. The same
#: table is drawn in docs/architecture.md (the test below checks that too).
FLOORS = [
    ("foundations", ["eusr_perceptual.errors", "eusr_perceptual.files", "eusr_perceptual.devices",
                     "eusr_perceptual.resize", "eusr_perceptual.registry", "eusr_perceptual.configs.base"]),
    ("losses", ["eusr_perceptual.losses", "nima.losses", "nima.config"]),
    ("models, data, metrics", ["eusr_perceptual.models", "eusr_perceptual.data", "eusr_perceptual.metrics",
                               "nima.model", "nima.datasets", "nima.preprocessing"]),
    ("configs, inference, importers", ["eusr_perceptual.configs", "eusr_perceptual.inference",
                                       "eusr_perceptual.importers", "eusr_perceptual.loading"]),
    ("trainers, serving, evaluation", ["eusr_perceptual.training", "eusr_perceptual.serving",
                                       "eusr_perceptual.evaluation", "nima.train", "nima.evaluation",
                                       "nima.export", "nima.recalibration"]),
    ("pipelines", ["eusr_perceptual.pipelines"]),
    ("command line", ["eusr_perceptual.cli"]),
]
PACKAGES = ("eusr_perceptual", "nima")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the two packages; the package roots themselves hold no code (checked)."""
    found = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
    for package in PACKAGES:
        assert not imports_of(found.pop(package), found), f"{package}/__init__.py should import nothing"
    return found


def floor_of(module: str) -> tuple[int, str]:
    """(floor index, the prefix that placed it)."""
    best = None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    if best is None:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS and docs/architecture.md")
    return best


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(name for name in names if name in known)
    return found


def test_no_module_imports_a_higher_floor():
    known = modules()
    wrong = []
    for module, path in known.items():
        floor, prefix = floor_of(module)
        for target in imports_of(path, known) - {module}:
            target_floor, target_prefix = floor_of(target)
            if target_floor > floor:
                wrong.append(f"{module} ({FLOORS[floor][0]}) imports {target} ({FLOORS[target_floor][0]})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(sorted(wrong))


def test_there_is_no_import_cycle():
    known = modules()
    graph = {module: imports_of(path, known) - {module} for module, path in known.items()}
    # A package's __init__ importing its own modules is not a cycle of the design.
    graph = {m: {t for t in targets if not (m and t.startswith(m + "."))} for m, targets in graph.items()}
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_nothing_outside_the_command_line_imports_it():
    known = modules()
    users = [m for m, p in known.items() if not m.startswith("eusr_perceptual.cli")
             and any(t.startswith("eusr_perceptual.cli") for t in imports_of(p, known))]
    assert not users


def test_the_architecture_doc_lists_every_floor_and_prefix():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for name, prefixes in FLOORS:
        assert name in text
        for prefix in prefixes:
            assert f"`{prefix}`" in text, prefix


def test_importing_every_library_module_changes_no_process_state():
    """In a fresh interpreter that has already imported the third-party libraries (which change
    the environment and loggers themselves: OpenCV ``LD_LIBRARY_PATH``, TensorFlow its
    loggers), the environment, file descriptor 2 and the loggers' levels and handlers are the
    same after importing every module of the project outside ``cli``."""
    library = sorted(m for m in modules() if not m.startswith("eusr_perceptual.cli"))
    script = f"""
import logging, os, sys
def state():
    fd2 = os.fstat(2)
    loggers = {{name: (logging.getLogger(name).level, len(logging.getLogger(name).handlers))
               for name in ("", "absl", "tensorflow", "eusr_perceptual")}}
    return dict(os.environ), (fd2.st_ino, fd2.st_dev), loggers, logging.root.manager.disable
import cv2, keras, matplotlib, numpy, PIL.Image, scipy, skimage, tensorflow, tensorflow_datasets  # noqa
before = state()
import importlib
for name in {library!r}:
    importlib.import_module(name)
after = state()
changed = [k for k, a, b in zip(("environment", "fd 2", "loggers", "logging.disable"), before, after) if a != b]
if before[0] != after[0]:
    changed.append(sorted(set(after[0].items()) ^ set(before[0].items())))
print("CHANGED", changed)
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CHANGED []" in result.stdout, result.stdout[-2000:]
