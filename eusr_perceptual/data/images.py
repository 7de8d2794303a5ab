"""Reading image files into 8-bit RGB arrays, whatever mode the file is stored in.

Benchmark and training sets mix grayscale, palette, RGBA and 16-bit files. Every reader in
the project (training, evaluation, upscaling, NIMA) goes through :func:`read_image` /
:func:`load_rgb8`, so that an odd file is converted the same way everywhere, and an
unreadable one raises :class:`UnreadableImageError` (which loaders turn into a logged,
counted skip) instead of crashing a run. What users expect of a reader:

* the EXIF orientation is applied (``ImageOps.exif_transpose``): a portrait photo stored
  sideways with an orientation tag is read upright, as every viewer shows it;
* 16-bit data (PIL modes ``I;16*`` and ``I``) is scaled by its bit depth,
  ``round(x * 255 / 65535)``, never by the image's own maximum, so a dark 16-bit image stays dark;
* a decompression-bomb header (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels: PIL's
  ``DecompressionBombError``, and the size where PIL only warns) is an unreadable file, skipped
  before its pixels are decoded;
* alpha is kept apart (:class:`DecodedImage`) for the upscaler, which writes it back; the
  RGB arrays training and evaluation use are composited on black (premultiplied);
* a grayscale file is marked as such, so that the upscaler can write a grayscale result.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from eusr_perceptual.errors import PathUsageError, ValueUsageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: What PIL raises for a file that is not a decodable image (or a decompression bomb).
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning)
#: PIL modes with one colour channel (with or without alpha): grayscale files.
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


class UnreadableImageError(ValueError):
    """A file could not be decoded as an image."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Maps pixel data onto 0..255 with rounding, by bit depth: 8-bit data is kept, wider
    integer data is 16-bit (PIL's ``I;16`` and ``I`` modes) and scaled by 255/65535 whatever
    its maximum; floats in [0, 1] are scaled by 255, other floats are taken as 0..255."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        maximum = 255.0 if array.dtype.itemsize == 1 else 65535.0
        return np.clip(np.floor(array.astype(np.float64) * (255.0 / maximum) + 0.5), 0, 255).astype(np.uint8)
    scaled = array.astype(np.float64)
    if scaled.max(initial=0.0) <= 1.0:
        scaled = scaled * 255.0
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DecodedImage:
    """An image's pixels: straight (not premultiplied) colour, alpha, and whether it is gray.

    Attributes:
        rgb: HxWx3 uint8 colour; a grayscale image has its gray value in all three channels.
        alpha: HxW uint8, or None when the image has no alpha channel.
        grayscale: the image stores a single colour channel (modes L, LA, I;16, I, F, 1, or
            an HxW / HxWx1 / HxWx2 array).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grayscale: bool = False

    def composited(self) -> np.ndarray:
        """HxWx3 uint8 colour composited on black (premultiplied by alpha, rounded)."""
        if self.alpha is None:
            return self.rgb
        alpha = self.alpha[..., None].astype(np.float64) / 255.0
        return np.floor(self.rgb.astype(np.float64) * alpha + 0.5).astype(np.uint8)


def decode_pixels(image: Image.Image | np.ndarray) -> DecodedImage:
    """Splits a PIL image or an array (HxW, HxWx1..4; any depth) into 8-bit colour and alpha.

    Palette images are expanded (with their transparency as alpha), CMYK/YCbCr/LAB/HSV are
    converted to RGB, 16-bit data is scaled by 255/65535 with rounding.
    """
    grayscale = False
    if isinstance(image, Image.Image):
        grayscale = image.mode in GRAYSCALE_MODES
        if image.mode in ("P", "PA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "1", "La"):
            has_alpha = image.mode in ("PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
            image = image.convert(("LA" if grayscale else "RGBA") if has_alpha else ("L" if grayscale else "RGB"))
        array = np.asarray(image)
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise UnreadableImageError(f"unsupported pixel layout {array.shape}")
    grayscale = grayscale or array.shape[-1] in (1, 2)
    array = _to_uint8(array)
    alpha = array[..., -1].copy() if array.shape[-1] in (2, 4) else None
    colour = array[..., :-1] if alpha is not None else array
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return DecodedImage(np.ascontiguousarray(colour), alpha, grayscale)


def to_rgb8(image: Image.Image | np.ndarray) -> np.ndarray:
    """Converts a PIL image or an array (HxW, HxWx1, HxWx3, HxWx4; any depth) to HxWx3 uint8,
    alpha composited on black (premultiplied)."""
    return decode_pixels(image).composited()


def _check_pixel_count(image: Image.Image, path: Path) -> None:
    """PIL only warns between ``MAX_IMAGE_PIXELS`` and twice that; both are refused here."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise UnreadableImageError(
            f"cannot decode {path}: {image.width}x{image.height} pixels exceed the decompression-bomb limit of "
            f"{limit} (PIL.Image.MAX_IMAGE_PIXELS; raise it only for trusted files)"
        )


def read_image(path: str | Path) -> DecodedImage:
    """Decodes one image file, upright (EXIF orientation applied), into :class:`DecodedImage`.

    Raises:
        FileNotFoundError: the path does not exist.
        UnreadableImageError: the file is not a decodable image (corrupt, truncated, text,
            decompression bomb...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            _check_pixel_count(image, path)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return decode_pixels(image)
    except UnreadableImageError:
        raise
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"cannot decode {path}: {error}") from error


def header_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file as :func:`read_image` reads it (EXIF orientation
    applied when the header holds one), from its header alone: no pixel is decoded.

    Raises:
        FileNotFoundError / UnreadableImageError: as :func:`read_image`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(ExifTags.Base.Orientation) if "exif" in image.info else None
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"cannot decode {path}: {error}") from error
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_rgb8(path: str | Path) -> np.ndarray:
    """Decodes one image file into an HxWx3 uint8 array (upright; alpha composited on black).

    Raises:
        FileNotFoundError: the path does not exist.
        UnreadableImageError: the file is not a decodable image (corrupt, truncated, text...).
    """
    return read_image(path).composited()


def check_folder(folder: str | Path, what: str = "image folder") -> Path:
    """``folder`` as a Path, or :class:`~eusr_perceptual.cli.errors.PathUsageError` saying it
    is missing or is a file."""
    folder = Path(folder)
    if folder.is_file():
        raise PathUsageError(f"{what} {folder} is a file, expected a folder")
    if not folder.is_dir():
        raise PathUsageError(f"{what} not found: {folder}")
    return folder


def list_image_files(folder: str | Path) -> list[Path]:
    """All files under ``folder`` (recursively, sorted) whose suffix is an image suffix.

    Raises:
        PathUsageError: ``folder`` is missing or is a file.
    """
    folder = check_folder(folder)
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


class EmptySourceError(ValueUsageError):
    """A data source produced no usable image (a usage error: one line, exit status 2)."""


@dataclass
class TrainingImage:
    """One HR image and the LR versions its source ships, keyed by scale."""

    name: str
    hr: np.ndarray
    lr: dict[int, np.ndarray] = field(default_factory=dict)
