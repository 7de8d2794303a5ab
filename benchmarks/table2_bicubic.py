#!/usr/bin/env python
"""On-demand check of the evaluation protocol: 4PP-EUSR Table 2's bicubic x4 rows.

    python benchmarks/table2_bicubic.py ../shared/benchmarks/Set5 ../shared/benchmarks/Set14
    python benchmarks/table2_bicubic.py my/Set5_copy --paper Set5 --conventions double

For each benchmark folder (HR images; LR made here), scores MATLAB bicubic x4 under each LR
convention (``double``: resize in double and round once, the evaluation default; ``uint8``:
MATLAB's native uint8 imresize) with the paper's protocol (Y channel, 4-px border, PSNR /
SSIM / NIQE) and prints the rows beside the paper's (Choi et al. 2018, Table 2), with the
differences. The paper row is found from the folder name (Set5, Set14, BSD100) or --paper.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: 4PP-EUSR Table 2, bicubic x4: (PSNR dB, SSIM, NIQE).
PAPER_BICUBIC = {"Set5": (28.4178, 0.8098, 8.5404), "Set14": (26.0906, 0.7050, 7.7637), "BSD100": (25.9566, 0.6693, 7.7120)}


def parse_args(argv=None) -> argparse.Namespace:
    from eusr_perceptual.resize import RESIZE_CONVENTIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="benchmark folders (HR images)")
    parser.add_argument("--paper", choices=sorted(PAPER_BICUBIC), help="the paper row to compare with (default: from the folder name)")
    parser.add_argument("--conventions", default=",".join(RESIZE_CONVENTIONS),
                        help=f"comma-separated LR conventions to score (default {','.join(RESIZE_CONVENTIONS)})")
    return parser.parse_args(argv)


def paper_row(folder: Path, name: str | None) -> tuple[str, tuple[float, float, float]] | None:
    key = name or next((k for k in PAPER_BICUBIC if k.lower() == folder.name.lower()), None)
    return (key, PAPER_BICUBIC[key]) if key else None


def bicubic_row(folder: Path, convention: str) -> tuple[int, float, float, float]:
    """``(images, PSNR, SSIM, NIQE)`` of MATLAB bicubic x4 under ``convention``."""
    from eusr_perceptual.evaluation.benchmarks import discover_benchmark
    from eusr_perceptual.evaluation.runner import Method, evaluate_dataset, summarize

    result = evaluate_dataset(discover_benchmark(folder, 4), [Method("bicubic", "x4")], progress=False, lr_convention=convention)
    (row,) = summarize(result)
    return row.images, row.psnr, row.ssim, row.niqe


def format_rows(title: str, rows: list[tuple[str, tuple]], paper: tuple[float, float, float] | None) -> str:
    from eusr_perceptual.evaluation.tables import render_table

    body = []
    for label, (images, psnr, ssim, niqe) in rows:
        versus = ""
        if paper and label.startswith("LR convention"):
            versus = f"{psnr - paper[0]:+.4f} / {ssim - paper[1]:+.4f} / {niqe - paper[2]:+.4f}"
        body.append([label, str(images), f"{psnr:.4f}", f"{ssim:.4f}", f"{niqe:.4f}", versus])
    return render_table(title, ("", "images", "PSNR", "SSIM", "NIQE", "vs paper (PSNR / SSIM / NIQE)"), body)


def main(argv=None) -> int:
    args = parse_args(argv)
    from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION

    conventions = [c.strip() for c in args.conventions.split(",") if c.strip()]
    for folder in args.folders:
        found = paper_row(folder, args.paper)
        rows = [] if found is None else [("4PP-EUSR Table 2 (paper)", ("", *found[1]))]
        for convention in conventions:
            default = " (default)" if convention == DEFAULT_RESIZE_CONVENTION else ""
            rows.append((f"LR convention {convention}{default}", bicubic_row(folder, convention)))
        title = f"{folder.name}: bicubic x4, Y channel, 4-px border" + (f" (paper row: {found[0]})" if found else " (no paper row)")
        print(format_rows(title, rows, found[1] if found else None) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
