"""Upscales image files or folders with a trained generator; writes uint8 PNGs.

    python scripts/upscale.py runs/pretrain_demo photo.jpg --out upscaled/
    python scripts/upscale.py saved_models/4pp photos/ --route x2x2 --self-ensemble --tile 96

MODEL is a .keras file, a run folder holding generator.keras, or a SavedModel folder.
Images of any size run as overlapping tiles (--tile LR pixels, --overlap LR pixels of context
per side), so memory stays bounded; only the uint8 output grows with the image. A file that
cannot be read is reported and skipped; the exit status is 1 if any input failed.

Files are read upright (EXIF orientation applied). A grayscale file gives a grayscale PNG, a
file with alpha an RGBA (or gray + alpha) PNG whose alpha is upscaled by MATLAB bicubic.

Output names: ``<stem>_<route>.png`` (folder inputs keep their sub-folders). When several
inputs would get the same name (``photo.jpg`` and ``photo.png``), each of them keeps its
extension in the name instead (``photo_jpg_x4.png``, ``photo_png_x4.png``); names that still
clash are refused before anything runs, so no output overwrites another. A file left by an
earlier run is replaced, and the report line says so. No input is ever replaced: ``--out`` may
not be an input folder or lie inside one (a re-run would upscale the outputs of the last one,
and ``a.png``'s output could replace a photo named ``a_x4.png``), nor may an output name be an
input file's; both are refused in one line before the model loads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image

from eusr_perceptual.errors import PathUsageError, UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.flags import non_negative_int
from eusr_perceptual.data.images import UnreadableImageError, list_image_files, read_image
from eusr_perceptual.files import prepare_output_folder
from eusr_perceptual.inference import check_route, make_tile_function, upscale_decoded
from eusr_perceptual.loading import check_model_path, load_generator


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file, a run folder or a SavedModel folder")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("upscaled"), help="output folder (default ./upscaled)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scale", type=int, help="upscaling factor (a path of the model; default 4)")
    group.add_argument("--route", help="x2, x4, x8, or 4PP-EUSR's multi-pass x4 routes x2x2 / x8down")
    parser.add_argument("--tile", type=non_negative_int, default=128, help="LR tile size (0: whole image at once)")
    parser.add_argument("--overlap", type=non_negative_int, default=32, help="LR context pixels around each tile")
    parser.add_argument("--self-ensemble", action="store_true", help="average over the 8 flips/rotations")
    return parser.parse_args(argv)


def _sources(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """``(image file, output sub-folder)`` per input image, each file once."""
    found, seen = [], set()
    for source in inputs:
        if source.is_dir():
            pairs = [(path, path.relative_to(source).parent) for path in list_image_files(source)]
        elif source.is_file():
            pairs = [(source, Path())]
        else:
            raise PathUsageError(f"input not found: {source}")
        for path, folder in pairs:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                found.append((path, folder))
    return found


def output_jobs(inputs: list[Path], out: Path, route: str) -> list[tuple[Path, Path]]:
    """``(source, destination PNG)`` pairs with distinct destinations (see the module doc).

    Names are compared case-insensitively, as on macOS and Windows file systems.

    Raises:
        PathUsageError: an input does not exist.
        UsageError: two inputs would still write the same file; ``out`` is an input folder
            or inside one; an output would replace an input file.
    """
    sources = _sources(inputs)
    target = out.resolve()
    for source in inputs:
        if source.is_dir() and (target == source.resolve() or source.resolve() in target.parents):
            raise UsageError(f"--out {out} is inside the input folder {source}: a re-run would upscale its own outputs "
                             "and an output could replace an input file; choose an --out outside the inputs")

    def key(destination: Path) -> str:
        return str(destination).casefold()

    plain = [out / folder / f"{path.stem}_{route}.png" for path, folder in sources]
    counts = defaultdict(int)
    for destination in plain:
        counts[key(destination)] += 1
    jobs = [
        (path, destination if counts[key(destination)] == 1 else out / folder / f"{path.stem}_{path.suffix.lstrip('.')}_{route}.png")
        for (path, folder), destination in zip(sources, plain)
    ]
    by_destination = defaultdict(list)
    for path, destination in jobs:
        by_destination[key(destination)].append(path)
    clashes = [paths for paths in by_destination.values() if len(paths) > 1]
    if clashes:
        names = "; ".join(" and ".join(str(p) for p in paths) for paths in clashes)
        raise UsageError(f"these inputs would be written to the same output file: {names} (rename one, or upscale them separately)")
    inputs_by_key = {key(path.resolve()): path for path, _ in sources}
    replaced = [(path, destination) for path, destination in jobs if key(destination.resolve()) in inputs_by_key]
    if replaced:
        path, destination = replaced[0]
        raise UsageError(f"the output of {path} would replace the input file {inputs_by_key[key(destination.resolve())]}; "
                         "choose another --out")
    return jobs


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    route = args.route or f"x{args.scale or 4}"
    check_model_path(args.model)
    jobs = output_jobs(args.inputs, args.out, route)
    if not jobs:
        raise UsageError(f"no image files among the inputs ({', '.join(map(str, args.inputs))})")
    prepare_output_folder(args.out)
    model = load_generator(args.model)
    try:
        check_route(model, route)
    except ValueError as error:
        raise UsageError(str(error)) from error
    tile_function = make_tile_function(model, route, args.self_ensemble)
    failed = 0
    for source, destination in jobs:
        try:
            image = read_image(source)
        except (UnreadableImageError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        sr = upscale_decoded(model, image, route, tile=args.tile or None, overlap=args.overlap, tile_function=tile_function)
        replaced = destination.exists()
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(destination, format="PNG")
        except OSError as error:
            print(f"error: cannot write {destination}: {error}", file=sys.stderr)
            failed += 1
            continue
        kind = ("grayscale" if image.grayscale else "RGB") + (" + alpha" if image.alpha is not None else "")
        note = ", replaced the earlier file" if replaced else ""
        print(f"{source} ({image.rgb.shape[1]}x{image.rgb.shape[0]}) -> {destination} ({sr.shape[1]}x{sr.shape[0]} {kind}{note})")
    print(f"{len(jobs) - failed} upscaled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
