"""TFLite and ONNX files of a generator, each checked in its own runtime.

Every route of the model (its scales and the multi-pass x4 routes it supports, as in
:mod:`eusr_perceptual.serving.savedmodel`) maps float32 ``images`` ``[batch, height, width, 3]`` in
[0, 255] to the model's float32 output ``upscaled`` (unclipped, unrounded: the
``upscale_x<s>_float`` signature of the SavedModel), batch and size dynamic.

* TFLite (``tf.lite.TFLiteConverter``): one ``<name>.tflite`` whose signatures are named like
  the SavedModel's float signatures (``upscale_x4_float``, ``path_x2x2_float``...), with
  float32 weights or float16 weights (``float16=True``: half the size; the interpreter
  computes in float32 on CPUs). A signature runner resizes its input for each call
  (``resize_tensor_input``), so any image size runs without a new conversion — and any rank
  and channel count: a 5x6 ``[H, W, 3]`` image ran as 5 images of 6x3 pixels (a
  ``[5, 12, 6, 3]`` answer at x2) and a 1-channel batch gave a 3-channel one. TFLite has no
  assert op, so each signature starts with a reshape to ``[B, H, W, 3]`` taken from the
  input's own shape (:func:`_rgb_batch`): the identity on an RGB batch, a RESHAPE that fails
  to prepare on anything else. :func:`tflite_runner` refuses such inputs with a sentence
  first (onnxruntime refuses them by the declared input shape).
* ONNX (``tf2onnx``, opset :data:`ONNX_OPSET`): one ``<name>_<route>.onnx`` per route (an ONNX
  graph has one entry point), input ``images`` and output ``upscaled`` with symbolic batch,
  height and width.

The functions are frozen first (``convert_variables_to_constants_v2``): the converters keep
variables and captured constants (EUSR's RGB mean) as resources otherwise, which the TFLite
runtime reads as uninitialised (NaN output) and tf2onnx turns into extra graph inputs.

The converters and runtimes are the optional ``export`` extra (``pip install .[export]``:
tf2onnx, onnxruntime, ai-edge-litert (the LiteRT interpreter), tensorflow-serving-api);
:class:`~eusr_perceptual.serving.warmup.MissingExtra` names it when one is missing.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from eusr_perceptual.data.images import load_rgb8
from eusr_perceptual.data.sources import skimage_photograph_paths
from eusr_perceptual.inference import routes_of, run_route
from eusr_perceptual.loading import float_signature_name
from eusr_perceptual.serving.graph_resize import halve_matlab_graph
from eusr_perceptual.serving.warmup import MissingExtra

__all__ = [
    "ONNX_OPSET",
    "TOLERANCE",
    "differences_from_keras",
    "export_onnx",
    "export_tflite",
    "onnx_runner",
    "reference_images",
    "require",
    "tflite_runner",
]

#: ONNX opset of the exports (onnxruntime >= 1.12 runs it).
ONNX_OPSET = 17
#: Largest difference from the Keras model (on the [0, 255] scale) of a float32 export.
TOLERANCE = 1e-3
_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


def require(module: str, package: str):
    """Imports ``module`` or raises :class:`MissingExtra` naming the ``export`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(f"{package} is not installed: pip install .[export] (or pip install {package})") from error


def _frozen_routes(model, routes: Iterable[str] | None) -> dict[str, Callable]:
    """``{route: tf.function images -> {"upscaled": ...}}`` with every variable and captured
    tensor folded into constants (all the model's routes when ``routes`` is None)."""
    frozen = {}
    for route in routes_of(model) if routes is None else routes:
        traced = tf.function(lambda images, r=route: run_route(model, images, r, halve_fn=halve_matlab_graph))
        constant = convert_variables_to_constants_v2(traced.get_concrete_function(_IMAGES))
        frozen[route] = tf.function(lambda images, f=constant: {"upscaled": f(images)[0]}, input_signature=[_IMAGES])
    return frozen


def _rgb_batch(images: tf.Tensor) -> tf.Tensor:
    """``images`` reshaped to ``[B, H, W, 3]`` from its first three dimensions: the identity for
    an RGB batch; for another rank or channel count the element counts differ and TFLite's
    RESHAPE fails (``num_input_elements != num_output_elements``)."""
    return tf.reshape(images, tf.concat([tf.shape(images)[:3], [3]], axis=0))


def export_tflite(model, path: str | Path, float16: bool = False, routes: Iterable[str] | None = None) -> Path:
    """Writes a ``.tflite`` file with one signature per route (all routes by default); each
    refuses inputs other than ``[B, H, W, 3]`` (:func:`_rgb_batch`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signatures = {
        float_signature_name(route): tf.function(lambda images, f=function: f(_rgb_batch(images)), input_signature=[_IMAGES]).get_concrete_function()
        for route, function in _frozen_routes(model, routes).items()
    }
    with tempfile.TemporaryDirectory() as work:  # named signatures come from a SavedModel
        tf.saved_model.save(tf.Module(), work, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(work, signature_keys=list(signatures))
        if float16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        path.write_bytes(converter.convert())
    return path


def export_onnx(model, directory: str | Path, name: str, routes: Iterable[str] | None = None) -> dict[str, Path]:
    """Writes ``<directory>/<name>_<route>.onnx`` per route; returns ``{route: path}``."""
    tf2onnx = require("tf2onnx", "tf2onnx")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for route, function in _frozen_routes(model, routes).items():
        written[route] = directory / f"{name}_{route}.onnx"
        tf2onnx.convert.from_function(function, input_signature=[_IMAGES], opset=ONNX_OPSET, output_path=str(written[route]))
    return written


def tflite_runner(path: str | Path, signature: str) -> Callable[[np.ndarray], np.ndarray]:
    """``run(images) -> upscaled`` through the LiteRT interpreter (any batch and size).

    ``run`` raises ValueError for images that are not ``[batch, height, width, 3]``.
    """
    interpreter = require("ai_edge_litert.interpreter", "ai-edge-litert").Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(signature)

    def run(images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be RGB, [batch, height, width, 3]; got shape {images.shape}")
        return runner(images=images)["upscaled"]

    return run


def onnx_runner(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """``run(images) -> upscaled`` through onnxruntime on the CPU."""
    session = require("onnxruntime", "onnxruntime").InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(["upscaled"], {"images": np.asarray(images, np.float32)})[0]


def reference_images(sizes: tuple[tuple[int, int], ...] = ((32, 32), (20, 28))) -> list[np.ndarray]:
    """Float32 batches of centre crops of the embedded held-out photographs, one batch per
    ``(height, width)`` (two sizes check the dynamic height and width)."""
    photographs = [load_rgb8(path) for path in skimage_photograph_paths("held_out")]

    def centre(photograph: np.ndarray, height: int, width: int) -> np.ndarray:
        top, left = (photograph.shape[0] - height) // 2, (photograph.shape[1] - width) // 2
        return photograph[top : top + height, left : left + width]

    return [np.stack([centre(p, h, w) for p in photographs]).astype(np.float32) for h, w in sizes]


def differences_from_keras(model, runners: dict[str, Callable[[np.ndarray], np.ndarray]], batches: list[np.ndarray]) -> dict[str, float]:
    """``{route: max |export - Keras|}`` over ``batches`` (float32 outputs on the [0, 255] scale)."""
    return {
        route: max(float(np.abs(run(images) - run_route(model, images, route).numpy()).max()) for images in batches)
        for route, run in runners.items()
    }
