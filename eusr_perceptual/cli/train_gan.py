"""Trains any GAN preset of the project: SRGAN, ESRGAN, Dual Perceptual Loss, adversarial
feature matching, the ESRGAN loss-effects study, 4PP-EUSR (``--list-presets`` shows them all).

    eusr-train-gan --list-presets
    eusr-train-gan --preset esrgan --stage psnr --data div2k:/data/DIV2K --run-dir runs/esrgan_psnr
    eusr-train-gan --preset esrgan --init-from runs/esrgan_psnr --data div2k:/data/DIV2K --run-dir runs/esrgan
    eusr-train-gan --run-dir runs/esrgan --resume
    eusr-train-gan --preset srgan_vgg54 --demo       # tiny networks on the embedded photographs

``--stage psnr`` runs the preset's PSNR stage (pixel loss only, no discriminator); the GAN stage
starts from ``--init-from`` (a .keras file or a finished run folder). ``--demo`` shrinks the preset
(:mod:`eusr_perceptual.configs.demo`) and, for a two-stage preset, runs its PSNR stage first.
Each run writes checkpoints, config.json, log.csv, tensorboard/ (every loss term, D(real),
D(fake), sample images), generator.keras, a SavedModel and evaluation.md (PSNR/SSIM/NIQE
against bicubic on held-out images).
"""

from __future__ import annotations

import argparse

from eusr_perceptual.cli.errors import reports_usage_errors
from eusr_perceptual.cli.gan_flags import (add_gan_flags, default_run_dir, gan_config_from_args, listed_presets,
                                           run_options)
from eusr_perceptual.configs.presets import PRESETS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("psnr", "gan"), default="gan",
                        help="psnr: the preset's PSNR stage (pixel loss, no D); gan: the preset itself")
    parser.add_argument("--demo", action="store_true", help="tiny networks on the embedded photographs, minutes on a CPU")
    add_gan_flags(parser, PRESETS, "esrgan" if "esrgan" in PRESETS else next(iter(PRESETS)))
    return parser.parse_args(argv)


@reports_usage_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    if listed_presets(args, PRESETS):
        return 0
    from eusr_perceptual.training.gan_run import run_gan

    if args.stage == "psnr" and not args.resume:
        stage = PRESETS[args.preset].psnr_stage
        if not stage:
            raise SystemExit(f"error: preset {args.preset} has no PSNR stage")
        args.preset = stage
    config = gan_config_from_args(args, PRESETS)
    run_dir = args.run_dir or default_run_dir(f"{args.preset}{'_demo' if args.demo else ''}")
    common = run_options(args, args.preset)
    if args.demo:
        common["verbose"] = 2
    if args.demo:
        from eusr_perceptual.configs.demo import demo_version

        config = demo_version(config)
        if args.stage == "gan" and config.psnr_stage and not config.init_from:
            stage = demo_version(PRESETS[config.psnr_stage])
            print(f"[1/2] PSNR stage {config.psnr_stage} ({stage.steps} steps)", flush=True)
            run_gan(stage, run_dir / "psnr", **{**common, "eval_data": None, "export_dir": None})
            config = config.replace(init_from=str(run_dir / "psnr" / "generator.keras"))
            print(f"[2/2] GAN stage {args.preset} ({config.steps} steps)", flush=True)
            run_dir = run_dir / "gan"
        common["export_dir"] = args.export_dir or run_dir / "saved_models"
    run_gan(config, run_dir, resume=args.resume, **common)
    return 0
