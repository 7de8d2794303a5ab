"""Running a generator on whole images: upscaling routes, tiling, self-ensemble.

Routes name how an LR image becomes an SR image: ``"x2"``, ``"x4"``, ``"x8"`` run one path
of the model, and 4PP-EUSR's multi-pass x4 routes (section 3.2, Table 3) are ``"x2x2"`` (the
x2 path twice, the second pass on the first pass's float output) and ``"x8down"`` (the x8
path, then MATLAB-bicubic halving), as in :mod:`eusr_perceptual.models.multipass`.

Images of any size run in bounded memory as overlapping tiles: each LR tile of ``tile``
pixels is extended by ``overlap`` pixels of context on every side (clamped at the image
border), upscaled, and only the upscaled core is kept, with no blending. Where ``overlap``
covers the model's receptive field the result is the whole-image result (the zero padding at
a tile edge never reaches a kept pixel); with a shorter overlap, kept pixels near a tile edge
see the padding only through the far end of the receptive field, whose weight decays.
Tiles of one size run several per call (as many as a memory budget allows); each is computed
exactly as it would be alone.

Each (model, route) is traced once per process (:func:`make_tile_function` caches a
:class:`TileFunction` per model), for every tile and batch size: an evaluation of several
models and routes over images of many sizes never retraces.

Geometric self-ensemble (Lim et al. 2017, EDSR+): the mean of the model's outputs on the
8 flips/rotations of the input, each transformed back.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Callable

import numpy as np
import tensorflow as tf

from eusr_perceptual.data.images import DecodedImage
from eusr_perceptual.models.multipass import PATHS, halve
from eusr_perceptual.resize import imresize, round_to_uint8_tf, to_uint8_matlab
from eusr_perceptual.devices import xla_by_default

__all__ = [
    "MULTIPASS_ROUTES",
    "TileFunction",
    "check_route",
    "make_tile_function",
    "route_factor",
    "route_scales",
    "routes_of",
    "run_route",
    "tile_boxes",
    "tiles_per_call",
    "upscale_decoded",
    "upscale_image",
]

log = logging.getLogger(__name__)

#: 4PP-EUSR's multi-pass x4 routes (Table 3) beside the x4 path itself.
MULTIPASS_ROUTES = tuple(path for path in PATHS if path != "x4")


def route_factor(route: str) -> int:
    """The upscaling factor of a route (4 for the multi-pass routes)."""
    if route in MULTIPASS_ROUTES:
        return 4
    match = re.fullmatch(r"x(\d+)", route)
    if not match:
        raise ValueError(f"unknown upscaling route {route!r}: use x<scale> or one of {MULTIPASS_ROUTES}")
    return int(match.group(1))


def route_scales(route: str) -> tuple[int, ...]:
    """The model paths a route runs (``x2x2`` runs the x2 path, ``x8down`` the x8 path)."""
    return {"x2x2": (2,), "x8down": (8,)}.get(route) or (route_factor(route),)


def routes_of(model) -> tuple[str, ...]:
    """Every route ``model`` supports: its scales, then the multi-pass routes it has paths for."""
    scales = tuple(model.scales)
    multipass = tuple(r for r in MULTIPASS_ROUTES if all(s in scales for s in route_scales(r)))
    return tuple(f"x{s}" for s in scales) + multipass


def check_route(model, route: str) -> None:
    """Raises ValueError, naming what the model supports, if it cannot run ``route``."""
    route_factor(route)
    if route not in routes_of(model):
        raise ValueError(
            f"{getattr(model, 'name', 'the model')} has no {route} route; it supports {', '.join(routes_of(model))}"
        )


def run_route(model, lr: tf.Tensor, route: str, halve_fn: Callable[[tf.Tensor], tf.Tensor] = halve) -> tf.Tensor:
    """Upscales float ``[B, H, W, 3]`` LR images in [0, 255] along ``route`` (float32, unclipped).

    ``halve_fn`` is the x8down route's halving (multipass's MATLAB bicubic by default; the
    SavedModel export passes a graph-only equivalent for dynamic shapes).
    """
    if route == "x2x2":
        return model(model(lr, scale=2), scale=2)
    if route == "x8down":
        return halve_fn(model(lr, scale=8))
    return model(lr, scale=route_factor(route))


def _ensemble_transforms() -> list[tuple[Callable, Callable]]:
    """The 8 dihedral transforms of ``[B, H, W, C]`` images with their inverses.

    Each is an optional H/W transpose followed by optional flips of H and of W.
    """
    pairs = []
    for transpose in (False, True):
        for flip_axes in ([], [1], [2], [1, 2]):

            def forward(x, t=transpose, axes=flip_axes):
                x = tf.transpose(x, [0, 2, 1, 3]) if t else x
                return tf.reverse(x, axes) if axes else x

            def inverse(y, t=transpose, axes=flip_axes):
                y = tf.reverse(y, axes) if axes else y
                return tf.transpose(y, [0, 2, 1, 3]) if t else y

            pairs.append((forward, inverse))
    return pairs


#: Input of every tile function: float32 LR tiles of any batch size and size.
TILE_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32)

#: Estimated bytes of live activations per output pixel of a tile, used to choose how many
#: tiles run per call: about four 64-channel float32 maps at the output resolution (the
#: last upscaling module's outputs, their concatenation, the depth-to-space result).
#: Measured peak RSS of the paper-size EUSR x4 path: 920 bytes per output pixel.
BYTES_PER_OUTPUT_PIXEL = 1024

#: Default memory budget of the tiles of one call (MiB): 3 tiles of 192 x 192 LR pixels
#: (128-pixel cores with 32 pixels of context) at x4.
DEFAULT_MEMORY_BUDGET_MIB = 2048


class TileFunction:
    """Float ``[B, h, w, 3]`` LR tiles in [0, 255] -> uint8 ``[B, fh, fw, 3]`` SR tiles.

    Traced once, for every batch and tile size (``TILE_SPEC``), and called as a concrete
    function: evaluating several models and routes never retraces (TensorFlow's "triggered
    tf.function retracing" warning counts traces of one Python function, and every tile
    function shares one). ``traces`` counts the traces. With ``jit_compile`` the function
    is compiled with XLA (once per distinct tile shape, at its first call); if XLA cannot
    compile it, the first call logs one line saying why and the function falls back to a
    graph without XLA (``jit_compile`` becomes False).
    """

    def __init__(self, model, route: str, self_ensemble: bool, jit_compile: bool):
        check_route(model, route)
        self.route, self.self_ensemble, self.jit_compile = route, self_ensemble, jit_compile
        self.traces = 0
        self._model = weakref.ref(model)
        self._verified = not jit_compile
        self._function = self._trace()

    def _trace(self):
        model_ref, route, self_ensemble = self._model, self.route, self.self_ensemble

        def upscale(tiles: tf.Tensor) -> tf.Tensor:
            model = model_ref()
            if not self_ensemble:
                return round_to_uint8_tf(run_route(model, tiles, route))
            outputs = [inverse(run_route(model, forward(tiles), route)) for forward, inverse in _ensemble_transforms()]
            return round_to_uint8_tf(tf.add_n(outputs) / len(outputs))

        self.traces += 1
        return tf.function(upscale, jit_compile=self.jit_compile).get_concrete_function(TILE_SPEC)

    def __call__(self, tiles) -> tf.Tensor:
        tiles = tf.convert_to_tensor(tiles, tf.float32)
        if self._verified:
            return self._function(tiles)
        try:
            result = self._function(tiles)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            reason = str(error).strip().splitlines()[0][:300]
            log.warning("XLA off for %s %s inference: %s", getattr(self._model(), "name", "model"), self.route, reason)
            self.jit_compile = False
            self._function = self._trace()
            result = self._function(tiles)
        self._verified = True
        return result


#: One tile function per (model, route, self-ensemble, XLA) for the models' lifetime.
_TILE_FUNCTIONS: "weakref.WeakKeyDictionary[object, dict[tuple, TileFunction]]" = weakref.WeakKeyDictionary()


def make_tile_function(
    model, route: str = "x4", self_ensemble: bool = False, jit_compile: bool | None = None
) -> TileFunction:
    """The :class:`TileFunction` of ``model`` along ``route``: made and traced on the first
    request, then the same object for every image, tile size and caller (evaluation,
    upscaling, reports) while the model lives.

    ``jit_compile``: XLA (with fallback); None = where it pays,
    :func:`~eusr_perceptual.devices.xla_by_default` (with a GPU; on a CPU XLA is slower
    here, and every new tile size costs a compilation).
    """
    jit_compile = xla_by_default() if jit_compile is None else bool(jit_compile)
    functions = _TILE_FUNCTIONS.setdefault(model, {})
    key = (route, bool(self_ensemble), jit_compile)
    if key not in functions:
        functions[key] = TileFunction(model, route, bool(self_ensemble), jit_compile)
    return functions[key]


def tile_boxes(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Splits ``[0, length)`` into cores of at most ``tile`` with ``overlap`` context each side.

    Returns ``(start, stop, core_start, core_stop)`` per tile: the LR span fed to the model
    (clamped to the image) and the core it contributes. Cores partition ``[0, length)``.
    """
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    boxes = []
    for core_start in range(0, length, tile):
        core_stop = min(core_start + tile, length)
        boxes.append((max(core_start - overlap, 0), min(core_stop + overlap, length), core_start, core_stop))
    return boxes


def tiles_per_call(height: int, width: int, factor: int, memory_budget_mib: float) -> int:
    """How many ``height x width`` LR tiles upscaled ``factor`` times fit in the budget (>= 1),
    at :data:`BYTES_PER_OUTPUT_PIXEL`."""
    tile_bytes = height * width * factor**2 * BYTES_PER_OUTPUT_PIXEL
    return max(1, int(memory_budget_mib * 2**20 // tile_bytes))


def _peak_factor(route: str) -> int:
    """The largest resolution factor a route reaches (x8down: 8 before the halving)."""
    return max(route_factor(route), *route_scales(route))


def upscale_image(
    model,
    lr: np.ndarray,
    route: str = "x4",
    tile: int | None = 128,
    overlap: int = 32,
    self_ensemble: bool = False,
    tile_function: Callable[[tf.Tensor], tf.Tensor] | None = None,
    memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB,
    max_tiles_per_call: int | None = None,
) -> np.ndarray:
    """Upscales one uint8 HxWx3 image along ``route``; returns uint8 (rounded, clipped).

    Args:
        model: a generator (``model(x, scale=s)``, ``model.scales``).
        lr: the LR image, HxWx3 uint8.
        route: ``"x2"``, ``"x4"``, ``"x8"``, ``"x2x2"`` or ``"x8down"``.
        tile: LR core size of a tile; ``None`` runs the whole image at once.
        overlap: LR context pixels added on each side of a tile.
        self_ensemble: average the outputs over the 8 flips/rotations.
        tile_function: a function taking ``[B, h, w, 3]`` float tiles (default: the model's
            cached :func:`make_tile_function`).
        memory_budget_mib: memory for the tiles of one call: tiles of one size run together,
            as many per call as :func:`tiles_per_call` allows.
        max_tiles_per_call: a cap on that number (1: one tile per call).

    Batching changes nothing in the result: each tile is computed as it would be alone.
    Memory is that of one call's forward pass plus the uint8 output, whatever the size.
    """
    check_route(model, route)
    factor = route_factor(route)
    lr = np.asarray(lr)
    if lr.ndim != 3 or lr.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {lr.shape}")
    height, width = lr.shape[:2]
    run = tile_function or make_tile_function(model, route, self_ensemble)
    tile_h, tile_w = (height, width) if tile is None else (tile, tile)
    # Tiles of one LR size can share a call; an image has at most nine sizes.
    by_size: dict[tuple[int, int], list] = {}
    for y_box in tile_boxes(height, tile_h, overlap):
        for x_box in tile_boxes(width, tile_w, overlap):
            by_size.setdefault((y_box[1] - y_box[0], x_box[1] - x_box[0]), []).append((y_box, x_box))
    output = np.empty((height * factor, width * factor, 3), np.uint8)
    for (tile_height, tile_width), boxes in by_size.items():
        per_call = tiles_per_call(tile_height, tile_width, _peak_factor(route), memory_budget_mib)
        per_call = min(per_call, max_tiles_per_call or per_call)
        for first in range(0, len(boxes), per_call):
            chunk = boxes[first : first + per_call]
            patches = np.stack([lr[y0:y1, x0:x1] for (y0, y1, _, _), (x0, x1, _, _) in chunk])
            upscaled = np.asarray(run(patches))
            for sr, ((y0, _, core_y0, core_y1), (x0, _, core_x0, core_x1)) in zip(upscaled, chunk):
                top, left = (core_y0 - y0) * factor, (core_x0 - x0) * factor
                output[core_y0 * factor : core_y1 * factor, core_x0 * factor : core_x1 * factor] = sr[
                    top : top + (core_y1 - core_y0) * factor, left : left + (core_x1 - core_x0) * factor
                ]
    return output


def upscale_decoded(model, image: DecodedImage, route: str = "x4", **options) -> np.ndarray:
    """Upscales a decoded file keeping its kind: grayscale stays gray, alpha is kept.

    The colour goes through :func:`upscale_image` (``options`` are passed on to it). A grayscale file's result is the mean of the three
    output channels (the generator may tint a gray input slightly), rounded as MATLAB's
    ``uint8``. Alpha is upscaled separately with MATLAB bicubic :func:`~..resize.imresize`
    (the generator was trained on photographs, not on masks); the colour under it is the
    file's straight colour, not composited.

    Returns:
        uint8 HxW (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA), which
        ``PIL.Image.fromarray`` writes as an L, LA, RGB or RGBA PNG.
    """
    upscaled = upscale_image(model, image.rgb, route, **options)
    if image.grayscale:
        upscaled = to_uint8_matlab(upscaled.mean(axis=-1))
    if image.alpha is None:
        return upscaled
    return np.dstack([upscaled, imresize(image.alpha, scale=route_factor(route))])
