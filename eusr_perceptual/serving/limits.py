"""Per-request limits of the encoded-image signatures, fixed at export from a memory budget.

One encoded image is small (a 16 KB PNG of zeros says 4000x4000), what the server does with
it is not: before these limits (issue 19) such a PNG took gigabytes of memory for seconds to
minutes, or killed the process (docs/serving.md, "Request limits", has the measurements).
Each encoded-image signature now reads the image's size from its header
(:mod:`eusr_perceptual.serving.header`) and refuses, before decoding, an image over its
:class:`PixelLimit` with an ``InvalidArgument`` error naming the limit and what to do
(:func:`eusr_perceptual.serving.codec.map_decoded`). This module is the arithmetic, without
TensorFlow.

The limits come from :class:`RequestBudget` (``eusr-export --request-memory-mib``, default
2048, or an explicit ``--max-pixels``). Per LR input pixel, a request costs:

* decoding: :data:`DECODE_BYTES` (16-bit RGBA, its float32 copy and the float32 colour and
  alpha planes the graph keeps; :mod:`eusr_perceptual.serving.codec`);
* untiled signature: the model's estimated peak, ``bytes_per_pixel`` of
  :func:`eusr_perceptual.serving.memory.bytes_per_pixel` (twice the replayed peak of its
  graph), so ``max_pixels = budget / (bytes_per_pixel + DECODE_BYTES)``;
* tiled signature: the stitched uint8 output, :data:`STITCH_BYTES` per output pixel (the kept
  tile cores, their concatenation and its transpose), beside one tile's forward pass of
  ``bytes_per_pixel * (tile + 2 overlap)^2`` bytes, which does not grow with the image:
  ``max_pixels = (budget - tile bytes) / (DECODE_BYTES + STITCH_BYTES * s^2)``. The tile is
  the largest up to ``--tile`` whose forward pass takes at most :data:`TILE_SHARE` of the
  budget (:func:`fitting_tile`).

A GIF decodes every frame before the first is taken (giflib's ``DGifSlurp``); an LZW code of
at most 12 bits expands to at most 4,096 pixels, so a GIF of ``n`` bytes holds at most
``GIF_EXPANSION * n`` bytes of frames, and GIFs over ``budget / GIF_EXPANSION`` bytes are
refused too. The tensor signatures (``upscale_x<s>``, ``_float``, NIMA's ``serve``) take the
pixels a request carries (3 or 4 bytes each) and have no limit.

The export writes the limits to ``assets.extra/request_limits.json`` (:data:`LIMITS_FILE`)
beside TF Serving's warm-up file, where :func:`read_limits` finds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from eusr_perceptual.configs.base import Config, ConfigError, setting
from eusr_perceptual.errors import ValueUsageError

__all__ = [
    "DECODE_BYTES",
    "GIF_EXPANSION",
    "LIMITS_FILE",
    "STITCH_BYTES",
    "TILE_SHARE",
    "PixelLimit",
    "RequestBudget",
    "fitting_tile",
    "read_limits",
    "tiled_limit",
    "untiled_limit",
    "write_limits",
]

MIB = 2**20
#: Bytes per decoded pixel: 16-bit RGBA (8), its float32 copy (16), float32 RGB + alpha (16).
DECODE_BYTES = 40
#: Bytes per output pixel of the tiled signatures' stitching: three uint8 RGB copies.
STITCH_BYTES = 9
#: The share of the budget one tile's forward pass may take (the rest is for the image).
TILE_SHARE = 0.5
#: Most bytes of GIF frames one byte of a GIF decodes to (a 12-bit LZW code: 4,096 pixels).
GIF_EXPANSION = 2731
#: Where an export keeps its limits, relative to the SavedModel folder.
LIMITS_FILE = Path("assets.extra") / "request_limits.json"


@dataclass(frozen=True)
class RequestBudget(Config):
    """The memory one request to an encoded-image signature may take (docs/serving.md)."""

    request_memory_mib: int = setting(2048, "memory budget of one encoded-image request in MiB: sets the largest image each "
                                            "_png, _png_tiled and score_png signature accepts, and the tile size")
    max_pixels: int | None = setting(None, "largest image (height x width pixels) every encoded-image signature accepts, "
                                           "instead of the limits derived from --request-memory-mib")

    def validate(self) -> None:
        if self.request_memory_mib < 1:
            raise ConfigError(f"request_memory_mib must be at least 1, got {self.request_memory_mib}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be at least 1, got {self.max_pixels}")

    @property
    def bytes(self) -> int:
        return self.request_memory_mib * MIB


@dataclass(frozen=True)
class PixelLimit:
    """The largest image one encoded-image signature decodes, and what to say beyond it."""

    signature: str
    max_pixels: int
    max_gif_bytes: int
    #: Why the limit is what it is, e.g. "an estimated 2,088 bytes per pixel in a request budget of 2048 MiB".
    basis: str
    #: What to do with a larger image, e.g. "send it to upscale_x4_png_tiled, or re-export with ...".
    advice: str


def _max_gif_bytes(budget: RequestBudget) -> int:
    return budget.bytes // GIF_EXPANSION


def untiled_limit(budget: RequestBudget, bytes_per_pixel: int, signature: str, advice: str) -> PixelLimit:
    """The limit of a signature that runs its model on the whole image."""
    per_pixel = bytes_per_pixel + DECODE_BYTES
    if budget.max_pixels is not None:
        return PixelLimit(signature, budget.max_pixels, _max_gif_bytes(budget), "set at export", advice)
    basis = f"an estimated {per_pixel:,} bytes per pixel in a request budget of {budget.request_memory_mib} MiB"
    return PixelLimit(signature, max(budget.bytes // per_pixel, 1), _max_gif_bytes(budget), basis, advice)


def fitting_tile(tile: int, overlap: int, bytes_per_pixel: int, budget: RequestBudget) -> int:
    """The largest tile up to ``tile`` whose forward pass with ``overlap`` pixels of context
    takes at most :data:`TILE_SHARE` of the budget.

    Raises:
        ValueError: not even a 1-pixel tile fits (lower the overlap or raise the budget).
    """
    if tile < 1 or overlap < 0:
        raise ValueUsageError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    side = math.isqrt(int(TILE_SHARE * budget.bytes) // bytes_per_pixel)
    fitted = min(tile, side - 2 * overlap)
    if fitted < 1:
        raise ValueUsageError(
            f"a tile with {overlap} pixels of overlap needs more than {TILE_SHARE:.0%} of the request budget of "
            f"{budget.request_memory_mib} MiB (an estimated {bytes_per_pixel:,} bytes per pixel): lower --overlap or raise "
            "--request-memory-mib"
        )
    return fitted


def tiled_limit(budget: RequestBudget, bytes_per_pixel: int, factor: int, tile: int, overlap: int, signature: str,
                advice: str) -> PixelLimit:
    """The limit of a signature that runs its model on ``tile`` pixels (plus ``overlap``) at a
    time and stitches an output ``factor`` times larger."""
    if budget.max_pixels is not None:
        return PixelLimit(signature, budget.max_pixels, _max_gif_bytes(budget), "set at export", advice)
    tile_bytes = bytes_per_pixel * (tile + 2 * overlap) ** 2
    per_pixel = DECODE_BYTES + STITCH_BYTES * factor**2
    basis = (f"{per_pixel:,} bytes per pixel for the decoded image and the x{factor} output, beside "
             f"{tile_bytes / MIB:,.0f} MiB for a {tile}-pixel tile, in a request budget of {budget.request_memory_mib} MiB")
    return PixelLimit(signature, max((budget.bytes - tile_bytes) // per_pixel, 1), _max_gif_bytes(budget), basis, advice)


def write_limits(saved_model_dir: str | Path, limits: Iterable[PixelLimit]) -> Path:
    """Writes ``{signature: {max_pixels, max_gif_bytes, basis, advice}}`` to :data:`LIMITS_FILE`."""
    path = Path(saved_model_dir) / LIMITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {limit.signature: {k: v for k, v in dataclasses.asdict(limit).items() if k != "signature"} for limit in limits}
    path.write_text(json.dumps(fields, indent=2) + "\n")
    return path


def read_limits(saved_model_dir: str | Path) -> dict[str, PixelLimit]:
    """The limits an export wrote, by signature name."""
    fields = json.loads((Path(saved_model_dir) / LIMITS_FILE).read_text())
    return {name: PixelLimit(name, **values) for name, values in fields.items()}
