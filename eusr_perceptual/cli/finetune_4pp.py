"""Fine-tunes a pretrained EUSR into 4PP-EUSR (Choi et al. 2018, sections 3.2-3.4, 4.3, 5).

    # The paper's run (section 4.3), from the outputs of the two earlier phases:
    python scripts/finetune_4pp.py --generator runs/pretrain_paper/generator.keras \\
        --aesthetic runs/nima_ava/export/nima_ava.keras \\
        --subjective runs/nima_tid2013/export/nima_tid2013.keras \\
        --data div2k:/data/DIV2K:train+valid --run-dir runs/4pp_eusr --mixed-precision

    python scripts/finetune_4pp.py --run-dir runs/4pp_eusr --resume     # continue after a stop
    python scripts/finetune_4pp.py --preset alpha_r_0.3 ...               # eq. 9 / Table 5
    python scripts/finetune_4pp.py --without-lg ...                       # a Table 4 ablation
    python scripts/finetune_4pp.py --demo    # everything on the embedded photographs, tiny models

Writes <run-dir>/checkpoints, config.json (all settings and inputs: --resume needs nothing
else), log.csv, tensorboard/ (every loss term, D(real), D(fake), and images of the three
paths), generator.keras (float32), the SavedModel export (saved_models/<name>/<version>) and
evaluation.md: PSNR/SSIM/NIQE of the x4, x2-x2 and x8-down paths (paper Table 3) of the
pretrained and the fine-tuned model on held-out images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path


from eusr_perceptual.cli.pretrain import float32_copy
from eusr_perceptual.cli.pretrain import main as pretrain_main
from eusr_perceptual.configs.finetune import CHOICES, PRESETS, FinetuneConfig

log = logging.getLogger("finetune_4pp")
FLAG_TYPES = {"int": int, "float": float, "str": str}
#: How each input is made, for the error raised when it is missing.
MAKERS = {
    "generator": ("pretrained EUSR", "python scripts/pretrain_eusr.py --preset paper --data div2k:<root> --run-dir <dir>"
                                     " (writes <dir>/generator.keras)"),
    "aesthetic": ("aesthetic (AVA) predictor", "python scripts/train_nima.py --dataset ava --data-dir <AVA>"
                                               " (writes runs/nima_ava/export/nima_ava.keras)"),
    "subjective": ("subjective (TID2013) predictor", "python scripts/train_nima.py --dataset tid2013 --data-dir <TID2013>"
                                                     " (writes runs/nima_tid2013/export/nima_tid2013.keras)"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true",
                        help="pretrain a tiny EUSR, train both predictors and fine-tune, on the embedded photographs")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="named settings (default: paper)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/finetune_<preset>_<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir with its config.json")
    parser.add_argument("--multi-gpu", action="store_true", help="tf.distribute.MirroredStrategy over all GPUs")
    parser.add_argument("--export-dir", type=Path,
                        help="SavedModel base folder (default: saved_models; demo: <run-dir>/saved_models)")
    parser.add_argument("--export-name", default="4pp_eusr", help="SavedModel name (TF Serving --model_name)")
    parser.add_argument("--eval-data", default="skimage",
                        help="held-out images for the final table: skimage (embedded photographs) or a benchmark folder")
    parser.add_argument("--no-eval", action="store_true", help="skip the final table")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    for field in dataclasses.fields(FinetuneConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            if field.default:
                parser.add_argument("--no-" + flag[2:], action="store_const", const=False, dest=field.name)
            else:
                parser.add_argument(flag, action="store_const", const=True, dest=field.name)
        else:
            parser.add_argument(flag, type=FLAG_TYPES[field.type], choices=CHOICES.get(field.name), dest=field.name,
                                help=f"overrides the preset (paper: {getattr(PRESETS['paper'], field.name)})")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneConfig) if getattr(args, f.name) is not None}


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The preset with the flags' overrides; on --resume, the run's config.json instead."""
    saved = args.run_dir / "config.json" if args.resume and args.run_dir else None
    if saved is not None and saved.is_file():
        config = FinetuneConfig.from_dict(json.loads(saved.read_text())["config"])
        changes = overrides(args)
        if set(changes) - {"steps"}:
            sys.exit(f"--resume continues {saved} as it is; only --steps may change (got {sorted(changes)})")
        return config.replace(**changes)
    return PRESETS[args.preset].replace(**overrides(args))


def check_inputs(config: FinetuneConfig) -> None:
    """Fails early, naming the script that makes each missing input."""
    needed = {"generator": True, "aesthetic": config.needs_aesthetic, "subjective": config.needs_subjective}
    for name, is_needed in needed.items():
        path = getattr(config, name)
        if is_needed and (not path or not Path(path).exists()):
            what, maker = MAKERS[name]
            where = f"not found at {path}" if path else f"not given (--{name})"
            sys.exit(f"error: the {what} is {where}. Make it with:\n  {maker}")


def load_trainable_generator(path: str):
    import keras

    from eusr_perceptual.models.loading import load_generator

    generator = load_generator(path)
    if not isinstance(generator, keras.Model):
        sys.exit(f"error: {path} is a SavedModel; fine-tuning needs the Keras generator (<pretrain run>/generator.keras)")
    missing = {2, 4, 8} - set(generator.scales)
    if missing:
        sys.exit(f"error: {path} has paths {generator.scales}; multi-pass upscaling needs x2, x4 and x8")
    return generator


def evaluation_table(config: FinetuneConfig, generator, eval_data: str, run_dir: Path) -> str:
    """Table 3 for the pretrained and the fine-tuned model, with bicubic for reference."""
    from eusr_perceptual.evaluation.benchmarks import discover_benchmark
    from eusr_perceptual.evaluation.runner import Method, evaluate_dataset, summarize
    from eusr_perceptual.evaluation.tables import format_table

    pretrained = load_trainable_generator(config.generator)
    routes = {"x4": "x4", "x2x2": "x2-x2", "x8down": "x8-down"}
    methods = [Method("bicubic", "x4")]
    for label, model in (("EUSR", pretrained), ("4PP-EUSR", generator)):
        methods += [Method(f"{label} {name}", route, model) for route, name in routes.items()]
    benchmark = discover_benchmark(eval_data, 4)
    result = evaluate_dataset(benchmark, methods)
    rows = summarize(result)
    title = f"{benchmark.name} x4: paths of the pretrained and the fine-tuned model (Y, 4-px border)"
    lpips_reason, skipped = "not computed here", result.skips.count
    (run_dir / "evaluation.md").write_text(format_table(title, rows, lpips_reason, skipped, markdown=True))
    return format_table(title, rows, lpips_reason, skipped)


def finetune(config: FinetuneConfig, run_dir: Path, *, resume: bool = False, multi_gpu: bool = False,
             export_dir: Path = Path("saved_models"), export_name: str = "4pp_eusr", eval_data: str | None = "skimage",
             verbose: int | str = "auto"):
    """Trains, checkpoints, saves and exports; returns the fine-tuned float32 generator."""
    import keras
    import tensorflow as tf

    from eusr_perceptual.data.patches import PatchSampler
    from eusr_perceptual.data.sources import load_training_images, with_downscaled_copies
    from eusr_perceptual.export import export_savedmodel
    from eusr_perceptual.models.discriminator import build_discriminator
    from eusr_perceptual.training.callbacks import TensorBoardImages
    from eusr_perceptual.training.finetune import FourPassTrainer, render_paths
    from eusr_perceptual.training.runs import RunOptions, fit_run
    from nima.model import load_predictor

    check_inputs(config)
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    hr_size = 4 * config.patch_size
    images = load_training_images(config.data, scales=(4,), min_side=hr_size)
    if config.downscaled_copies:
        images = with_downscaled_copies(images, 2)
    sampler = PatchSampler(images, (4,), config.patch_size, config.batch_size, config.seed)
    log.info("%d training images (%s%s); run folder %s", len(sampler.images), config.data,
             " + 2x-downscaled copies" if config.downscaled_copies else "", run_dir)

    strategy = tf.distribute.MirroredStrategy() if multi_gpu else tf.distribute.get_strategy()
    with strategy.scope():
        discriminator = build_discriminator(hr_size, config.discriminator_head, config.discriminator_channels,
                                            config.discriminator_units)
        trainer = FourPassTrainer(
            load_trainable_generator(config.generator),
            discriminator,
            load_predictor(config.aesthetic) if config.needs_aesthetic else None,
            load_predictor(config.subjective) if config.needs_subjective else None,
            config,
        )
        trainer.compile()
    log.info("EUSR %s parameters, discriminator %s parameters",
             f"{trainer.generator.count_params():,}", f"{discriminator.count_params():,}")

    options = RunOptions(run_dir, config.steps, config.checkpoint_every, resume=resume)
    samples = sampler.batch(0)
    images_callback = TensorBoardImages(run_dir / "tensorboard", lambda: render_paths(trainer, *samples),
                                        options.checkpoint_every)
    started = time.time()
    fit_run(trainer, sampler.dataset, options, config=config, callbacks=[images_callback],
            checkpoint_objects={"d_optimizer": trainer.d_optimizer}, verbose=verbose)
    log.info("training took %.1f s", time.time() - started)

    generator = float32_copy(trainer.generator)
    generator.save(run_dir / "generator.keras")
    exported = export_savedmodel(generator, export_dir, export_name)
    print(f"\n4PP-EUSR saved to {run_dir / 'generator.keras'} and exported to {exported}")
    if eval_data:
        print("\n" + evaluation_table(config, generator, eval_data, run_dir))
    return generator


# -- the demo ------------------------------------------------------------------------------

#: The demo's pretraining: the "demo" preset of scripts/pretrain_eusr.py, shortened to fit the
#: time budget.
DEMO_PRETRAIN = {"steps": 1500, "checkpoint-every": 500}
DEMO_CROP = 128
DEMO_NIMA_CROP = 64


def _distortions():
    """Distortion kinds of the demo score trees: (name, function(image uint8, level 1..4))."""
    import io

    import numpy as np
    from PIL import Image, ImageFilter

    def blur(image, level):
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.7 * level)))

    def noise(image, level):
        rng = np.random.default_rng(level)
        return np.clip(image + rng.normal(0, 7.0 * level, image.shape), 0, 255).astype(np.uint8)

    def jpeg(image, level):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=(50, 25, 12, 5)[level - 1])
        return np.asarray(Image.open(buffer).convert("RGB"))

    def down_up(image, level):
        from eusr_perceptual.resize import imresize

        return imresize(imresize(image, 1 / (1 + level)), output_shape=image.shape[:2])

    return (("blur", blur), ("noise", noise), ("jpeg", jpeg), ("bicubic", down_up))


def make_demo_score_trees(root: Path, seed: int = 0) -> dict[str, Path]:
    """AVA- and TID2013-format folders made from crops of the embedded training photographs.

    Each reference crop gets 4 distortions at 4 levels; the score falls with the level (the
    TID2013 tree: MOS on [0, 9] with std 0.7; the AVA tree: 100 votes around a mean that also
    favours sharpness over noise). Real-format trees, so the real loaders read them.
    """
    import numpy as np
    from PIL import Image

    from eusr_perceptual.data.sources import load_training_images
    from nima.datasets.tid2013 import gaussian_distribution

    rng = np.random.default_rng(seed)
    references = []
    for image in load_training_images("skimage", scales=(), min_side=DEMO_CROP):
        for _ in range(2):
            y, x = (rng.integers(0, side - DEMO_CROP + 1) for side in image.hr.shape[:2])
            references.append(image.hr[y:y + DEMO_CROP, x:x + DEMO_CROP])
    tid, ava = root / "tid2013", root / "ava"
    for folder in (tid / "distorted_images", tid / "reference_images", ava / "images"):
        folder.mkdir(parents=True, exist_ok=True)
    mos_lines, std_lines, ava_lines = [], [], []
    for r, reference in enumerate(references, start=1):
        Image.fromarray(reference).save(tid / "reference_images" / f"I{r:02d}.BMP")
        for d, (kind, distort) in enumerate(_distortions(), start=1):
            for level in range(1, 5):
                distorted = distort(reference, level)
                name = f"i{r:02d}_{d:02d}_{level}.bmp"
                Image.fromarray(distorted).save(tid / "distorted_images" / name)
                mos_lines.append(f"{np.clip(7.6 - 1.6 * level + rng.normal(0, 0.2), 0.3, 8.7):.5f} {name}")
                std_lines.append("0.70000")
                image_id = len(ava_lines) + 1
                Image.fromarray(distorted).save(ava / "images" / f"{image_id}.jpg", quality=95)
                penalty = (0.9 if kind in ("blur", "bicubic") else 0.6) * level
                votes = np.round(100 * gaussian_distribution([np.clip(7.5 - penalty, 1.5, 9.5)], [1.2])[0]).astype(int)
                ava_lines.append(" ".join(map(str, [image_id, image_id, *votes, 0, 0, 0])))
    (tid / "mos_with_names.txt").write_text("\n".join(mos_lines) + "\n")
    (tid / "mos_std.txt").write_text("\n".join(std_lines) + "\n")
    (ava / "AVA.txt").write_text("\n".join(ava_lines) + "\n")
    return {"ava": ava, "tid2013": tid}


def recalibrate_batch_norm(keras_file: Path, image_paths, crop: int, seed: int = 0, count: int = 128) -> Path:
    """Sets a predictor's BatchNormalization moving statistics to those of training crops.

    A MobileNetV2 trained from scratch for a few dozen steps keeps moving statistics near
    their initial values (momentum 0.999), so in inference mode its features vanish and its
    score is constant: no gradient for the fine-tuning. One forward pass in training mode with
    momentum 0 over ``count`` random crops fixes that ("precise BN"). Writes
    ``<name>_recalibrated.keras`` beside ``keras_file`` and returns it.
    """
    import keras
    import numpy as np

    from eusr_perceptual.data.images import load_rgb8
    from nima.model import backbone_of

    rng = np.random.default_rng(seed)
    crops = []
    for index in rng.permutation(len(image_paths))[:count]:
        image = load_rgb8(image_paths[index])
        y, x = (rng.integers(0, side - crop + 1) for side in image.shape[:2])
        crops.append(image[y:y + crop, x:x + crop])
    model = keras.saving.load_model(keras_file, compile=False)
    model.trainable = True
    layers = [layer for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(np.stack(crops).astype(np.float32), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    target = keras_file.with_name(f"{keras_file.stem}_recalibrated.keras")
    model.save(target)
    return target


def train_demo_predictors(run_dir: Path, seed: int = 0) -> dict[str, str]:
    """Both NIMA predictors (MobileNetV2 from scratch, a few epochs) on the demo trees."""
    from nima.config import PRESETS as NIMA_PRESETS
    from nima.datasets import load_dataset
    from nima.train import train_nima

    trees = make_demo_score_trees(run_dir / "score_data", seed)
    exported = {}
    for role, dataset in (("aesthetic", "ava"), ("subjective", "tid2013")):
        config = NIMA_PRESETS[dataset].replace(
            weights="none", crop_size=DEMO_NIMA_CROP, phase1_epochs=1, phase2_epochs=3, phase1_batch_size=32,
            phase2_batch_size=32, phase2_learning_rate=1e-3, validation_size=48, validation_references=3, seed=seed,
        )
        data = load_dataset(config, trees[dataset])
        result = train_nima(config, data, run_dir / f"nima_{dataset}", tensorboard=False, verbose=2)
        log.info("%s predictor: validation %s", dataset, result.metrics.as_dict())
        exported[role] = str(recalibrate_batch_norm(result.exported.keras_file, data.train.paths, DEMO_NIMA_CROP, seed))
    return exported


def run_demo(args: argparse.Namespace) -> int:
    """Pretraining, both predictors and the fine-tuning, chained on the embedded photographs."""
    run_dir = args.run_dir or Path("runs") / f"finetune_demo_{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.time()
    print(f"[1/3] pre-training a small EUSR ({DEMO_PRETRAIN['steps']} steps)", flush=True)
    pretrain_dir = run_dir / "pretrain"
    flags = [item for name, value in DEMO_PRETRAIN.items() for item in (f"--{name}", str(value))]
    pretrain_main(["--preset", "demo", "--run-dir", str(pretrain_dir), *flags, "--quiet",
                                        "--no-eval"])
    print(f"[2/3] training the aesthetic and subjective predictors ({time.time() - started:.0f} s so far)", flush=True)
    predictors = train_demo_predictors(run_dir)
    print(f"[3/3] 4PP-EUSR fine-tuning ({time.time() - started:.0f} s so far)", flush=True)
    config = PRESETS["demo"].replace(generator=str(pretrain_dir / "generator.keras"), **predictors, **overrides(args))
    finetune(config, run_dir / "finetune", export_dir=args.export_dir or run_dir / "saved_models",
             export_name=args.export_name, eval_data=None if args.no_eval else args.eval_data, verbose=2)
    print(f"demo finished in {time.time() - started:.0f} s; everything is in {run_dir}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.demo:
        return run_demo(args)
    if args.resume and args.run_dir is None:
        sys.exit("--resume needs --run-dir (the folder of the run to continue)")
    config = config_from_args(args)
    run_dir = args.run_dir or Path("runs") / f"finetune_{args.preset}_{time.strftime('%Y%m%d-%H%M%S')}"
    finetune(config, run_dir, resume=args.resume, multi_gpu=args.multi_gpu,
             export_dir=args.export_dir or Path("saved_models"), export_name=args.export_name,
             eval_data=None if args.no_eval else args.eval_data, verbose=2 if args.quiet else "auto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
