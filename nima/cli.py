"""Trains a NIMA score predictor on AVA or TID2013 and exports it (4PP-EUSR sections 3.4, 4.2).

    python scripts/train_nima.py --dataset ava --data-dir /data/AVA --run-dir runs/nima_ava
    python scripts/train_nima.py --dataset tid2013 --data-dir /data/tid2013 --mixed-precision
    python scripts/train_nima.py --dataset tid2013 --data-dir /data/tid2013 --epochs-scale 0.01   # trial run

Defaults are the paper's (presets AVA_PAPER / TID2013_PAPER of nima.config); every other flag
overrides one field. Writes <run-dir>/phase1 and phase2 (checkpoints, log.csv, tensorboard/,
config.json), metrics.json, and export/nima_<dataset>.keras + export/nima_<dataset>_savedmodel/
(load either with nima.model.load_predictor), and ends with the validation metrics table.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path


from nima.config import DATASETS, PRESETS, NimaConfig

FLAG_TYPES = {"int": int, "float": float, "str": str}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="ava (aesthetic) or tid2013 (subjective)")
    parser.add_argument("--data-dir", type=Path, help="the dataset release folder (run without it to see what it needs)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/nima_<dataset>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoints")
    parser.add_argument("--multi-gpu", action="store_true", help="tf.distribute.MirroredStrategy over all GPUs")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    for field in dataclasses.fields(NimaConfig):
        if field.name == "dataset":
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (AVA {getattr(PRESETS['ava'], field.name)}, TID2013 {getattr(PRESETS['tid2013'], field.name)})"
        if field.type == "bool":
            parser.add_argument(flag, action="store_const", const=True, dest=field.name, help=field.metadata["help"])
        else:
            parser.add_argument(flag, type=FLAG_TYPES[field.type], dest=field.name, help=help_text)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> NimaConfig:
    changes = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(NimaConfig)
        if field.name != "dataset" and getattr(args, field.name) is not None
    }
    return PRESETS[args.dataset].replace(**changes)


def main(argv=None) -> int:
    args = parse_args(argv)
    from nima.datasets import LAYOUTS, DatasetLayoutError, LabelFileError, load_dataset

    if args.data_dir is None:
        print(f"--data-dir is required.\n{LAYOUTS[args.dataset].describe()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TensorFlow's checkpoint/SavedModel chatter
    try:
        config = config_from_args(args)
        data = load_dataset(config, args.data_dir)
    except (DatasetLayoutError, LabelFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import tensorflow as tf

    from nima.evaluation import PAPER_RESULTS, format_table
    from nima.model import PretrainedWeightsUnavailable
    from nima.train import train_nima

    run_dir = args.run_dir or Path("runs") / f"nima_{config.dataset}"
    logging.info(
        "%s: %d training and %d validation images (%d skipped so far); run folder %s",
        config.dataset, len(data.train), len(data.validation), data.report.count, run_dir,
    )
    strategy = tf.distribute.MirroredStrategy() if args.multi_gpu else None
    try:
        result = train_nima(
            config, data, run_dir, resume=args.resume, strategy=strategy,
            tensorboard=not args.no_tensorboard, verbose=2 if args.quiet else "auto",
        )
    except (PretrainedWeightsUnavailable, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print()
    for phase in result.phases:
        print(f"{phase.name}: {phase.total_steps} steps, {phase.trainable_parameters:,} trainable and "
              f"{phase.frozen_parameters:,} frozen parameters")
    print(f"skipped files or label lines: {result.skipped} (see the warnings above)")
    print(f"predictor: {result.exported.keras_file} and {result.exported.saved_model}/")
    print()
    print(format_table(f"NIMA {config.dataset} validation, centre {config.crop_size}x{config.crop_size} crops",
                       result.metrics, PAPER_RESULTS[config.dataset]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
