"""The table a pre-training run ends with: PSNR/SSIM of the model against bicubic on held-out
images, per scale (Y channel, border cropped; 4PP-EUSR section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from eusr_perceptual.data.patches import make_lr
from eusr_perceptual.data.sources import TrainingImage
from eusr_perceptual.inference import upscale_image
from eusr_perceptual.metrics.fidelity import psnr, ssim
from eusr_perceptual.resize import imresize


@dataclass(frozen=True)
class ScaleScores:
    scale: int
    images: int
    bicubic_psnr: float
    model_psnr: float
    bicubic_ssim: float
    model_ssim: float

    @property
    def psnr_gain(self) -> float:
        return self.model_psnr - self.bicubic_psnr


def compare_with_bicubic(
    generator, images: Sequence[TrainingImage], scales: Sequence[int], border: int = 4
) -> list[ScaleScores]:
    """Mean PSNR/SSIM of the generator and of MATLAB bicubic upscaling, per scale.

    Each HR image is cropped to a multiple of the scale, downscaled with MATLAB bicubic, and
    upscaled both ways; metrics on the Y channel with ``border`` pixels cropped.
    """
    rows = []
    for scale in scales:
        scores = []
        for image in images:
            lr = make_lr(image.hr, scale)
            hr = image.hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
            bicubic, sr = imresize(lr, scale), upscale_image(generator, lr, f"x{scale}")
            scores.append((psnr(bicubic, hr, border), psnr(sr, hr, border), ssim(bicubic, hr, border), ssim(sr, hr, border)))
        means = np.mean(np.asarray(scores), axis=0)
        rows.append(ScaleScores(scale, len(images), *map(float, means)))
    return rows


def format_table(rows: Sequence[ScaleScores], markdown: bool = False) -> str:
    """The comparison as an aligned text table, or as Markdown."""
    header = ["scale", "images", "bicubic PSNR", "EUSR PSNR", "gain (dB)", "bicubic SSIM", "EUSR SSIM"]
    body = [
        [f"x{r.scale}", str(r.images), f"{r.bicubic_psnr:.3f}", f"{r.model_psnr:.3f}", f"{r.psnr_gain:+.3f}",
         f"{r.bicubic_ssim:.4f}", f"{r.model_ssim:.4f}"]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header, *body])
