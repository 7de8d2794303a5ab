"""Pre-trains the multi-scale EUSR model with L1 loss (4PP-EUSR section 4.1).

    eusr-pretrain                       # demo preset on the embedded photographs
    eusr-pretrain --preset paper --data div2k:/data/DIV2K --mixed-precision
    eusr-pretrain --run-dir runs/x --resume   # continue a run with its recorded settings

Writes <run-dir>/checkpoints, generator.keras (the trained float32 EUSR), config.json, log.csv,
tensorboard/, and evaluation.md: PSNR/SSIM/NIQE against bicubic on held-out images per scale.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.flags import add_config_flags, config_from_flags, flag_overrides
from eusr_perceptual.configs.base import resumed_config
from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS, PretrainConfig
from eusr_perceptual.pipelines.pretrain_run import run_pretraining
from eusr_perceptual.training import STRATEGIES
from eusr_perceptual.training.strategy import make_strategy


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRETRAIN_PRESETS), default="demo",
                        help="named settings: 'paper' = section 4.1, 'demo' = small model on the embedded photographs")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/pretrain_<preset>_<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir with its config.json")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default", help="tf.distribute strategy")
    parser.add_argument("--eval-data", default="skimage", help="held-out images for the final table")
    parser.add_argument("--no-eval", action="store_true", help="skip the final table")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    add_config_flags(parser, PretrainConfig, PRETRAIN_PRESETS["demo"])
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The preset with the flags' overrides; on --resume, the run's config.json (changes refused)."""
    if args.resume:
        if args.run_dir is None:
            raise UsageError("--resume needs --run-dir (the folder of the run to continue)")
        return resumed_config(args.run_dir, PretrainConfig, flag_overrides(args, PretrainConfig))
    return config_from_flags(args, PRETRAIN_PRESETS[args.preset])


@command()
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args)
    run_dir = args.run_dir or Path("runs") / f"pretrain_{args.preset}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_pretraining(config, run_dir, resume=args.resume, strategy=make_strategy(args.strategy),
                    eval_data=None if args.no_eval else args.eval_data, verbose=2 if args.quiet else "auto")
    return 0
