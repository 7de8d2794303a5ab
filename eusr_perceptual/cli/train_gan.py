"""Trains any GAN preset of the project: SRGAN, ESRGAN, Dual Perceptual Loss, adversarial
feature matching, the ESRGAN loss-effects study, 4PP-EUSR (``--list-presets`` shows them all).

    eusr-train-gan --list-presets
    eusr-train-gan --preset esrgan --stage psnr --data div2k:/data/DIV2K --run-dir runs/esrgan_psnr
    eusr-train-gan --preset esrgan --init-from runs/esrgan_psnr --data div2k:/data/DIV2K --run-dir runs/esrgan
    eusr-train-gan --run-dir runs/esrgan --resume
    eusr-train-gan --preset srgan_vgg54 --demo --run-dir runs/demo   # tiny networks, embedded photographs
    eusr-train-gan --preset srgan_vgg54 --demo --run-dir runs/demo --resume   # continue it after a stop

``--stage psnr`` runs the preset's PSNR stage (pixel loss only, no discriminator); the GAN stage
starts from ``--init-from`` (a .keras file or a finished run folder). ``--demo`` shrinks the preset
(:mod:`eusr_perceptual.configs.demo`; the other flags apply after it, as given) and, for a
two-stage preset, runs its PSNR stage first. ``--resume`` continues a run with its recorded
settings (only ``--steps`` and the learning rates may change) and exports under its own preset.
Each run writes checkpoints, config.json, log.csv, tensorboard/ (every loss term, D(real),
D(fake), sample images), generator.keras, a SavedModel and evaluation.md (PSNR/SSIM/NIQE
against bicubic on held-out images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.gan_flags import (add_gan_flags, default_run_dir, export_name, gan_config_from_args,
                                           listed_presets, preset_config, resumed_gan_config, run_options)
from eusr_perceptual.configs.demo import demo_version
from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.pipelines import gan_run  # gan_run.run_gan at call time: tests replace it
from eusr_perceptual.pipelines.gan_run import after_psnr_stage, needs_psnr_stage


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("psnr", "gan"), default="gan",
                        help="psnr: the preset's PSNR stage (pixel loss, no D); gan: the preset itself")
    parser.add_argument("--demo", action="store_true", help="tiny networks on the embedded photographs, minutes on a CPU")
    add_gan_flags(parser, PRESETS, "esrgan" if "esrgan" in PRESETS else next(iter(PRESETS)))
    return parser.parse_args(argv)


def demo_stages(args: argparse.Namespace, run_dir: Path) -> list[tuple[str, GANConfig, Path]]:
    """``--demo``'s runs as ``(label, config, run folder)``: the preset shrunk
    (:func:`~eusr_perceptual.configs.demo.demo_version`, given ``--steps``) with the command
    line's settings applied as given; a two-stage preset's PSNR stage (``<run-dir>/psnr``, with
    the same ``--steps`` and ``--checkpoint-every``) comes first and the GAN stage
    (``<run-dir>/gan``) starts from its generator.

    With ``--resume`` (the same command plus ``--resume``) a stage that has started continues
    with its recorded settings (never shrunk again), one that has not starts as above, and a
    PSNR stage whose GAN stage has started is finished and is not run again.
    """
    def stage(label: str, config: GANConfig, directory: Path, changes: dict | None = None):
        if args.resume and (directory / "config.json").is_file():
            config = resumed_gan_config(args, directory, changes)
        return label, config, directory

    config = preset_config(args, demo_version(PRESETS[args.preset], args.steps), args.preset)
    if args.stage == "psnr" or not needs_psnr_stage(config):
        return [stage("", config, run_dir)]
    shared = {name: getattr(args, name) for name in ("steps", "checkpoint_every") if getattr(args, name)}
    try:
        psnr = demo_version(PRESETS[config.psnr_stage], args.steps).replace(preset=config.psnr_stage, **shared)
    except ValueError as error:
        raise UsageError(str(error)) from None
    gan = stage(f"[2/2] GAN stage {args.preset}", after_psnr_stage(config, run_dir / "psnr"), run_dir / "gan")
    if args.resume and (run_dir / "gan" / "config.json").is_file():
        return [gan]
    return [stage(f"[1/2] PSNR stage {config.psnr_stage}", psnr, run_dir / "psnr", shared), gan]


@command()
def main(argv=None) -> int:
    args = parse_args(argv)
    if listed_presets(args, PRESETS):
        return 0
    if args.stage == "psnr" and (args.demo or not args.resume):
        stage = PRESETS[args.preset].psnr_stage
        if not stage:
            raise UsageError(f"preset {args.preset} has no PSNR stage")
        args.preset = stage
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir (the folder of the run to continue)")
    run_dir = args.run_dir or default_run_dir(f"{args.preset}{'_demo' if args.demo else ''}")
    if not args.demo:
        config = gan_config_from_args(args, PRESETS)
        gan_run.run_gan(config, run_dir, resume=args.resume, **run_options(args, export_name(args, config, PRESETS)))
        return 0
    stages = demo_stages(args, run_dir)
    for index, (label, config, directory) in enumerate(stages, start=1):
        common = {**run_options(args, export_name(args, config, PRESETS)), "verbose": 2}
        if index < len(stages):  # a PSNR stage: its generator is the GAN stage's start
            common.update(eval_data=None, export_dir=None)
        else:
            common["export_dir"] = args.export_dir or directory / "saved_models"
        if label:
            print(f"{label} ({config.steps} steps)", flush=True)
        gan_run.run_gan(config, directory, resume=args.resume, **common)
    return 0
