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

Geometric self-ensemble (Lim et al. 2017, EDSR+): the mean of the model's outputs on the
8 flips/rotations of the input, each transformed back.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import tensorflow as tf

from eusr_perceptual.models.multipass import PATHS, halve
from eusr_perceptual.resize import round_to_uint8_tf

__all__ = [
    "MULTIPASS_ROUTES",
    "check_route",
    "make_tile_function",
    "route_factor",
    "route_scales",
    "routes_of",
    "run_route",
    "tile_boxes",
    "upscale_image",
]

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


def make_tile_function(model, route: str = "x4", self_ensemble: bool = False) -> Callable[[tf.Tensor], tf.Tensor]:
    """A traced function: float ``[1, h, w, 3]`` LR tile -> uint8 ``[1, fh, fw, 3]`` SR tile.

    One trace serves every tile size; reuse it across images of a folder.
    """
    check_route(model, route)


    def upscale(tile: tf.Tensor) -> tf.Tensor:
        if not self_ensemble:
            return round_to_uint8_tf(run_route(model, tile, route))
        outputs = [inverse(run_route(model, forward(tile), route)) for forward, inverse in _ensemble_transforms()]
        return round_to_uint8_tf(tf.add_n(outputs) / len(outputs))

    return tf.function(upscale, input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])


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


def upscale_image(
    model,
    lr: np.ndarray,
    route: str = "x4",
    tile: int | None = 128,
    overlap: int = 32,
    self_ensemble: bool = False,
    tile_function: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> np.ndarray:
    """Upscales one uint8 HxWx3 image along ``route``; returns uint8 (rounded, clipped).

    Args:
        model: a generator (``model(x, scale=s)``, ``model.scales``).
        lr: the LR image, HxWx3 uint8.
        route: ``"x2"``, ``"x4"``, ``"x8"``, ``"x2x2"`` or ``"x8down"``.
        tile: LR core size of a tile; ``None`` runs the whole image at once.
        overlap: LR context pixels added on each side of a tile.
        self_ensemble: average the outputs over the 8 flips/rotations.
        tile_function: a function from :func:`make_tile_function` to reuse across images
            (saves retracing); built here if not given.

    Memory is that of one tile's forward pass plus the uint8 output, whatever the size.
    """
    check_route(model, route)
    factor = route_factor(route)
    lr = np.asarray(lr)
    if lr.ndim != 3 or lr.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {lr.shape}")
    height, width = lr.shape[:2]
    run = tile_function or make_tile_function(model, route, self_ensemble)
    tile_h, tile_w = (height, width) if tile is None else (tile, tile)
    output = np.empty((height * factor, width * factor, 3), np.uint8)
    for y0, y1, core_y0, core_y1 in tile_boxes(height, tile_h, overlap):
        for x0, x1, core_x0, core_x1 in tile_boxes(width, tile_w, overlap):
            patch = tf.convert_to_tensor(lr[None, y0:y1, x0:x1], tf.float32)
            sr = run(patch)[0].numpy()
            top, left = (core_y0 - y0) * factor, (core_x0 - x0) * factor
            output[core_y0 * factor : core_y1 * factor, core_x0 * factor : core_x1 * factor] = sr[
                top : top + (core_y1 - core_y0) * factor, left : left + (core_x1 - core_x0) * factor
            ]
    return output
