"""TF Serving's REST ``:predict`` JSON conventions, applied to a SavedModel loaded in Python.

TF Serving's ``POST /v1/models/<name>[/versions/<v>]:predict`` takes a JSON body and answers
with JSON (``tensorflow_serving/util/json_tensor.h``); this module does the same conversions
around ``tf.saved_model.load``, to check an export with the requests a client would send when
no model server is at hand:

* ``signature_name`` picks the signature (default ``serving_default``);
* row format ``{"instances": [...]}``: one list item per batch element, a bare value (one
  input only) or an ``{input name: value}`` object; the answer is
  ``{"predictions": [...]}``, bare values for one output, else ``{output name: value}``;
* columnar format ``{"inputs": value}`` or ``{"inputs": {input name: value}}``; the answer is
  ``{"outputs": value}`` or ``{"outputs": {output name: value}}``;
* binary strings travel as ``{"b64": "<base64>"}`` (inputs: anywhere a string is expected;
  outputs: only for outputs whose name ends in ``_bytes``, else as UTF-8 text).

It imports only TensorFlow and NumPy, so ``python eusr_perceptual/serving/rest.py <saved model>
<request.json>`` runs without Keras or this project installed and prints the response.
"""

from __future__ import annotations

import base64
import json
import sys

import numpy as np
import tensorflow as tf

__all__ = ["predict", "request_inputs", "response_body"]


def _decode_b64(value):
    """JSON values with ``{"b64": ...}`` objects replaced by their bytes (recursively)."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    return value


def _tensor(value, spec: tf.TensorSpec) -> tf.Tensor:
    value = _decode_b64(value)
    if spec.dtype == tf.string:
        return tf.constant(np.array(value, dtype=object), tf.string)
    return tf.constant(np.array(value), spec.dtype)


def request_inputs(signature, body: dict) -> tuple[dict[str, tf.Tensor], str]:
    """``({input name: tensor}, "row" | "columnar")`` of a ``:predict`` JSON body.

    Raises:
        ValueError: the body has neither or both of ``instances`` and ``inputs``, or misses
            a named input.
    """
    specs = signature.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('a predict request has exactly one of "instances" (row format) or "inputs" (columnar)')
    if "instances" in body:
        instances = body["instances"]
        named = bool(instances) and isinstance(instances[0], dict) and "b64" not in instances[0]
        if not named:
            if len(specs) != 1:
                raise ValueError(f"the signature has inputs {sorted(specs)}: give each instance as an object")
            (name,) = specs
            return {name: _tensor(instances, specs[name])}, "row"
        missing = [name for name in specs if any(name not in instance for instance in instances)]
        if missing:
            raise ValueError(f"instances miss the input(s) {missing}")
        return {name: _tensor([instance[name] for instance in instances], specs[name]) for name in specs}, "row"
    inputs = body["inputs"]
    if not (isinstance(inputs, dict) and set(inputs) <= set(specs) and "b64" not in inputs):
        if len(specs) != 1:
            raise ValueError(f"the signature has inputs {sorted(specs)}: give them by name")
        inputs = {next(iter(specs)): inputs}
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ValueError(f"inputs miss {missing}")
    return {name: _tensor(value, specs[name]) for name, value in inputs.items()}, "columnar"


def _json_value(name: str, array):
    array = np.asarray(array)
    if array.dtype.kind in "OS":  # tf.string (a row of a string tensor is a bytes scalar)
        encode = (lambda b: {"b64": base64.b64encode(b).decode("ascii")}) if name.endswith("_bytes") else (lambda b: b.decode("utf-8"))
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.ndim else encode(array.item())
    return array.tolist()


def response_body(outputs: dict[str, np.ndarray], format: str) -> dict:
    """The JSON answer of TF Serving for ``outputs`` in the request's format."""
    if format == "columnar":
        values = {name: _json_value(name, array) for name, array in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = {len(array) for array in outputs.values()}
    if len(batch) != 1:
        raise ValueError(f"row format needs outputs of one batch size, got {sorted(batch)}")
    rows = [{name: _json_value(name, array[i]) for name, array in outputs.items()} for i in range(batch.pop())]
    return {"predictions": [next(iter(row.values())) for row in rows] if len(outputs) == 1 else rows}


def predict(loaded, body: dict) -> dict:
    """Runs a ``:predict`` JSON body on a loaded SavedModel; returns the JSON answer."""
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    inputs, format = request_inputs(signature, body)
    outputs = {name: tensor.numpy() for name, tensor in signature(**inputs).items()}
    return response_body(outputs, format)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python rest.py SAVED_MODEL_DIR REQUEST.json")
    print(json.dumps(predict(tf.saved_model.load(sys.argv[1]), json.loads(open(sys.argv[2]).read()))))
