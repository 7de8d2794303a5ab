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
import logging
import sys
from pathlib import Path

from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.flags import add_config_flags, config_from_flags, flag_overrides
from eusr_perceptual.configs.base import resumed_config
from eusr_perceptual.errors import UsageError
from eusr_perceptual.training import STRATEGIES
from eusr_perceptual.training.strategy import make_strategy
from nima.config import DATASETS, PRESETS, NimaConfig
from nima.datasets import LAYOUTS, load_dataset
from nima.evaluation import PAPER_RESULTS, format_table
from nima.train import train_nima

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="ava (aesthetic) or tid2013 (subjective)")
    parser.add_argument("--data-dir", type=Path, help="the dataset release folder (run without it to see what it needs)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/nima_<dataset>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoints")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: mirrored (all local GPUs), multi-worker (TF_CONFIG), tpu")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    add_config_flags(parser, NimaConfig)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> NimaConfig:
    """The dataset's preset with the flags' overrides; on --resume, the run's recorded settings
    (phase1/config.json), any changed setting refused by name."""
    if args.resume and args.run_dir is not None and (args.run_dir / "phase1" / "config.json").is_file():
        config = resumed_config(args.run_dir / "phase1", NimaConfig, flag_overrides(args, NimaConfig))
        if config.dataset != args.dataset:
            raise UsageError(f"--resume: {args.run_dir} is a {config.dataset} run, not {args.dataset}")
        return config
    return config_from_flags(args, PRESETS[args.dataset])


@command()
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.data_dir is None:
        raise UsageError(f"--data-dir is required.\n{LAYOUTS[args.dataset].describe()}")
    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede every other TF op
    config = config_from_args(args)
    data = load_dataset(config, args.data_dir)  # DatasetLayoutError, LabelFileError: usage errors

    run_dir = args.run_dir or Path("runs") / f"nima_{config.dataset}"
    logging.info(
        "%s: %d training and %d validation images (%d skipped so far); run folder %s",
        config.dataset, len(data.train), len(data.validation), data.report.count, run_dir,
    )
    result = train_nima(
        config, data, run_dir, resume=args.resume, strategy=strategy,
        tensorboard=not args.no_tensorboard, verbose=2 if args.quiet else "auto",
    )  # missing ImageNet weights and an existing run folder are usage errors

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
