"""TF Serving-ready SavedModels of a generator: ``saved_models/<name>/<version>/``.

Every scale of the model, and each multi-pass route it supports (unless ``paths`` narrows
them), gets four signatures, all with dynamic batch and size. Two take ``images``
``[batch, height, width, 3]`` and return ``{"upscaled": ...}``:

* ``upscale_x<s>`` / ``path_<route>``: uint8 in, uint8 out (MATLAB rounding, clipped);
* ``upscale_x<s>_float`` / ``path_<route>_float``: float32 in [0, 255] in, the model's
  float32 output out (neither clipped nor rounded, so passes compose as in Keras);

two take encoded images, ``images_bytes`` ``[batch]`` of ``tf.string`` (PNG, JPEG, BMP, GIF;
sizes may differ within a batch; TF Serving's REST ``{"b64": ...}`` values), and return PNG
bytes ``{"upscaled_bytes": [batch]}`` (:mod:`eusr_perceptual.serving.codec`: grayscale, RGBA
and 16-bit PNG handled as the project's image reader does; a non-image payload fails with
an ``InvalidArgument`` error naming it):

* ``upscale_x<s>_png`` / ``path_<route>_png``: the whole image at once (the uint8 signature);
* ``upscale_x<s>_png_tiled`` / ``path_<route>_png_tiled``: tiles of ``tile`` LR pixels with
  ``overlap`` pixels of context, inside the graph (:mod:`eusr_perceptual.serving.tiling`), so
  that large images are served in bounded memory.

Each encoded-image signature reads an image's size from its header and refuses, before
decoding it, an image over its limit (``InvalidArgument`` naming the limit and, for the
whole-image signature, the tiled one to use). The limits follow from a memory budget per
request (:class:`~eusr_perceptual.serving.limits.RequestBudget`, default 2048 MiB) and the
model's estimated peak memory per pixel on each route
(:func:`eusr_perceptual.serving.memory.bytes_per_pixel`); a route's tile is ``tile`` or, where
its forward pass would take more than half the budget, the largest that fits. They are
written to ``assets.extra/request_limits.json`` (:mod:`eusr_perceptual.serving.limits`).

``serving_default`` is ``upscale_x4`` (the model's largest scale if it has no x4 path).
Every ``images`` signature checks inside its graph that the input has 3 channels and otherwise fails
with :data:`CHANNELS_MESSAGE` (TF Serving and loaded signatures do not enforce the declared
channel count themselves; without the check a 4-channel batch failed inside the model with
"Incompatible shapes: [1,5,6,4] vs. [3]").
The 4PP-EUSR routes ``x2x2`` and ``x8down`` (Table 3) appear as ``path_x2x2`` and
``path_x8down`` when the model has the x2 / x8 paths they use.

The SavedModel holds only TensorFlow graphs and variables: ``tf.saved_model.load`` runs it
without Keras or this project, and TF Serving serves it as it is. With tensorflow-serving-api
installed (the ``export`` extra) the export also writes TF Serving's warm-up file,
``assets.extra/tf_serving_warmup_requests``: one request per signature on a 32x32 image
(:mod:`eusr_perceptual.serving.warmup`). See docs/serving.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from eusr_perceptual.errors import UsageError, ValueUsageError
from eusr_perceptual.inference import MULTIPASS_ROUTES, route_factor, routes_of, run_route
from eusr_perceptual.loading import float_signature_name
from eusr_perceptual.resize import round_to_uint8_tf
from eusr_perceptual.serving.codec import IMAGES_BYTES, UPSCALED_BYTES, encoded_images_spec, upscale_encoded
from eusr_perceptual.serving.graph_resize import halve_matlab_graph
from eusr_perceptual.serving.limits import PixelLimit, RequestBudget, fitting_tile, tiled_limit, untiled_limit, write_limits
from eusr_perceptual.serving.memory import bytes_per_pixel
from eusr_perceptual.serving.tiling import upscale_tiled
from eusr_perceptual.serving.warmup import MissingExtra, warmup_image, write_warmup_requests

__all__ = [
    "encoded_signature_names",
    "export_savedmodel",
    "exported_routes",
    "route_limits",
    "signature_names",
]

log = logging.getLogger(__name__)


class VersionExistsError(UsageError, FileExistsError):
    """The SavedModel version folder exists already (TF Serving serves versions as written)."""


def exported_routes(model, paths: Iterable[str] | None = None) -> tuple[str, ...]:
    """The model's scales, then the multi-pass x4 routes of ``paths`` (default: all it supports).

    Raises:
        ValueError: a route of ``paths`` is not supported by the model.
    """
    available = routes_of(model)
    requested = tuple(r for r in available if r in MULTIPASS_ROUTES) if paths is None else tuple(paths)
    for route in requested:
        if route not in available:
            raise ValueUsageError(f"the model has no {route} route; it supports {', '.join(available)}")
    multipass = tuple(dict.fromkeys(r for r in requested if r in MULTIPASS_ROUTES))
    return tuple(f"x{scale}" for scale in model.scales) + multipass


def signature_names(route: str) -> tuple[str, str]:
    """``(uint8 name, float32 name)`` of a route's signatures."""
    float_name = float_signature_name(route)
    return float_name.removesuffix("_float"), float_name


def encoded_signature_names(route: str) -> tuple[str, str]:
    """``(PNG name, tiled PNG name)`` of a route's encoded-image signatures."""
    png_name = f"{signature_names(route)[0]}_png"
    return png_name, f"{png_name}_tiled"


def _images_spec(dtype: tf.DType) -> tf.TensorSpec:
    return tf.TensorSpec([None, None, None, 3], dtype, name="images")


#: The message of a signature called with other than 3 channels (a loaded signature and TF
#: Serving feed such tensors to the graph despite the declared shape).
CHANNELS_MESSAGE = "images must be RGB, [batch, height, width, 3]; convert grayscale/RGBA images first. Channels given vs expected:"


def _assert_rgb(images: tf.Tensor) -> tf.Tensor:
    """The signature's own check of the channel count, with :data:`CHANNELS_MESSAGE`."""
    with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(images)[-1], 3, message=CHANNELS_MESSAGE)]):
        return tf.identity(images)


class _TracedPaths:
    """The generator protocol over one traced function per scale."""

    def __init__(self, functions: dict):
        self.functions, self.scales = functions, tuple(functions)

    def __call__(self, images, scale: int = 4):
        return self.functions[scale](images)


def route_limits(model, route: str, tile: int, overlap: int, budget: RequestBudget) -> tuple[PixelLimit, PixelLimit, int]:
    """``(whole-image limit, tiled limit, tile)`` of a route's encoded-image signatures.

    Raises:
        ValueError: the model's memory cannot be estimated, or no tile fits the budget.
    """
    png_name, tiled_name = encoded_signature_names(route)
    per_pixel = bytes_per_pixel(lambda images: round_to_uint8_tf(run_route(model, images, route, halve_fn=halve_matlab_graph)))
    fitted = fitting_tile(tile, overlap, per_pixel, budget)
    if fitted < tile:
        log.info("%s: %d-pixel tiles (not %d) fit the request budget of %d MiB", tiled_name, fitted, tile, budget.request_memory_mib)
    reexport = "re-export with a larger --request-memory-mib or --max-pixels"
    whole = untiled_limit(budget, per_pixel, png_name, f"send it to {tiled_name}, or {reexport}")
    tiled = tiled_limit(budget, per_pixel, route_factor(route), fitted, overlap, tiled_name, f"send it in parts, or {reexport}")
    return whole, tiled, fitted


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
    tile: int = 128,
    overlap: int = 32,
    warmup: bool = True,
    budget: RequestBudget = RequestBudget(),
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
        tile: LR core size of the ``_png_tiled`` signatures' tiles (default as
            :func:`eusr_perceptual.inference.upscale_image`).
        overlap: LR context pixels around each tile of the ``_png_tiled`` signatures.
        warmup: write ``assets.extra/tf_serving_warmup_requests`` (needs tensorflow-serving-api;
            without it a warning is logged and the file is left out).
        budget: the memory one encoded-image request may take, or explicit pixel limits
            (:mod:`eusr_perceptual.serving.limits`).

    Raises:
        FileExistsError: the version folder exists already.
        ValueError: a requested route is not supported by the model, its memory cannot be
            estimated, or no tile fits the budget.
    """
    scales = tuple(model.scales)
    routes = exported_routes(model, paths)
    base = Path(export_dir) / name
    version = _next_version(base) if version is None else int(version)
    target = base / str(version)
    if target.exists():
        raise VersionExistsError(f"{target} exists already; choose another version")

    module = tf.Module()
    module.generator_variables = list(model.variables)
    signatures, warmup_inputs, limits = {}, {}, []
    image = warmup_image()[None]
    png = tf.io.encode_png(image[0]).numpy()

    def add(route: str, float_function) -> None:
        """Traces a route's float32 signature and its uint8 and encoded-image wrappers.

        Only the concrete functions are saved, as signatures: ``tf.function`` attributes of the
        module would be traced again when saving.
        """
        uint8_name, float_name = signature_names(route)
        png_name, tiled_name = encoded_signature_names(route)
        factor = route_factor(route)
        png_limit, tiled_png_limit, route_tile = route_limits(model, route, tile, overlap, budget)
        limits.extend((png_limit, tiled_png_limit))
        float_traced = tf.function(lambda images: float_function(_assert_rgb(images)), input_signature=[_images_spec(tf.float32)])

        def uint8_function(images):
            return {"upscaled": round_to_uint8_tf(float_traced(tf.cast(images, tf.float32))["upscaled"])}

        uint8_traced = tf.function(uint8_function, input_signature=[_images_spec(tf.uint8)])

        def upscale_uint8(images):  # float32 integer values (decoded pixels) -> uint8
            return uint8_traced(tf.cast(images, tf.uint8))["upscaled"]

        def upscale_uint8_tiled(images):
            return upscale_tiled(upscale_uint8, images, factor, route_tile, overlap)

        def encoded_signature(upscale, limit):
            def encoded(images_bytes):
                return {UPSCALED_BYTES: upscale_encoded(images_bytes, upscale, factor, limit)}

            return tf.function(encoded, input_signature=[encoded_images_spec()], autograph=False)

        png_traced = encoded_signature(upscale_uint8, png_limit)
        tiled_traced = encoded_signature(upscale_uint8_tiled, tiled_png_limit)
        for signature_name, traced, inputs in (
            (float_name, float_traced, {"images": image.astype(np.float32)}),
            (uint8_name, uint8_traced, {"images": image}),
            (png_name, png_traced, {IMAGES_BYTES: np.array([png], object)}),
            (tiled_name, tiled_traced, {IMAGES_BYTES: np.array([png], object)}),
        ):
            signatures[signature_name] = traced.get_concrete_function()
            warmup_inputs[signature_name] = inputs

    # Each path of the model is traced once; the multi-pass routes call those traces.
    traced_model = _TracedPaths(
        {scale: tf.function(lambda images, s=scale: model(images, scale=s), input_signature=[_images_spec(tf.float32)]) for scale in scales}
    )
    for route in routes:
        add(route, lambda images, r=route: {"upscaled": run_route(traced_model, images, r, halve_fn=halve_matlab_graph)})
    default = signature_names(f"x{_serving_default_scale(scales)}")[0]
    signatures["serving_default"], warmup_inputs["serving_default"] = signatures[default], warmup_inputs[default]
    tf.saved_model.save(module, str(target), signatures=signatures)
    write_limits(target, limits)
    if warmup:
        try:
            write_warmup_requests(target, name, warmup_inputs.items())
        except MissingExtra as error:
            log.warning("%s: exported without warm-up requests: %s", target, error)
    return target
