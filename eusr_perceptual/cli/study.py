"""Trains a list of presets with identical data and seeds and writes one comparison table
(PSNR/SSIM/NIQE, LPIPS with --lpips-weights) and the perception-distortion plot.

    eusr-study dp_table6                     # DP Table 6's three rows at the demo scale
    eusr-study afm_table1 --steps 300        # AFM's five models
    eusr-study esrgan srgan_vgg54 --steps 100
    eusr-study --list                        # the named studies and their paper trends
    eusr-study dp_table6 --run-dir runs/study --resume   # continue a killed study (finished runs reused)

At the demo scale (default) every preset is shrunk as ``eusr-train-gan --demo`` does and
trained on the embedded photographs; ``--full`` trains the presets as they are (GPU, real data
via each preset's --data default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.gan_flags import default_run_dir
from eusr_perceptual.pipelines.study import STUDIES, run_study


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", help="a study name (see --list) or preset names")
    parser.add_argument("--list", action="store_true", help="print the named studies and exit")
    parser.add_argument("--steps", type=int, help="steps per preset (demo default: 200)")
    parser.add_argument("--full", action="store_true", help="train the presets at their own size, not the demo scale")
    parser.add_argument("--seed", type=int, default=0, help="the seed every preset uses")
    parser.add_argument("--eval-data", default="skimage", help="held-out images: skimage or a benchmark folder")
    parser.add_argument("--lpips-weights", type=Path, help="LPIPS .npz (eusr-convert-lpips) for the LPIPS column")
    parser.add_argument("--run-dir", type=Path, help="study folder (default: runs/study_<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the study in --run-dir: finished runs are reused, unfinished ones continue")
    parser.add_argument("--bit-exact", action=argparse.BooleanOptionalAction, default=None,
                        help="seeded runs bit-identical: TensorFlow's graph optimizer off, 1.7x the step time on a "
                             "2-core CPU (default: on at the demo scale, off with --full)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    return parser.parse_args(argv)


@command()
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list or not args.presets:
        for name, (presets, trend) in STUDIES.items():
            print(f"{name}: {', '.join(presets)}\n    {trend}")
        return 0
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir (the folder of the study to continue)")
    result = run_study(args.presets, args.run_dir or default_run_dir("study"), steps=args.steps, demo=not args.full,
                       eval_data=args.eval_data, seed=args.seed, lpips_weights=args.lpips_weights,
                       resume=args.resume, bit_exact=args.bit_exact)
    print("\n" + result.table)
    print(f"study table: {result.run_dir / 'study.md'}; plot: {result.plot}")
    return 0
