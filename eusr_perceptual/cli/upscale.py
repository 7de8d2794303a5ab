"""Upscales image files or folders with a trained generator; writes uint8 PNGs.

    python scripts/upscale.py runs/pretrain_demo photo.jpg --out upscaled/
    python scripts/upscale.py saved_models/4pp photos/ --route x2x2 --self-ensemble --tile 96

MODEL is a .keras file, a run folder holding generator.keras, or a SavedModel folder.
Images of any size run as overlapping tiles (--tile LR pixels, --overlap LR pixels of context
per side), so memory stays bounded; only the uint8 output grows with the image. A file that
cannot be read is reported and skipped; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file, a run folder or a SavedModel folder")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("upscaled"), help="output folder (default ./upscaled)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scale", type=int, help="upscaling factor (a path of the model; default 4)")
    group.add_argument("--route", help="x2, x4, x8, or 4PP-EUSR's multi-pass x4 routes x2x2 / x8down")
    parser.add_argument("--tile", type=int, default=128, help="LR tile size (0: whole image at once)")
    parser.add_argument("--overlap", type=int, default=32, help="LR context pixels around each tile")
    parser.add_argument("--self-ensemble", action="store_true", help="average over the 8 flips/rotations")
    return parser.parse_args(argv)


def output_jobs(inputs: list[Path], out: Path, route: str) -> list[tuple[Path, Path]]:
    """``(source, destination PNG)`` pairs; folder inputs keep their sub-folder structure.

    Raises:
        FileNotFoundError: an input does not exist.
    """
    from eusr_perceptual.data.images import list_image_files

    jobs = []
    for source in inputs:
        if source.is_dir():
            jobs += [(path, out / path.relative_to(source).parent / f"{path.stem}_{route}.png") for path in list_image_files(source)]
        elif source.is_file():
            jobs.append((source, out / f"{source.stem}_{route}.png"))
        else:
            raise FileNotFoundError(f"input not found: {source}")
    return jobs


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from PIL import Image

    from eusr_perceptual.data.images import UnreadableImageError, load_rgb8
    from eusr_perceptual.inference import check_route, make_tile_function, upscale_image
    from eusr_perceptual.models.loading import GeneratorLoadError, load_generator

    route = args.route or f"x{args.scale or 4}"
    try:
        jobs = output_jobs(args.inputs, args.out, route)
        model = load_generator(args.model)
        check_route(model, route)
    except (FileNotFoundError, GeneratorLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not jobs:
        print("error: no image files among the inputs", file=sys.stderr)
        return 2
    tile_function = make_tile_function(model, route, args.self_ensemble)
    failed = 0
    for source, destination in jobs:
        try:
            lr = load_rgb8(source)
        except (UnreadableImageError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        sr = upscale_image(model, lr, route, tile=args.tile or None, overlap=args.overlap, tile_function=tile_function)
        destination.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sr).save(destination)
        print(f"{source} ({lr.shape[1]}x{lr.shape[0]}) -> {destination} ({sr.shape[1]}x{sr.shape[0]})")
    print(f"{len(jobs) - failed} upscaled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
