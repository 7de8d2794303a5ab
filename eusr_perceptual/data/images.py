"""Reading image files into 8-bit RGB arrays, whatever mode the file is stored in.

Benchmark and training sets mix grayscale, palette, RGBA and 16-bit files. Every reader in
the project goes through :func:`load_rgb8`, so that an odd file is converted the same way
everywhere, and an unreadable one raises :class:`UnreadableImageError` (which loaders turn
into a logged, counted skip) instead of crashing a run.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class UnreadableImageError(ValueError):
    """A file could not be decoded as an image."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Maps integer or float pixel data onto 0..255 with rounding (16-bit: divide by 257)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        maximum = 65535.0 if array.max(initial=0) > 255 else 255.0
        return np.clip(np.floor(array.astype(np.float64) * (255.0 / maximum) + 0.5), 0, 255).astype(np.uint8)
    scaled = array.astype(np.float64)
    if scaled.max(initial=0.0) <= 1.0:
        scaled = scaled * 255.0
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def to_rgb8(image: Image.Image | np.ndarray) -> np.ndarray:
    """Converts a PIL image or an array (HxW, HxWx1, HxWx3, HxWx4; any depth) to HxWx3 uint8.

    Alpha is composited on black (premultiplied), palette images are expanded, 16-bit
    images are scaled by 255/65535 with rounding.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("RGBA") if "A" in image.mode or image.mode == "P" else image.convert("RGB")
        array = np.asarray(image)
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise UnreadableImageError(f"unsupported pixel layout {array.shape}")
    array = _to_uint8(array)
    if array.shape[-1] in (2, 4):
        alpha = array[..., -1:].astype(np.float64) / 255.0
        array = np.floor(array[..., :-1].astype(np.float64) * alpha + 0.5).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def load_rgb8(path: str | Path) -> np.ndarray:
    """Decodes one image file into an HxWx3 uint8 array.

    Raises:
        FileNotFoundError: the path does not exist.
        UnreadableImageError: the file is not a decodable image (corrupt, truncated, text...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb8(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, UnreadableImageError):
            raise
        raise UnreadableImageError(f"cannot decode {path}: {error}") from error


def list_image_files(folder: str | Path) -> list[Path]:
    """All files under ``folder`` (recursively, sorted) whose suffix is an image suffix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class SkipReport:
    """Counts files that were skipped, with one warning line each."""

    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        log.warning("skipping %s: %s", name, reason)
        self.skipped.append((name, reason))

    @property
    def count(self) -> int:
        return len(self.skipped)


def load_many(
    paths: Sequence[Path],
    report: SkipReport,
    accept: Callable[[Path, np.ndarray], str | None] | None = None,
    workers: int = 8,
) -> list[tuple[Path, np.ndarray]]:
    """Decodes files in parallel threads (PIL releases the GIL while decoding).

    Unreadable files, and files for which ``accept(path, image)`` returns a reason string,
    are reported through ``report`` and left out. Order follows ``paths``.
    """

    def decode(path: Path) -> tuple[Path, np.ndarray | None, str | None]:
        try:
            image = load_rgb8(path)
        except (UnreadableImageError, FileNotFoundError) as error:
            return path, None, str(error)
        reason = accept(path, image) if accept else None
        return path, (None if reason else image), reason

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results: Iterable = pool.map(decode, paths)
        loaded = []
        for path, image, reason in results:
            if image is None:
                report.skip(str(path), reason or "unreadable")
            else:
                loaded.append((path, image))
    return loaded
