"""Exports a trained generator: a TF Serving SavedModel, a TFLite file or ONNX files.

    eusr-export runs/pretrain_demo --name eusr                       # saved_models/eusr/<next version>/
    eusr-export runs/finetune_4pp/generator.keras --name 4pp-eusr --version 3
    eusr-export runs/finetune_4pp --name 4pp-eusr --format tflite [--float16]   # exports/4pp-eusr.tflite
    eusr-export runs/finetune_4pp --name 4pp-eusr --format onnx     # exports/4pp-eusr_<route>.onnx

SavedModel (``--format savedmodel``, the default) signatures, dynamic batch and size, for every
scale of the model (``upscale_x<s>...``) and 4PP-EUSR's multi-pass x4 routes when the model has
their paths (``path_x2x2...``, ``path_x8down...``): ``upscale_x<s>`` (uint8 ``images`` ->
``upscaled``), ``upscale_x<s>_float`` (float32 on the [0, 255] scale), ``upscale_x<s>_png``
(encoded images ``images_bytes`` -> PNG ``upscaled_bytes``) and ``upscale_x<s>_png_tiled``
(the same in --tile/--overlap tiles, for large images); ``serving_default`` is x4 uint8. With
tensorflow-serving-api installed it also writes TF Serving's warm-up requests. The encoded-image
signatures refuse, from its header and before decoding, an image larger than one request may
take: the limits follow from --request-memory-mib (default 2048) and the model's estimated
memory per pixel, or are set with --max-pixels; the command prints them. Serve with
``tensorflow_model_server --rest_api_port=8501 --model_name=<name> --model_base_path=$PWD/saved_models/<name>``
(docs/serving.md).

TFLite and ONNX exports hold the float32 route functions (``images`` -> ``upscaled``, dynamic
batch, height and width); each is run in its runtime (LiteRT, onnxruntime) on crops of the
embedded photographs after writing, and the largest difference from the Keras model is
printed (exit status 1 if a float32 export differs by more than 1e-3). They need the optional
``export`` extra: ``pip install .[export]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.flags import add_config_flags, flag_overrides, non_negative_int, positive_int
from eusr_perceptual.configs.base import apply_changes
from eusr_perceptual.errors import UsageError
from eusr_perceptual.loading import GeneratorLoadError, SavedModelGenerator, float_signature_name, load_generator
from eusr_perceptual.serving import convert
from eusr_perceptual.serving.limits import RequestBudget, read_limits
from eusr_perceptual.serving.savedmodel import export_savedmodel, exported_routes

FORMATS = ("savedmodel", "tflite", "onnx")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file or a run folder holding generator.keras")
    parser.add_argument("--name", required=True, help="model name (TF Serving's --model_name; file name stem)")
    parser.add_argument("--format", choices=FORMATS, default="savedmodel", help="what to write (default savedmodel)")
    parser.add_argument("--out", type=Path, help="output folder (default ./saved_models for savedmodel, else ./exports)")
    parser.add_argument("--version", type=int, help="SavedModel version number (default: the next free one)")
    parser.add_argument("--paths", help="multi-pass x4 routes to expose, comma-separated from x2x2,x8down, or "
                                        "'none' (default: those the model supports); every scale is always exported")
    parser.add_argument("--tile", type=positive_int, default=128, help="LR tile size of the _png_tiled signatures (default 128)")
    parser.add_argument("--overlap", type=non_negative_int, default=32, help="LR context pixels around each tile (default 32)")
    parser.add_argument("--no-warmup", action="store_true", help="do not write TF Serving warm-up requests")
    parser.add_argument("--float16", action="store_true", help="TFLite with float16 weights (half the size)")
    add_config_flags(parser, RequestBudget)
    return parser.parse_args(argv)


def _convert(model, args: argparse.Namespace, paths: list[str] | None) -> int:
    """Writes the TFLite or ONNX export, runs it, prints where it is and how far from Keras."""
    out, routes = args.out or Path("exports"), exported_routes(model, paths)
    if args.format == "tflite":
        path = convert.export_tflite(model, out / f"{args.name}{'_float16' if args.float16 else ''}.tflite", args.float16, routes)
        written = {route: path for route in routes}
        runners = {route: convert.tflite_runner(path, float_signature_name(route)) for route in routes}
    else:
        written = convert.export_onnx(model, out, args.name, routes)
        runners = {route: convert.onnx_runner(path) for route, path in written.items()}
    differences = convert.differences_from_keras(model, runners, convert.reference_images())
    for route, difference in differences.items():
        print(f"{written[route]} [{route}]: max |{args.format} - keras| = {difference:.2e} on the embedded photographs")
    if not args.float16 and max(differences.values()) > convert.TOLERANCE:
        print(f"error: the {args.format} export differs from the Keras model by more than {convert.TOLERANCE}", file=sys.stderr)
        return 1
    return 0


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    paths = None if args.paths is None else [p.strip() for p in args.paths.split(",") if p.strip() not in ("", "none")]
    budget_flags = flag_overrides(args, RequestBudget)
    if budget_flags and args.format != "savedmodel":
        raise UsageError("--request-memory-mib and --max-pixels apply to --format savedmodel only")
    budget = apply_changes(RequestBudget(), budget_flags)
    model = load_generator(args.model)
    if isinstance(model, SavedModelGenerator):
        raise GeneratorLoadError(f"{args.model} is already a SavedModel; export from the .keras model")
    if args.format != "savedmodel":
        return _convert(model, args, paths)
    target = export_savedmodel(model, args.out or Path("saved_models"), args.name, version=args.version, paths=paths,
                               tile=args.tile, overlap=args.overlap, warmup=not args.no_warmup, budget=budget)
    print(f"SavedModel written to {target}")
    for signature, limit in read_limits(target).items():
        print(f"{signature}: images up to {limit.max_pixels:,} pixels ({limit.basis})")
    print(f"inspect: saved_model_cli show --all --dir {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
