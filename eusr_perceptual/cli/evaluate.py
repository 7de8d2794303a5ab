"""Scores upscalers on benchmark folders: PSNR, SSIM, NIQE and LPIPS per dataset.

    python scripts/evaluate.py --model bicubic --model runs/pretrain_demo/generator.keras --data skimage
    python scripts/evaluate.py --model bicubic --model eusr=runs/pre --model 4pp=saved_models/4pp \\
        --data benchmarks/Set5 --data benchmarks/Set14 --data benchmarks/BSD100 \\
        --routes x4,x2x2,x8down --lpips-weights lpips_alex.npz --plot --crops baby,comic

Models: ``bicubic`` (MATLAB bicubic), a ``.keras`` file, a run folder holding
generator.keras, a SavedModel folder, a released weights file (a 4PP-EUSR ``.pb`` graph, an
ESRGAN / BasicSR ``.pth``, converted in memory), or ``results:<folder>``: SR images made
elsewhere (e.g. a paper's released outputs), matched to the HR images by name with the usual
suffixes stripped (``_x4``, ``_SR``, ``_SRGAN-VGG54``, ``_4pp_eusr``...; the list is in
docs/evaluation.md) and scored with the same protocol; a missing, extra or mis-sized file is an
error, or with --skip-mismatched a counted skip. ``LABEL=PATH`` names the row. Data: a folder (HR
images only, ``HR/`` + ``LR_bicubic/X<s>/``, or ``image_SRF_<s>/``) or ``skimage`` (the
embedded held-out photographs). As 4PP-EUSR section 5, metrics are on the Y channel with 4
pixels cropped at each border (LPIPS: RGB, same crop). Writes, under --out, per dataset
``<dataset>_x<s>.csv``, ``.md`` and ``_images.csv``, plus ``perception_distortion.png``
(with --plot) and ``crops_<dataset>_<image>.png`` (with --crops). With --report, also one
self-contained ``report.html`` (images embedded, works offline): the tables, the
perception-distortion plot, and per --crops image (default: the first 3 of each dataset) a
before/after slider between bicubic, each model and HR with a synchronized zoom on the most
textured region.

LR images a dataset does not ship, and the bicubic baseline, are MATLAB bicubic under
--lr-convention: ``double`` (default; resize in double, round once, as BasicSR's
generate_bicubic_img.m) reproduces 4PP-EUSR Table 2's bicubic rows; ``uint8`` is MATLAB's
native uint8 imresize (rounded after each pass). Every table names the LR source.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.flags import non_negative_int
from eusr_perceptual.data.images import check_folder
from eusr_perceptual.evaluation.benchmarks import discover_benchmark
from eusr_perceptual.evaluation.plots import plot_crops, plot_perception_distortion
from eusr_perceptual.evaluation.report import ReportSection, write_report
from eusr_perceptual.evaluation.results import RESULTS_PREFIX, ResultFolder
from eusr_perceptual.evaluation.runner import Method, evaluate_dataset, summarize
from eusr_perceptual.evaluation.tables import format_table, write_image_scores_csv, write_summary_csv
from eusr_perceptual.files import prepare_output_folder
from eusr_perceptual.loading import check_model_path, load_generator
from eusr_perceptual.metrics.lpips import LPIPSUnavailable, load_lpips
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION, RESIZE_CONVENTIONS


#: Images per dataset in report.html when --crops names none.
REPORT_IMAGES = 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]PATH|bicubic|results:FOLDER",
                        help="an upscaler to score, or a folder of SR images made elsewhere (repeatable)")
    parser.add_argument("--data", action="append", required=True, metavar="FOLDER|skimage",
                        help="a benchmark folder (repeatable)")
    parser.add_argument("--scale", type=int, choices=(2, 4, 8), default=4, help="upscaling factor (default 4)")
    parser.add_argument("--routes", default=None,
                        help="x4 routes of 4PP-EUSR's Table 3 to score per model, comma-separated from "
                             "x4,x2x2,x8down (only with --scale 4; default: the x<scale> path)")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
    parser.add_argument("--lr-convention", choices=RESIZE_CONVENTIONS, default=DEFAULT_RESIZE_CONVENTION,
                        help="how LR images and the bicubic baseline are made: double (resize in double, round once; "
                             "reproduces 4PP-EUSR Table 2; default) or uint8 (MATLAB's uint8 imresize)")
    parser.add_argument("--lpips-weights", type=Path, help="LPIPS .npz from scripts/convert_lpips_weights.py")
    parser.add_argument("--plot", action="store_true", help="save the perception-distortion plot (PSNR vs NIQE)")
    parser.add_argument("--crops", default="", help="comma-separated image names for side-by-side crop figures "
                                                    "(bicubic | each model | HR, zoomed on the most textured region)")
    parser.add_argument("--report", action="store_true", help="write report.html: tables, plot and a comparison slider "
                                                               "per --crops image (default: the first 3 of each dataset)")
    parser.add_argument("--tile", type=non_negative_int, default=128, help="LR tile size for model inference (0: whole image)")
    parser.add_argument("--overlap", type=non_negative_int, default=32, help="LR context pixels around each tile")
    parser.add_argument("--self-ensemble", action="store_true", help="8-way geometric self-ensemble for models")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--skip-mismatched", action="store_true",
                        help="a results: folder's missing, extra or mis-sized file is a counted skip, not an error")
    return parser.parse_args(argv)


def model_specs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(label, path)`` per --model (path ``"bicubic"`` for the baseline), each model path
    checked (exists, can hold a model) without loading anything."""
    specs = []
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        if path.startswith(RESULTS_PREFIX):
            check_folder(path[len(RESULTS_PREFIX):], "result folder")
        elif path != "bicubic":
            check_model_path(path)
        specs.append((label, path))
    return specs


def build_methods(args: argparse.Namespace, specs: list[tuple[str, str]]) -> list:
    """One Method per (model, route); bicubic once."""
    routes = [f"x{args.scale}"] if args.routes is None else [r.strip() for r in args.routes.split(",") if r.strip()]
    if args.routes is not None and args.scale != 4:
        raise UsageError("--routes are the x4 routes of 4PP-EUSR; use them with --scale 4")
    methods = []
    for label, path in specs:
        if path == "bicubic":
            methods.append(Method(label or "bicubic", route=f"x{args.scale}"))
            continue
        if path.startswith(RESULTS_PREFIX):
            folder = ResultFolder.open(path[len(RESULTS_PREFIX):])
            methods.append(Method(label or folder.folder.name, route=f"x{args.scale}", results=folder))
            continue
        model = load_generator(path)
        label = label or (Path(path).parent.name if Path(path).name.isdigit() else Path(path).stem)
        for route in routes:
            row = label if len(routes) == 1 else f"{label} [{route}]"
            try:
                methods.append(Method(row, route=route, model=model, tile=args.tile or None, overlap=args.overlap,
                                      self_ensemble=args.self_ensemble))
            except ValueError as error:  # the model lacks the route
                raise UsageError(str(error)) from error
    return methods


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    specs = model_specs(args)  # before any data or model is loaded
    benchmarks = [discover_benchmark(folder, args.scale) for folder in args.data]
    prepare_output_folder(args.out)
    methods = build_methods(args, specs)
    try:
        lpips, lpips_reason = load_lpips(args.lpips_weights), None
    except LPIPSUnavailable as error:
        lpips, lpips_reason = None, str(error)

    crops = [name.strip() for name in args.crops.split(",") if name.strip()]
    summaries, found_crops, sections = {}, set(), []
    for benchmark in benchmarks:
        keep = crops or ([image.name for image in benchmark.images[:REPORT_IMAGES]] if args.report else [])
        result = evaluate_dataset(benchmark, methods, lpips=lpips, keep=keep, progress=not args.quiet,
                                  lr_convention=args.lr_convention, skip_mismatched=args.skip_mismatched)
        rows = summarize(result)
        summaries[benchmark.name] = rows
        stem = args.out / f"{benchmark.name}_x{args.scale}"
        print("\n" + format_table(result.title, rows, lpips_reason, result.skips.count))
        (stem.parent / f"{stem.name}.md").write_text(format_table(result.title, rows, lpips_reason, result.skips.count, markdown=True))
        write_summary_csv(stem.parent / f"{stem.name}.csv", benchmark.name, args.scale, rows, lpips_reason, result.lr_source)
        write_image_scores_csv(stem.parent / f"{stem.name}_images.csv", result.scores)
        for name, images in result.kept.items():
            if name in crops:
                print(f"crop figure: {plot_crops(images, args.out / f'crops_{benchmark.name}_{name}.png', title=name)}")
        found_crops.update(result.kept)
        if args.report:
            sections.append(ReportSection(benchmark.name, result.title, rows, lpips_reason, result.skips.count, result.kept))
    missing = [name for name in crops if name not in found_crops]
    if missing:
        print(f"note: no dataset has the --crops image(s) {', '.join(missing)}")
    if args.plot or args.report:
        print(f"perception-distortion plot: {plot_perception_distortion(summaries, args.out / 'perception_distortion.png')}")
    if args.report:
        report = write_report(args.out / "report.html", sections, plot=args.out / "perception_distortion.png")
        print(f"report: {report}")
    print(f"tables written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
