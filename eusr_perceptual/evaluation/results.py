"""SR images made elsewhere as a row of an evaluation: released result folders.

4PP-EUSR's Table 2 scores the released outputs of its baselines (SRGAN/SRResNet from Ledig et
al.'s supplementary material, CX from Mechrez's site, EDSR/MDSR runs), and the 4PP-EUSR and
ESRGAN authors release their own outputs too. ``eusr-evaluate --model 4pp=results:<folder>``
scores such a folder with exactly the protocol of a model row (:mod:`.runner`: uint8 images,
Y channel, 4-px border, NIQE, VIF, LPIPS, crops, report).

Files are matched to the benchmark's HR images by name: a file's stem and an HR image's name
are compared case-insensitively after the suffixes of :data:`SUFFIXES` are stripped from
their ends, repeatedly (``baby_x4_SR`` -> ``baby``; ``img_001_SRF_4_HR`` -> ``img_001``).
Every HR image needs exactly one file, every file one HR image, and each file must have the
HR image's size (the HR image cropped to a multiple of the scale, as the LR image was made
from): otherwise a :class:`ResultsMismatchError` names the image or file, or, with
``skip_mismatched``, the image (or the extra file) is a logged, counted skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.data.images import check_folder, list_image_files, load_rgb8

__all__ = ["RESULTS_PREFIX", "SUFFIXES", "ResultFolder", "ResultsMismatchError", "base_name"]

#: ``--model LABEL=results:<folder>`` names a result folder.
RESULTS_PREFIX = "results:"

#: Name endings stripped before matching (regular expressions, case-insensitive): scale tags,
#: HR/LR/SR tags, and the method tags of the released outputs of 4PP-EUSR Table 2 and ESRGAN.
SUFFIXES = (
    r"_?x[2348]",  # _x4, x4 (DIV2K's LR names)
    r"_SRF_[2348]",  # Huang et al.'s Set5/Set14/BSD100/Urban100 packages
    r"_(?:HR|LR|SR)",
    r"_rlt",  # ESRGAN's test.py
    r"_(?:ESRGAN|RRDB_ESRGAN|RRDB_PSNR|EUSR|EDSR|MDSR|CX|bicubic)",
    r"_(?:SRGAN|SRResNet)-(?:MSE|VGG22|VGG54)",  # Ledig et al.'s supplementary material
    r"_4pp_eusr(?:_pirm|_paper(?:_v2)?)?",
)
_SUFFIX = re.compile(r"(?:" + "|".join(SUFFIXES) + r")$", re.IGNORECASE)


class ResultsMismatchError(ValueUsageError):
    """A result folder and the benchmark do not fit: a missing, extra or mis-sized file."""


def base_name(stem: str) -> str:
    """``stem`` without the :data:`SUFFIXES` at its end, lower case."""
    while True:
        stripped = _SUFFIX.sub("", stem)
        if stripped == stem or not stripped:
            return stem.lower()
        stem = stripped


@dataclass(frozen=True)
class ResultFolder:
    """The image files of a result folder by :func:`base_name`."""

    folder: Path
    files: dict[str, Path]

    @classmethod
    def open(cls, folder: str | Path) -> "ResultFolder":
        """Raises PathUsageError (missing folder) or ResultsMismatchError (two files, one name)."""
        folder = check_folder(folder, "result folder")
        files: dict[str, Path] = {}
        for path in list_image_files(folder):
            name = base_name(path.stem)
            if name in files:
                raise ResultsMismatchError(f"result folder {folder}: {files[name].name} and {path.name} are both image {name!r}")
            files[name] = path
        return cls(folder, files)

    def extra_files(self, names: Sequence[str]) -> list[Path]:
        """The files that match none of the benchmark's image ``names``."""
        wanted = {base_name(name) for name in names}
        return [path for name, path in self.files.items() if name not in wanted]

    def load(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The uint8 SR image for benchmark image ``name``, which must have ``shape``.

        Raises:
            ResultsMismatchError: no file for ``name``, or a file of another size.
            UnreadableImageError: the file cannot be decoded.
        """
        path = self.files.get(base_name(name))
        if path is None:
            raise ResultsMismatchError(f"result folder {self.folder} has no image for {name}")
        image = load_rgb8(path)
        if image.shape != tuple(shape):
            raise ResultsMismatchError(
                f"{path} is {image.shape[1]}x{image.shape[0]}; the HR image {name} is {shape[1]}x{shape[0]} "
                "(cropped to a multiple of the scale)")
        return image
