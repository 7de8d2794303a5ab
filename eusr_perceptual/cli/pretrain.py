"""Pre-trains the multi-scale EUSR model with L1 loss (4PP-EUSR section 4.1).

    python scripts/pretrain_eusr.py                       # demo preset on the embedded photographs
    python scripts/pretrain_eusr.py --preset paper --data div2k:/data/DIV2K --mixed-precision

Writes <run-dir>/checkpoints, generator.keras (the trained float32 EUSR), config.json, log.csv,
tensorboard/, and evaluation.{md,csv}: PSNR/SSIM against bicubic on held-out images.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import sys
import time
from pathlib import Path


SCRIPT_DEFAULT_RUNS = Path("runs")


def parse_args(argv=None) -> argparse.Namespace:
    from eusr_perceptual.training.pretrain import PRETRAIN_PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRETRAIN_PRESETS), default="demo",
                        help="named settings: 'paper' = section 4.1, 'demo' = small model on the embedded photographs")
    parser.add_argument("--data", help="skimage | div2k:<root>[:train|valid|train+valid] | tfds:div2k | <image folder>")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/pretrain_<preset>_<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    for name, kind in [("steps", int), ("batch-size", int), ("patch-size", int), ("learning-rate", float),
                       ("halve-every", int), ("checkpoint-every", int), ("seed", int), ("channels", int),
                       ("shared-blocks", int), ("upscale-blocks", int)]:
        parser.add_argument(f"--{name}", type=kind, help="overrides the preset")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (GPU)")
    parser.add_argument("--jit", action="store_true", help="compile the steps with XLA")
    parser.add_argument("--multi-gpu", action="store_true", help="tf.distribute.MirroredStrategy over all GPUs")
    parser.add_argument("--eval-data", default="skimage:held_out", help="held-out images for the final table")
    parser.add_argument("--eval-border", type=int, default=4, help="pixels cropped from each border for PSNR/SSIM")
    parser.add_argument("--no-eval", action="store_true", help="skip the final PSNR/SSIM table")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace):
    from eusr_perceptual.training.pretrain import PRETRAIN_PRESETS

    changes = {
        field: getattr(args, field)
        for field in ("data", "steps", "batch_size", "patch_size", "learning_rate", "halve_every", "checkpoint_every",
                      "seed", "channels", "shared_blocks", "upscale_blocks")
        if getattr(args, field) is not None
    }
    if args.mixed_precision:
        changes["mixed_precision"] = True
    if args.jit:
        changes["jit_compile"] = True
    return PRETRAIN_PRESETS[args.preset].replace(**changes)


def sample_renderer(generator, image, scales, lr_side: int = 48):
    """bicubic | SR | HR strips of one held-out crop, per scale, for TensorBoard."""
    from eusr_perceptual.data.patches import make_lr
    from eusr_perceptual.inference import upscale_image
    from eusr_perceptual.resize import imresize
    from eusr_perceptual.training.callbacks import side_by_side

    def render():
        strips = {}
        for scale in scales:
            hr = image.hr[: lr_side * scale, : lr_side * scale]
            lr = make_lr(hr, scale)
            strips[f"bicubic_sr_hr/x{scale}"] = side_by_side(imresize(lr, scale), upscale_image(generator, lr, f"x{scale}"), hr)
        return strips

    return render


def float32_copy(generator):
    """The generator rebuilt under the float32 policy (for saving and serving)."""
    import keras

    from eusr_perceptual.models.eusr import EUSR

    if generator.dtype_policy.name == "float32":
        return generator
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        copy = EUSR(generator.config)
        copy.build()
        copy.set_weights(generator.get_weights())
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    return copy


def write_evaluation(run_dir: Path, rows) -> None:
    from eusr_perceptual.training.report import format_table

    (run_dir / "evaluation.md").write_text(format_table(rows, markdown=True) + "\n")
    with open(run_dir / "evaluation.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([f.name for f in dataclasses.fields(rows[0])] + ["psnr_gain"])
        for row in rows:
            writer.writerow([*dataclasses.astuple(row), row.psnr_gain])


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import keras
    import tensorflow as tf

    from eusr_perceptual.data.patches import PatchSampler
    from eusr_perceptual.data.sources import load_training_images
    from eusr_perceptual.models.eusr import EUSR
    from eusr_perceptual.training.callbacks import TensorBoardImages
    from eusr_perceptual.training.pretrain import MultiScalePretrainer, make_optimizer
    from eusr_perceptual.training.report import compare_with_bicubic, format_table
    from eusr_perceptual.training.runs import RunOptions, fit_run

    config = config_from_args(args)
    if args.resume and args.run_dir is None:
        sys.exit("--resume needs --run-dir (the folder of the run to continue)")
    run_dir = args.run_dir or SCRIPT_DEFAULT_RUNS / f"pretrain_{args.preset}_{time.strftime('%Y%m%d-%H%M%S')}"
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")

    scales = config.model.scales
    images = load_training_images(config.data, scales=scales, min_side=config.patch_size * max(scales))
    sampler = PatchSampler(images, scales, config.patch_size, config.batch_size, config.seed,
                           scale_weights=config.scale_weights)
    held_out = [] if args.no_eval else load_training_images(args.eval_data, scales=())
    logging.info("%d training images, %d held out; run folder %s", len(sampler.images), len(held_out), run_dir)

    strategy = tf.distribute.MirroredStrategy() if args.multi_gpu else tf.distribute.get_strategy()
    with strategy.scope():
        trainer = MultiScalePretrainer(EUSR(config.model), sampler.scale_for_step)
        trainer.compile(optimizer=make_optimizer(config), jit_compile=config.jit_compile)

    options = RunOptions(run_dir, config.steps, config.checkpoint_every, resume=args.resume)
    callbacks = []
    if held_out:
        callbacks.append(TensorBoardImages(run_dir / "tensorboard", sample_renderer(trainer.generator, held_out[0], scales),
                                           options.checkpoint_every))
    started = time.time()
    fit_run(trainer, sampler.dataset, options, config=config, callbacks=callbacks, verbose=2 if args.quiet else "auto")
    logging.info("training took %.1f s", time.time() - started)

    generator = float32_copy(trainer.generator)
    generator.save(run_dir / "generator.keras")
    print(f"\nTrained EUSR ({generator.count_params():,} parameters) saved to {run_dir / 'generator.keras'}")
    if held_out:
        rows = compare_with_bicubic(generator, held_out, scales, border=args.eval_border)
        write_evaluation(run_dir, rows)
        names = ", ".join(image.name for image in held_out)
        print(f"\nHeld-out images ({names}), Y channel, {args.eval_border}-px border cropped:\n")
        print(format_table(rows))
        print(f"\nTables written to {run_dir / 'evaluation.md'} and evaluation.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
