"""The per-dataset result table as aligned text, Markdown and CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from eusr_perceptual.evaluation.runner import ImageScores, SummaryRow

__all__ = ["format_table", "render_table", "table_notes", "write_image_scores_csv", "write_summary_csv"]

COLUMNS = ("Method", "Images", "PSNR (dB)", "SSIM", "NIQE", "LPIPS", "VIF")


def _cells(row: SummaryRow, lpips_reason: str | None) -> list[str]:
    def number(value: float, digits: int) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    niqe = number(row.niqe, 4)
    if row.niqe_images < row.images and not math.isnan(row.niqe):
        niqe += f" ({row.niqe_images})"
    lpips = number(row.lpips, 4) if lpips_reason is None else "n/a"
    return [row.method, str(row.images), number(row.psnr, 4), number(row.ssim, 4), niqe, lpips, number(row.vif, 4)]


def table_notes(rows: Sequence[SummaryRow], lpips_reason: str | None, skipped: int = 0) -> list[str]:
    """Footnotes: why LPIPS is n/a, images NIQE could not score, skipped files."""
    notes = []
    if lpips_reason is not None:
        notes.append(f"LPIPS n/a: {lpips_reason}")
    if any(row.niqe_images < row.images for row in rows):
        notes.append("NIQE (k): mean over the k images of at least 96x96 pixels after the 4-px crop")
    if skipped:
        notes.append(f"{skipped} image(s) skipped (unreadable, LR/HR mismatch, too small to score or not matching a result folder; see the log)")
    return notes


def render_table(title: str, columns: Sequence[str], body: Sequence[Sequence[str]], notes: Sequence[str] = (),
                 markdown: bool = False) -> str:
    """Any table of the project: aligned text (first column left, others right) or Markdown,
    with a title and footnotes. Every formatter of results goes through it."""
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines + ([""] + [f"*{note}*" for note in notes] if notes else [])) + "\n"
    widths = [max(len(c) for c in column) for column in zip(columns, *body)]
    aligned = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
        for cells in [list(columns), *body]
    ]
    rule = "-" * len(aligned[0])
    return "\n".join([title, rule, aligned[0], rule, *aligned[1:], rule, *notes]) + "\n"


def format_table(
    title: str, rows: Sequence[SummaryRow], lpips_reason: str | None = None, skipped: int = 0, markdown: bool = False
) -> str:
    """The evaluation summary as an aligned text table or a Markdown table, with its notes."""
    body = [_cells(row, lpips_reason) for row in rows]
    return render_table(title, COLUMNS, body, table_notes(rows, lpips_reason, skipped), markdown)


def write_summary_csv(
    path: str | Path, dataset: str, scale: int, rows: Sequence[SummaryRow], lpips_reason: str | None, lr_source: str = ""
) -> None:
    """One line per method: dataset, scale, method, images, psnr, ssim, niqe, lpips
    (empty where not computed), niqe_images, lr (where the LR images come from, e.g.
    ``DatasetResult.lr_source``)."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "scale", "method", "images", "psnr", "ssim", "niqe", "lpips", "niqe_images", "lr",
                         "vif"])
        for row in rows:
            lpips = "" if lpips_reason is not None or row.lpips is None else f"{row.lpips:.6f}"
            niqe = "" if math.isnan(row.niqe) else f"{row.niqe:.6f}"
            writer.writerow(
                [dataset, scale, row.method, row.images, f"{row.psnr:.6f}", f"{row.ssim:.6f}", niqe, lpips, row.niqe_images,
                 lr_source, "" if math.isnan(row.vif) else f"{row.vif:.6f}"]
            )


def write_image_scores_csv(path: str | Path, scores: Sequence[ImageScores]) -> None:
    """Per-image scores of one dataset."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "method", "image", "psnr", "ssim", "niqe", "lpips", "vif"])
        for s in scores:
            niqe = "" if math.isnan(s.niqe) else f"{s.niqe:.6f}"
            lpips = "" if s.lpips is None else f"{s.lpips:.6f}"
            vif = "" if math.isnan(s.vif) else f"{s.vif:.6f}"
            writer.writerow([s.dataset, s.method, s.image, f"{s.psnr:.6f}", f"{s.ssim:.6f}", niqe, lpips, vif])
