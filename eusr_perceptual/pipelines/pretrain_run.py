"""A whole EUSR pre-training run (4PP-EUSR section 4.1): data, the per-scale trainer, checkpoints
and exact resume, the float32 generator and the final table against bicubic per scale."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import tensorflow as tf

from eusr_perceptual.configs.pretrain import PretrainConfig
from eusr_perceptual.data.identity import data_identity
from eusr_perceptual.data.samplers import load_training_images, make_sampler
from eusr_perceptual.evaluation.runner import Method
from eusr_perceptual.inference import upscale_image
from eusr_perceptual.models.eusr import EUSR
from eusr_perceptual.models.precision import float32_copy
from eusr_perceptual.pipelines.final_table import scale_sections
from eusr_perceptual.resize import imresize, make_lr
from eusr_perceptual.training.callbacks import TensorBoardImages, side_by_side
from eusr_perceptual.training.pretrain import MultiScalePretrainer, pretrain_optimizer
from eusr_perceptual.training.runs import RunOptions, fit_run
from eusr_perceptual.training.strategy import is_chief
from eusr_perceptual.training.xla import enable_xla

log = logging.getLogger(__name__)


def sample_renderer(generator, image, scales, lr_side: int = 48):
    """bicubic | SR | HR strips of one held-out crop, per scale, for TensorBoard."""
    def render():
        strips = {}
        for scale in scales:
            hr = image.hr[: lr_side * scale, : lr_side * scale]
            lr = make_lr(hr, scale)
            strips[f"bicubic_sr_hr/x{scale}"] = side_by_side(imresize(lr, scale), upscale_image(generator, lr, f"x{scale}"), hr)
        return strips

    return render


def build_pretrainer(config: PretrainConfig, scale_for_step):
    """The compiled :class:`MultiScalePretrainer` of ``config``, weights seeded by ``config.seed``
    (call inside the strategy scope)."""
    keras.utils.set_random_seed(config.seed)
    trainer = MultiScalePretrainer(EUSR(config.model), scale_for_step)
    trainer.compile(optimizer=pretrain_optimizer(config), jit_compile=config.jit_compile)
    return trainer


def run_pretraining(config: PretrainConfig, run_dir: Path, *, resume: bool = False,
                    strategy: tf.distribute.Strategy | None = None, eval_data: str | None = "skimage",
                    verbose: int | str = "auto") -> keras.Model:
    """Trains, checkpoints, saves ``generator.keras`` and prints the table; returns the generator."""
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    scales = config.model.scales
    sampler = make_sampler(config.data, scales, config.patch_size, config.batch_size, config.seed,
                           scale_weights=config.scale_weights, lr_convention=config.lr_convention)
    held_out = load_training_images("skimage:held_out", scales=()) if eval_data else []
    log.info("%d training images; run folder %s", len(sampler.images), run_dir)

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        trainer = build_pretrainer(config, sampler.scale_for_step)
    first = sampler.scale_for_step(0)  # the paths share every op kind: one stands for all
    enable_xla(trainer, sampler.batch(0), requested=config.jit_compile,
               step_function=lambda data: trainer.train_step_at_scale(first, data))
    options = RunOptions(run_dir, config.steps, config.checkpoint_every, resume=resume)
    callbacks = []
    if held_out:
        callbacks.append(TensorBoardImages(Path(run_dir) / "tensorboard",
                                           sample_renderer(trainer.generator, held_out[0], scales),
                                           options.checkpoint_every))
    started = time.time()
    fit_run(trainer, sampler.dataset, options, config=config, callbacks=callbacks,
            data_identity=data_identity(config.data, scales), verbose=verbose)
    log.info("training took %.1f s", time.time() - started)

    generator = float32_copy(trainer.generator)
    if not is_chief(strategy):  # the chief alone writes the run folder
        return generator
    generator.save(Path(run_dir) / "generator.keras")
    print(f"\nTrained EUSR ({generator.count_params():,} parameters) saved to {Path(run_dir) / 'generator.keras'}")
    if eval_data:
        sections = [(s, [Method("bicubic", f"x{s}"), Method("EUSR", f"x{s}", generator)]) for s in scales]
        print("\n" + scale_sections(eval_data, sections, Path(run_dir), "EUSR against bicubic",
                                    lr_convention=config.lr_convention).text)
        print(f"Tables written to {Path(run_dir) / 'evaluation.md'}")
    return generator
