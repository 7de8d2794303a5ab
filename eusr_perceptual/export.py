"""TF Serving-ready SavedModels of a generator: ``saved_models/<name>/<version>/``.

Every scale of the model, and each multi-pass route it supports (unless ``paths`` narrows
them), gets two signatures, both taking ``images`` ``[batch, height, width, 3]`` with dynamic batch and size
and returning ``{"upscaled": ...}``:

* ``upscale_x<s>`` / ``path_<route>``: uint8 in, uint8 out (MATLAB rounding, clipped);
* ``upscale_x<s>_float`` / ``path_<route>_float``: float32 in [0, 255] in, the model's
  float32 output out (neither clipped nor rounded, so passes compose as in Keras);

``serving_default`` is ``upscale_x4`` (the model's largest scale if it has no x4 path).
The 4PP-EUSR routes ``x2x2`` and ``x8down`` (Table 3) appear as ``path_x2x2`` and
``path_x8down`` when the model has the x2 / x8 paths they use.

The SavedModel holds only TensorFlow graphs and variables: ``tf.saved_model.load`` runs it
without Keras or this project, and TF Serving serves it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from eusr_perceptual.inference import MULTIPASS_ROUTES, routes_of, run_route
from eusr_perceptual.models.loading import float_signature_name
from eusr_perceptual.resize import resize_weights, round_to_uint8_tf

__all__ = ["export_savedmodel", "halve_matlab_graph", "signature_names"]


def _halving_taps() -> np.ndarray:
    """The 8 taps of MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased) away from borders."""
    _, weights = resize_weights(32, 16, 0.5)
    return weights[8]


def halve_matlab_graph(images: tf.Tensor) -> tf.Tensor:
    """MATLAB bicubic halving of even-sized float ``[B, H, W, C]`` images, in graph ops only.

    Equal to :func:`eusr_perceptual.resize.imresize_tf` with ``scale=0.5`` for even sizes:
    an exact halving has 8 fixed taps centred between pixels ``2i`` and ``2i + 1``, and
    MATLAB's mirrored indices at the borders are 3 pixels of symmetric padding. Unlike
    ``imresize_tf`` it needs no ``numpy_function`` for unknown sizes, so it can be saved.
    """
    taps = _halving_taps()
    channels = images.shape[-1]
    kernel = tf.constant(np.outer(taps, taps)[:, :, None, None], tf.float32)
    padded = tf.pad(tf.cast(images, tf.float32), [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, tf.tile(kernel, [1, 1, channels, 1]), [1, 2, 2, 1], "VALID")


def signature_names(route: str) -> tuple[str, str]:
    """``(uint8 name, float32 name)`` of a route's signatures."""
    float_name = float_signature_name(route)
    return float_name.removesuffix("_float"), float_name


def _images_spec(dtype: tf.DType) -> tf.TensorSpec:
    return tf.TensorSpec([None, None, None, 3], dtype, name="images")


class _TracedPaths:
    """The generator protocol over one traced function per scale."""

    def __init__(self, functions: dict):
        self.functions, self.scales = functions, tuple(functions)

    def __call__(self, images, scale: int = 4):
        return self.functions[scale](images)


def _serving_default_scale(scales: tuple[int, ...]) -> int:
    return 4 if 4 in scales else max(scales)


def _next_version(folder: Path) -> int:
    existing = [int(child.name) for child in folder.iterdir() if child.name.isdigit()] if folder.is_dir() else []
    return max(existing, default=0) + 1


def export_savedmodel(
    model,
    export_dir: str | Path,
    name: str,
    version: int | None = None,
    paths: Iterable[str] | None = None,
) -> Path:
    """Writes ``<export_dir>/<name>/<version>/`` and returns that folder.

    Args:
        model: a Keras generator (``model(x, scale=s)``, ``model.scales``).
        export_dir: the model base folder of TF Serving (e.g. ``saved_models``).
        name: the model name (TF Serving's ``--model_name``).
        version: integer version; the next free one when None.
        paths: the multi-pass x4 routes to expose beside the scales (``"x2x2"``,
            ``"x8down"``; default: those the model supports; ``()`` for none). Every scale of
            the model is always exported, so ``multipass.PATHS`` may be passed as it is.

    Raises:
        FileExistsError: the version folder exists already.
        ValueError: a requested route is not supported by the model.
    """
    scales = tuple(model.scales)
    available = routes_of(model)
    requested = tuple(r for r in available if r in MULTIPASS_ROUTES) if paths is None else tuple(paths)
    for route in requested:
        if route not in available:
            raise ValueError(f"the model has no {route} route; it supports {', '.join(available)}")
    multipass = tuple(dict.fromkeys(r for r in requested if r in MULTIPASS_ROUTES))
    routes = tuple(f"x{scale}" for scale in scales) + multipass
    base = Path(export_dir) / name
    version = _next_version(base) if version is None else int(version)
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists already; choose another version")

    module = tf.Module()
    module.generator_variables = list(model.variables)
    signatures = {}

    def add(route: str, float_function) -> None:
        """Traces a route's float32 signature and its uint8 wrapper onto ``module``."""
        uint8_name, float_name = signature_names(route)
        float_traced = tf.function(float_function, input_signature=[_images_spec(tf.float32)])

        def uint8_function(images):
            return {"upscaled": round_to_uint8_tf(float_traced(tf.cast(images, tf.float32))["upscaled"])}

        uint8_traced = tf.function(uint8_function, input_signature=[_images_spec(tf.uint8)])
        for signature_name, traced in ((float_name, float_traced), (uint8_name, uint8_traced)):
            setattr(module, signature_name, traced)
            signatures[signature_name] = traced.get_concrete_function()

    # Each path of the model is traced once; the multi-pass routes call those traces.
    traced_model = _TracedPaths(
        {scale: tf.function(lambda images, s=scale: model(images, scale=s), input_signature=[_images_spec(tf.float32)]) for scale in scales}
    )
    for route in routes:
        add(route, lambda images, r=route: {"upscaled": run_route(traced_model, images, r, halve_fn=halve_matlab_graph)})
    signatures["serving_default"] = signatures[signature_names(f"x{_serving_default_scale(scales)}")[0]]
    tf.saved_model.save(module, str(target), signatures=signatures)
    return target
