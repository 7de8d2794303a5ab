"""Figures of an evaluation: the perception-distortion plot and side-by-side crops.

* :func:`plot_perception_distortion`: PSNR against NIQE, one point per method and one panel
  per dataset, as 4PP-EUSR's Fig. 6 (upper left is better: high PSNR, low NIQE).
* :func:`plot_crops`: for one image, the HR image with the zoomed region outlined, then the
  zoomed region of bicubic, of each model and of HR side by side (as Figs. 7-9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from eusr_perceptual.evaluation.runner import SummaryRow  # noqa: E402
from eusr_perceptual.metrics.fidelity import rgb_to_y  # noqa: E402

__all__ = ["most_textured_box", "plot_crops", "plot_perception_distortion"]


def plot_perception_distortion(summaries: Mapping[str, Sequence[SummaryRow]], path: str | Path) -> Path:
    """Saves the PSNR-vs-NIQE scatter of every dataset's methods as a PNG."""
    datasets = list(summaries)
    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.2), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        for row in summaries[dataset]:
            axis.scatter(row.niqe, row.psnr, s=40)
            axis.annotate(row.method, (row.niqe, row.psnr), textcoords="offset points", xytext=(5, 4), fontsize=8)
        axis.set(title=dataset, xlabel="NIQE (lower is better)", ylabel="PSNR (dB)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def most_textured_box(hr: np.ndarray, size: int) -> tuple[int, int, int]:
    """``(top, left, size)`` of the square whose Y channel has the largest standard deviation,
    on a grid of half-size steps (where upscalers differ most)."""
    size = max(1, min(size, *hr.shape[:2]))
    luma = rgb_to_y(hr)
    step = max(1, size // 2)
    candidates = [
        (float(np.std(luma[top : top + size, left : left + size])), top, left)
        for top in range(0, hr.shape[0] - size + 1, step)
        for left in range(0, hr.shape[1] - size + 1, step)
    ]
    _, top, left = max(candidates)
    return top, left, size


def plot_crops(
    images: Mapping[str, np.ndarray], path: str | Path, title: str = "", box: tuple[int, int, int] | None = None
) -> Path:
    """Saves HR (with the region outlined) then the region zoomed in every method and HR.

    Args:
        images: ``{"HR": ..., method label: SR image, ...}`` (an ``"LR"`` entry is ignored),
            all of the HR image's size, uint8; methods are shown in the mapping's order.
        box: ``(top, left, size)``; the most textured quarter-size square when None.
    """
    hr = images["HR"]
    top, left, size = box or most_textured_box(hr, max(16, min(hr.shape[:2]) // 4))
    panels = [(label, image) for label, image in images.items() if label not in ("HR", "LR")] + [("HR", hr)]
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(2.6 * (len(panels) + 1), 3))
    axes[0].imshow(hr)
    axes[0].add_patch(Rectangle((left, top), size, size, fill=False, edgecolor="red", linewidth=1.5))
    axes[0].set_title(title or "HR", fontsize=9)
    for axis, (label, image) in zip(axes[1:], panels):
        axis.imshow(image[top : top + size, left : left + size], interpolation="nearest")
        axis.set_title(label, fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
