"""Scores upscalers on benchmark folders: PSNR, SSIM, NIQE and LPIPS per dataset.

    python scripts/evaluate.py --model bicubic --model runs/pretrain_demo/generator.keras --data skimage
    python scripts/evaluate.py --model bicubic --model eusr=runs/pre --model 4pp=saved_models/4pp \\
        --data benchmarks/Set5 --data benchmarks/Set14 --data benchmarks/BSD100 \\
        --routes x4,x2x2,x8down --lpips-weights lpips_alex.npz --plot --crops baby,comic

Models: ``bicubic`` (MATLAB bicubic), a ``.keras`` file, a run folder holding
generator.keras, or a SavedModel folder; ``LABEL=PATH`` names the row. Data: a folder (HR
images only, ``HR/`` + ``LR_bicubic/X<s>/``, or ``image_SRF_<s>/``) or ``skimage`` (the
embedded held-out photographs). As 4PP-EUSR section 5, metrics are on the Y channel with 4
pixels cropped at each border (LPIPS: RGB, same crop). Writes, under --out, per dataset
``<dataset>_x<s>.csv``, ``.md`` and ``_images.csv``, plus ``perception_distortion.png``
(with --plot) and ``crops_<dataset>_<image>.png`` (with --crops).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]PATH|bicubic",
                        help="an upscaler to score (repeatable)")
    parser.add_argument("--data", action="append", required=True, metavar="FOLDER|skimage",
                        help="a benchmark folder (repeatable)")
    parser.add_argument("--scale", type=int, choices=(2, 4, 8), default=4, help="upscaling factor (default 4)")
    parser.add_argument("--routes", default=None,
                        help="x4 routes of 4PP-EUSR's Table 3 to score per model, comma-separated from "
                             "x4,x2x2,x8down (only with --scale 4; default: the x<scale> path)")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
    parser.add_argument("--lpips-weights", type=Path, help="LPIPS .npz from scripts/convert_lpips_weights.py")
    parser.add_argument("--plot", action="store_true", help="save the perception-distortion plot (PSNR vs NIQE)")
    parser.add_argument("--crops", default="", help="comma-separated image names for side-by-side crop figures "
                                                    "(bicubic | each model | HR, zoomed on the most textured region)")
    parser.add_argument("--tile", type=int, default=128, help="LR tile size for model inference (0: whole image)")
    parser.add_argument("--overlap", type=int, default=32, help="LR context pixels around each tile")
    parser.add_argument("--self-ensemble", action="store_true", help="8-way geometric self-ensemble for models")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def build_methods(args: argparse.Namespace) -> list:
    """One Method per (model, route); bicubic once. Fails before any work on a bad model."""
    from eusr_perceptual.evaluation.runner import Method
    from eusr_perceptual.models.loading import load_generator

    routes = [f"x{args.scale}"] if args.routes is None else [r.strip() for r in args.routes.split(",") if r.strip()]
    if args.routes is not None and args.scale != 4:
        raise ValueError("--routes are the x4 routes of 4PP-EUSR; use them with --scale 4")
    methods = []
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        if path == "bicubic":
            methods.append(Method(label or "bicubic", route=f"x{args.scale}"))
            continue
        model = load_generator(path)
        label = label or (Path(path).parent.name if Path(path).name.isdigit() else Path(path).stem)
        for route in routes:
            row = label if len(routes) == 1 else f"{label} [{route}]"
            methods.append(Method(row, route=route, model=model, tile=args.tile or None, overlap=args.overlap,
                                  self_ensemble=args.self_ensemble))
    return methods


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from eusr_perceptual.data.images import UnreadableImageError
    from eusr_perceptual.evaluation.benchmarks import discover_benchmark
    from eusr_perceptual.evaluation.runner import evaluate_dataset, summarize
    from eusr_perceptual.evaluation.tables import format_table, write_image_scores_csv, write_summary_csv
    from eusr_perceptual.metrics.lpips import LPIPSUnavailable, load_lpips
    from eusr_perceptual.models.loading import GeneratorLoadError

    try:
        benchmarks = [discover_benchmark(folder, args.scale) for folder in args.data]
        methods = build_methods(args)
    except (FileNotFoundError, GeneratorLoadError, ValueError, UnreadableImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        lpips, lpips_reason = load_lpips(args.lpips_weights), None
    except LPIPSUnavailable as error:
        lpips, lpips_reason = None, str(error)

    args.out.mkdir(parents=True, exist_ok=True)
    crops = [name.strip() for name in args.crops.split(",") if name.strip()]
    summaries, found_crops = {}, set()
    for benchmark in benchmarks:
        result = evaluate_dataset(benchmark, methods, lpips=lpips, keep=crops, progress=not args.quiet)
        rows = summarize(result)
        summaries[benchmark.name] = rows
        stem = args.out / f"{benchmark.name}_x{args.scale}"
        title = f"{benchmark.name} x{args.scale} (Y channel, 4-px border cropped)"
        print("\n" + format_table(title, rows, lpips_reason, result.skips.count))
        (stem.parent / f"{stem.name}.md").write_text(format_table(title, rows, lpips_reason, result.skips.count, markdown=True))
        write_summary_csv(stem.parent / f"{stem.name}.csv", benchmark.name, args.scale, rows, lpips_reason)
        write_image_scores_csv(stem.parent / f"{stem.name}_images.csv", result.scores)
        for name, images in result.kept.items():
            from eusr_perceptual.evaluation.plots import plot_crops

            print(f"crop figure: {plot_crops(images, args.out / f'crops_{benchmark.name}_{name}.png', title=name)}")
        found_crops.update(result.kept)
    missing = [name for name in crops if name not in found_crops]
    if missing:
        print(f"note: no dataset has the --crops image(s) {', '.join(missing)}")
    if args.plot:
        from eusr_perceptual.evaluation.plots import plot_perception_distortion

        print(f"perception-distortion plot: {plot_perception_distortion(summaries, args.out / 'perception_distortion.png')}")
    print(f"tables written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
