#!/usr/bin/env python
"""The papers' numbers from the authors' releases: measured here, printed beside the published ones.

    python benchmarks/published.py --data ../shared/benchmarks/Set5 --data ../shared/benchmarks/Set14 \\
        --fourpp 4pp_eusr_paper_v2.pb --fourpp-results Set5=4pp_eusr_results_paper_v2/Set5 \\
        --fourpp-results Set14=4pp_eusr_results_paper_v2/Set14 \\
        --esrgan-psnr RRDB_PSNR_x4.pth --esrgan RRDB_ESRGAN_x4.pth

Nothing is downloaded: give the files you downloaded (what each release is and where it is
published: docs/published.md). Per benchmark folder (the paper row is found from the folder
name: Set5, Set14, BSD100), every given source is scored x4 with the protocol of
``eusr-evaluate`` (MATLAB-bicubic LR in the ``double`` convention, uint8 SR, Y channel, 4-px
border; PSNR, SSIM, NIQE) and printed beside its published value:

* bicubic, and 4PP-EUSR from the frozen graph (``--fourpp``, its x4 path: what the authors'
  ``test/test.py`` runs) and from the released SR images (``--fourpp-results``): 4PP-EUSR
  Table 2 (Choi et al. 2018; the paper version, ``4pp_eusr_paper_v2``);
* ESRGAN's ``RRDB_PSNR_x4.pth`` (``--esrgan-psnr``): the "RRDB (ours)" row of the ESRGAN
  repository's README (github.com/xinntao/ESRGAN, PSNR / SSIM on the Y channel; no NIQE);
* ESRGAN's ``RRDB_ESRGAN_x4.pth`` (``--esrgan``): its authors publish no Set5/Set14 table for
  the released model (README and QA.md: qualitative figures; the paper's perceptual indices are
  of the PIRM submission, a different model), so the published column reads "-".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from table2_bicubic import PAPER_BICUBIC  # noqa: E402  (4PP-EUSR Table 2's bicubic rows)

TABLE2 = "4PP-EUSR Table 2 (Choi et al. 2018)"
ESRGAN_README = "ESRGAN README, RRDB (ours) row (github.com/xinntao/ESRGAN @ 73e9b63)"
#: (method, dataset) -> (PSNR, SSIM, NIQE or None, source).
PUBLISHED = {
    **{("bicubic", name): (*row, TABLE2) for name, row in PAPER_BICUBIC.items()},
    ("4PP-EUSR", "Set5"): (31.0846, 0.8652, 5.6068, TABLE2),
    ("4PP-EUSR", "Set14"): (27.6222, 0.7419, 4.1724, TABLE2),
    ("4PP-EUSR", "BSD100"): (26.5707, 0.6900, 3.6976, TABLE2),
    ("RRDB_PSNR_x4", "Set5"): (32.73, 0.9011, None, ESRGAN_README),
    ("RRDB_PSNR_x4", "Set14"): (28.99, 0.7917, None, ESRGAN_README),
    ("RRDB_PSNR_x4", "BSD100"): (27.85, 0.7455, None, ESRGAN_README),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, type=Path, help="a benchmark folder (repeatable)")
    parser.add_argument("--fourpp", type=Path, help="4PP-EUSR frozen graph (4pp_eusr_paper_v2.pb)")
    parser.add_argument("--fourpp-results", action="append", default=[], metavar="DATASET=FOLDER",
                        help="released 4PP-EUSR SR images of one dataset (repeatable)")
    parser.add_argument("--esrgan-psnr", type=Path, help="RRDB_PSNR_x4.pth")
    parser.add_argument("--esrgan", type=Path, help="RRDB_ESRGAN_x4.pth")
    return parser.parse_args(argv)


def methods_for(args: argparse.Namespace, dataset: str) -> list:
    """``(published name, Method)`` for every source given (results only for their dataset)."""
    from eusr_perceptual.evaluation.results import ResultFolder
    from eusr_perceptual.evaluation.runner import Method
    from eusr_perceptual.loading import load_generator

    methods = [("bicubic", Method("bicubic"))]
    if args.fourpp:
        methods.append(("4PP-EUSR", Method(f"4PP-EUSR ({args.fourpp.name}, x4 path)", model=load_generator(args.fourpp))))
    results = dict(spec.split("=", 1) for spec in args.fourpp_results)
    if dataset in results:
        methods.append(("4PP-EUSR", Method("4PP-EUSR (released SR images)", results=ResultFolder.open(results[dataset]))))
    for name, path in (("RRDB_PSNR_x4", args.esrgan_psnr), ("RRDB_ESRGAN_x4", args.esrgan)):
        if path:
            methods.append((name, Method(f"{name} ({path.name})", model=load_generator(path))))
    return methods


def published_cells(name: str, dataset: str) -> list[str]:
    found = PUBLISHED.get((name, dataset))
    if found is None:
        return ["-", "-", "-", "not published"]
    psnr, ssim, niqe, source = found
    return [f"{psnr:.4f}", f"{ssim:.4f}", "-" if niqe is None else f"{niqe:.4f}", source]


def main(argv=None) -> int:
    args = parse_args(argv)
    from eusr_perceptual.evaluation.benchmarks import discover_benchmark
    from eusr_perceptual.evaluation.runner import evaluate_dataset, summarize
    from eusr_perceptual.evaluation.tables import render_table

    columns = ("", "images", "PSNR", "SSIM", "NIQE", "published PSNR", "SSIM", "NIQE", "source")
    for folder in args.data:
        benchmark = discover_benchmark(folder, 4)
        dataset = next((key for key in PAPER_BICUBIC if key.lower() == benchmark.name.lower()), benchmark.name)
        named = methods_for(args, dataset)
        result = evaluate_dataset(benchmark, [method for _, method in named], progress=False)
        rows = {row.method: row for row in summarize(result)}
        body = [[row.method, str(row.images), f"{row.psnr:.4f}", f"{row.ssim:.4f}", f"{row.niqe:.4f}",
                 *published_cells(name, dataset)] for name, method in named if (row := rows.get(method.label))]
        print(render_table(f"{dataset} x4 ({result.title.split('(', 1)[1]}", columns, body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
