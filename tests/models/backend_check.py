"""Run by tests/models/test_backends.py as ``KERAS_BACKEND=<backend> python tests/models/backend_check.py
<folder>``: checks every network of ``<folder>/cases.json`` under that backend and prints one
JSON line of results (largest absolute differences on the [0, 255] scale).

For each case: the ``.keras`` file saved under TensorFlow is loaded and run on the saved input
(``loaded``: its difference from TensorFlow's output); a network of the same spec is built
here with fresh weights and run (``fresh``: its difference from TensorFlow's output, which
shows the comparison tells weights apart); after every case has run, ``tensorflow_imported``
says whether loading, building or running imported TensorFlow; then each fresh network is
saved and loaded again here (``round_trip``: loaded minus saved output).

Imports nothing of the test suite (``tests/helpers.py`` imports TensorFlow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from eusr_perceptual.models.registry import build_network


def _outputs(model, case: dict, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a case: one per generator scale, the logits of a discriminator."""
    if case["role"] == "generator":
        return {f"x{s}": keras.ops.convert_to_numpy(model(inputs, scale=s)) for s in case["scales"]}
    return {"logits": keras.ops.convert_to_numpy(model(inputs, training=False))}


def _largest_difference(a: dict, b: dict) -> float:
    return max(float(np.abs(a[key].astype(np.float64) - b[key]).max()) for key in a)


def main(folder: Path) -> dict:
    cases = json.loads((folder / "cases.json").read_text())
    reference = np.load(folder / "reference.npz")
    results, fresh_models = {}, {}
    for case in cases:
        name, inputs = case["name"], reference[f"{case['name']}/input"]
        expected = {key: reference[f"{name}/{key}"] for key in _outputs_keys(case)}
        loaded = keras.models.load_model(folder / f"{name}.keras", compile=False)
        fresh = build_network(case["spec"], case["role"], **case["context"])
        if case["role"] == "generator":
            fresh.build()
        fresh_out = _outputs(fresh, case, inputs)
        fresh_models[name] = (fresh, fresh_out)
        results[name] = {"loaded": _largest_difference(_outputs(loaded, case, inputs), expected),
                         "fresh": _largest_difference(fresh_out, expected)}
    tensorflow_imported = "tensorflow" in sys.modules  # saving below imports it where installed (Keras)
    for case in cases:
        name, inputs = case["name"], reference[f"{case['name']}/input"]
        model, before = fresh_models[name]
        path = folder / f"{keras.backend.backend()}_{name}.keras"
        model.save(path)
        after = _outputs(keras.models.load_model(path, compile=False), case, inputs)
        results[name]["round_trip"] = _largest_difference(after, before)
    return {"backend": keras.backend.backend(), "tensorflow_imported": tensorflow_imported, "results": results}


def _outputs_keys(case: dict) -> list[str]:
    return [f"x{s}" for s in case["scales"]] if case["role"] == "generator" else ["logits"]


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
