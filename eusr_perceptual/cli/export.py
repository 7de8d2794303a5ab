"""Exports a trained generator as a TF Serving-ready SavedModel: saved_models/<name>/<version>/.

    python scripts/export_savedmodel.py runs/pretrain_demo --name eusr
    python scripts/export_savedmodel.py runs/finetune_4pp/generator.keras --name 4pp-eusr --version 3

Signatures (input ``images`` [batch, height, width, 3], dynamic batch and size; output
``upscaled``): ``serving_default`` (x4, uint8), ``upscale_x<s>`` (uint8) and
``upscale_x<s>_float`` (float32 on the [0, 255] scale) for every scale of the model, and
``path_x2x2`` / ``path_x8down`` (+ ``_float``) for 4PP-EUSR's multi-pass x4 routes when the
model has the x2 / x8 paths. Serve with
``tensorflow_model_server --rest_api_port=8501 --model_name=<name> --model_base_path=$PWD/saved_models/<name>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file or a run folder holding generator.keras")
    parser.add_argument("--name", required=True, help="model name (TF Serving's --model_name)")
    parser.add_argument("--out", type=Path, default=Path("saved_models"), help="model base folder (default ./saved_models)")
    parser.add_argument("--version", type=int, help="version number (default: the next free one)")
    parser.add_argument("--paths", help="multi-pass x4 routes to expose, comma-separated from x2x2,x8down, or "
                                        "'none' (default: those the model supports); every scale is always exported")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from eusr_perceptual.export import export_savedmodel
    from eusr_perceptual.models.loading import GeneratorLoadError, SavedModelGenerator, load_generator

    paths = None if args.paths is None else [p.strip() for p in args.paths.split(",") if p.strip() not in ("", "none")]
    try:
        model = load_generator(args.model)
        if isinstance(model, SavedModelGenerator):
            raise GeneratorLoadError(f"{args.model} is already a SavedModel; export from the .keras model")
        target = export_savedmodel(model, args.out, args.name, version=args.version, paths=paths)
    except (FileNotFoundError, FileExistsError, GeneratorLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"SavedModel written to {target}")
    print(f"inspect: saved_model_cli show --all --dir {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
