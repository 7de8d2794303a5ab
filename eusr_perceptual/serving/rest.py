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

Values are checked as TF Serving checks them, with one clear ``ValueError`` (TF Serving's
``{"error": ...}`` answer): an integer input takes JSON integers within its type's range
(``300`` or ``-5`` for uint8 and ``1.7`` are refused, where a bare conversion would wrap and
truncate them), a float input numbers, a string input strings or ``{"b64": ...}`` objects of
valid base64; nested lists must form a tensor; ``signature_name`` must name a signature.

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
    """JSON values with ``{"b64": ...}`` objects replaced by their bytes (recursively).

    Raises:
        ValueError: a ``"b64"`` value is not base64.
    """
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (TypeError, ValueError):
            raise ValueError(f'a "b64" value is not base64: {str(value["b64"])[:40]!r}') from None
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    return value


def _array(value, name: str, dtype: object = None) -> np.ndarray:
    try:
        return np.array(value, dtype=dtype)
    except (ValueError, OverflowError) as error:
        raise ValueError(f'input "{name}": the JSON value is not a tensor ({error})') from None


def _offending(array: np.ndarray):
    """A value of ``array`` to name in an error: a fractional one if there is one."""
    if array.dtype.kind == "f" and (array != np.floor(array)).any():
        return array[array != np.floor(array)].flat[0]
    return array.flat[0] if array.size else "[]"


def _tensor(value, spec: tf.TensorSpec, name: str) -> tf.Tensor:
    """The tensor of a JSON value for an input of ``spec``, refused where TF Serving refuses it."""
    value = _decode_b64(value)
    if spec.dtype == tf.string:
        array = _array(value, name, object)
        wrong = [item for item in array.flat if not isinstance(item, (bytes, str))]
        if wrong:
            raise ValueError(f'input "{name}" takes strings or {{"b64": "<base64>"}} objects, got {str(wrong[0])[:40]}')
        return tf.constant(array, tf.string)
    array = _array(value, name)
    dtype = spec.dtype
    kinds, what = ("b", "true/false") if dtype.is_bool else ("iu", "integers") if dtype.is_integer else ("iuf", "numbers")
    if array.dtype.kind not in kinds:
        raise ValueError(f'input "{name}" of {dtype.name} takes JSON {what}, got {_offending(array)}')
    if dtype.is_integer and array.size and (array.min() < dtype.min or array.max() > dtype.max):
        outside = array[(array < dtype.min) | (array > dtype.max)].flat[0]
        raise ValueError(f'input "{name}" of {dtype.name} takes integers in [{dtype.min}, {dtype.max}], got {outside}')
    return tf.constant(array, dtype)


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
        if not isinstance(instances, list):
            raise ValueError(f'"instances" is a list with one item per batch element, got {type(instances).__name__}')
        named = bool(instances) and isinstance(instances[0], dict) and "b64" not in instances[0]
        if named and not all(isinstance(instance, dict) for instance in instances):
            raise ValueError("instances mix {input name: value} objects and bare values")
        if not named:
            if len(specs) != 1:
                raise ValueError(f"the signature has inputs {sorted(specs)}: give each instance as an object")
            (name,) = specs
            return {name: _tensor(instances, specs[name], name)}, "row"
        missing = [name for name in specs if any(name not in instance for instance in instances)]
        if missing:
            raise ValueError(f"instances miss the input(s) {missing}")
        return {name: _tensor([instance[name] for instance in instances], specs[name], name) for name in specs}, "row"
    inputs = body["inputs"]
    if not (isinstance(inputs, dict) and set(inputs) <= set(specs) and "b64" not in inputs):
        if len(specs) != 1:
            raise ValueError(f"the signature has inputs {sorted(specs)}: give them by name")
        inputs = {next(iter(specs)): inputs}
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ValueError(f"inputs miss {missing}")
    return {name: _tensor(value, specs[name], name) for name, value in inputs.items()}, "columnar"


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
    """Runs a ``:predict`` JSON body on a loaded SavedModel; returns the JSON answer.

    Raises:
        ValueError: the body is not a valid request for the model (the message says why).
        tf.errors.OpError: the signature refused the inputs (e.g. ``InvalidArgument``).
    """
    if not isinstance(body, dict):
        raise ValueError(f"a predict request is a JSON object, got {type(body).__name__}")
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ValueError(f"the model has no signature {name!r}; it has {', '.join(sorted(loaded.signatures))}")
    signature = loaded.signatures[name]
    inputs, format = request_inputs(signature, body)
    outputs = {name: tensor.numpy() for name, tensor in signature(**inputs).items()}
    return response_body(outputs, format)


def main(argv: list[str]) -> int:
    """Prints the JSON answer to the request, or TF Serving's ``{"error": ...}`` (status 1)."""
    if len(argv) != 2:
        print("usage: python rest.py SAVED_MODEL_DIR REQUEST.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as request:
            body = json.load(request)
        answer = predict(tf.saved_model.load(argv[0]), body)
    except (OSError, ValueError) as error:
        answer = {"error": str(error)}
    except tf.errors.OpError as error:
        answer = {"error": error.message}
    print(json.dumps(answer))
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
