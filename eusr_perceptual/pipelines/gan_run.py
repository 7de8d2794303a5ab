"""A whole adversarial run from a :class:`~eusr_perceptual.configs.gan.GANConfig`: networks from
their specs, the trainer from its parts, data, checkpoints and exact resume, the float32
generator, the SavedModel export and the final table against bicubic.

Every GAN of the project (4PP-EUSR fine-tuning, SRGAN, ESRGAN, DP, AFM, Pan) runs through
:func:`run_gan`; the entry points only parse flags.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.data.identity import data_identity
from eusr_perceptual.data.samplers import make_sampler
from eusr_perceptual.errors import PathUsageError, ValueUsageError
from eusr_perceptual.loading import check_model_path, load_generator, start_discriminator_from
from eusr_perceptual.losses.adversarial import get_objective
from eusr_perceptual.models.precision import float32_copy
from eusr_perceptual.models.registry import build_network
from eusr_perceptual.pipelines.final_table import final_table
from eusr_perceptual.resize import round_to_uint8_tf
from eusr_perceptual.serving.savedmodel import export_savedmodel
from eusr_perceptual.training.callbacks import TensorBoardImages
from eusr_perceptual.training.determinism import bit_exact_graphs
from eusr_perceptual.training.gan import GANTrainer, Schedule
from eusr_perceptual.training.producers import MultiPass, make_producer
from eusr_perceptual.training.runs import RunOptions, fit_run
from eusr_perceptual.training.strategy import is_chief
from eusr_perceptual.training.xla import enable_xla
from nima.model import load_predictor

log = logging.getLogger(__name__)

#: How each input of a run is made, for the message when it is missing.
MAKERS = {
    "init_from": ("pretrained generator", "eusr-pretrain --preset paper --data div2k:<root> --run-dir <dir>"
                                          " (writes <dir>/generator.keras), or a PSNR-stage run of train_gan.py"),
    "aesthetic": ("aesthetic (AVA) predictor", "nima-train --dataset ava --data-dir <AVA>"
                                               " (writes runs/nima_ava/export/nima_ava.keras)"),
    "subjective": ("subjective (TID2013) predictor", "nima-train --dataset tid2013 --data-dir <TID2013>"
                                                     " (writes runs/nima_tid2013/export/nima_tid2013.keras)"),
}


class MissingInputError(PathUsageError):
    """A model file a run needs does not exist (the message names the command that makes it)."""


def needs_psnr_stage(config: GANConfig) -> bool:
    """Whether ``config`` is the GAN stage of a two-stage preset with no generator to start from,
    so its PSNR stage (``config.psnr_stage``) must train first: the papers' GAN stages start
    from a PSNR-oriented model (ESRGAN section 3.4; the DP paper's "settings follow ESRGAN")."""
    return bool(config.psnr_stage) and not config.init_from


def after_psnr_stage(config: GANConfig, psnr_run_dir: Path) -> GANConfig:
    """``config`` starting from the generator its PSNR stage wrote in ``psnr_run_dir``."""
    return config.replace(init_from=str(Path(psnr_run_dir) / "generator.keras"))


def check_inputs(config: GANConfig) -> None:
    """Fails before any data is loaded, naming the command that makes each missing input, and
    refusing a path that cannot hold a model (an image, a folder without one) in one line; warns
    when a two-stage preset's GAN stage starts from random weights."""
    if needs_psnr_stage(config):
        log.warning("the preset's paper starts this GAN stage from its PSNR stage %s; without --init-from it "
                    "starts from random weights", config.psnr_stage)

    if config.init_d_from and not Path(config.init_d_from).is_file():
        raise MissingInputError(f"the discriminator of --init-d-from is not found at {config.init_d_from}")
    needed = {"init_from": bool(config.init_from), **{name: True for name in config.predictors}}
    for name, is_needed in needed.items():
        path = getattr(config, name)
        if is_needed and (not path or not Path(path).exists()):
            what, maker = MAKERS[name]
            where = f"not found at {path}" if path else f"not given (--{name.replace('_', '-')})"
            raise MissingInputError(f"the {what} is {where}. Make it with:\n  {maker}")
        if is_needed:
            check_model_path(path, f"--{name.replace('_', '-')}", **({} if name == "init_from" else {"run_file": None}))


def load_trainable_generator(path: str) -> keras.Model:
    """A Keras generator from a ``.keras`` file or a run folder (SavedModels cannot train), made
    trainable: a run with a generator EMA saves the average, a frozen copy (``trainable`` false
    in the file), and a GAN stage started from it would otherwise keep its generator fixed."""
    generator = load_generator(path)
    if not isinstance(generator, keras.Model):
        raise ValueUsageError(f"{path} is a SavedModel; training needs the Keras generator (<run>/generator.keras)")
    generator.trainable = True
    return generator


def gan_optimizer(config: GANConfig, learning_rate: float) -> keras.optimizers.Adam:
    """Adam with the config's betas/epsilon; the rate multiplied by ``lr_gamma`` at each milestone,
    or cosine-annealed from ``learning_rate`` to ``lr_min`` over each ``lr_restart_period`` steps
    and restarted (BasicSR's CosineAnnealingRestartLR with equal periods and restart weights 1:
    ``lr_min + (rate - lr_min) (1 + cos(pi t / period)) / 2``, t counted from the last restart)."""
    rate = learning_rate
    if config.lr_restart_period:
        rate = keras.optimizers.schedules.CosineDecayRestarts(
            learning_rate, config.lr_restart_period, t_mul=1.0, m_mul=1.0, alpha=config.lr_min / learning_rate)
    elif config.lr_milestones:
        values = [learning_rate * config.lr_gamma ** i for i in range(len(config.lr_milestones) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(list(config.lr_milestones), values)
    return keras.optimizers.Adam(rate, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2,
                                 epsilon=config.adam_epsilon)


def build_generator(config: GANConfig) -> keras.Model:
    if config.init_from:
        generator = load_trainable_generator(config.init_from)
    else:
        generator = build_network(config.generator, "generator", scale=config.scale)
        generator.build()
    if config.scale not in generator.scales and not (config.producer == "multipass"):
        raise ValueUsageError(f"the generator has paths {generator.scales}, the preset trains x{config.scale}")
    if config.producer == "multipass" and {2, 4, 8} - set(generator.scales):
        raise ValueUsageError(f"multi-pass upscaling needs x2, x4 and x8 paths; the generator has {generator.scales}")
    return generator


def build_discriminator(config: GANConfig) -> keras.Model | None:
    if config.discriminator is None:
        return None
    discriminator = build_network(config.discriminator, "discriminator", input_size=config.hr_size)
    if config.init_d_from:
        start_discriminator_from(discriminator, config.init_d_from)
    return discriminator


def build_gan_trainer(config: GANConfig, *, generator: keras.Model | None = None,
                      resources: Mapping[str, Any] | None = None) -> GANTrainer:
    """The compiled trainer of ``config`` (call inside the strategy scope).

    Weight initialisation is seeded by ``config.seed``. ``generator`` and ``resources``
    (e.g. ``{"aesthetic": model}``) replace what the config would load.
    """
    keras.utils.set_random_seed(config.seed)
    generator = generator if generator is not None else build_generator(config)
    if not generator.trainable_weights:
        raise ValueUsageError(f"the generator{' of ' + config.init_from if config.init_from else ''} has no "
                              "trainable weights: the run would not change it")
    discriminator = build_discriminator(config)
    objective = get_objective(config.objective, **config.objective_options) if discriminator is not None else None
    shared = dict(resources or {})
    for name, path in config.predictors.items():
        if name not in shared:
            shared[name] = load_predictor(path)
    trainer = GANTrainer(
        generator, discriminator, make_producer(config.producer, config.scale, config.downscale), objective,
        config.terms, Schedule(config.order, config.d_steps, config.d_warmup, config.ema_decay or None,
                               config.d_batches),
        resources=shared, backbone_weights=None if config.backbone_weights == "none" else config.backbone_weights,
    )
    trainer.compile(g_optimizer=gan_optimizer(config, config.g_learning_rate),
                    d_optimizer=gan_optimizer(config, config.d_learning_rate) if discriminator is not None else None,
                    jit_compile=config.jit_compile)
    return trainer


def term_values(trainer: GANTrainer, batch) -> dict[str, float]:
    """Every logged value of ``trainer`` on one batch, without an update (the step-0 log line)."""
    values = trainer.test_step(batch)
    for tracker in trainer.metrics:
        tracker.reset_state()
    return {name: float(value) for name, value in values.items()}


def render_samples(trainer: GANTrainer, lr: np.ndarray, hr: np.ndarray) -> dict[str, np.ndarray]:
    """TensorBoard strips of fixed patches: LR (nearest) | each SR image | HR, uint8."""
    sr = trainer(tf.constant(lr, tf.float32))
    scale = hr.shape[1] // lr.shape[1]
    panels = [np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)]
    if isinstance(trainer.producer, MultiPass):
        panels += list(trainer.producer.split(sr).values())
        tag = "lr_x4_x2x2_x8down_hr"
    else:
        panels.append(sr)
        tag = "lr_sr_hr"
    panels.append(hr)
    strips = np.concatenate([round_to_uint8_tf(tf.cast(p, tf.float32)).numpy() for p in panels], axis=2)
    return {tag: strips}


@dataclass
class GANRunResult:
    generator: keras.Model
    run_dir: Path
    exported: Path | None
    table: str | None


def run_gan(config: GANConfig, run_dir: Path, *, resume: bool = False, strategy: tf.distribute.Strategy | None = None,
            export_dir: Path | None = Path("saved_models"), export_name: str = "generator",
            eval_data: str | None = "skimage", verbose: int | str = "auto",
            resources: Mapping[str, Any] | None = None) -> GANRunResult:
    """Trains ``config`` in ``run_dir`` (resuming it when asked), saves, exports and evaluates."""
    run_dir = Path(run_dir)
    check_inputs(config)
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    sampler = make_sampler(config.data, (config.scale,), config.patch_size, config.batch_size, config.seed,
                           downscaled_copies=2 if config.downscaled_copies else 0, lr_convention=config.lr_convention)
    log.info("%d training images (%s%s); run folder %s", len(sampler.images), config.data,
             " + 2x-downscaled copies" if config.downscaled_copies else "", run_dir)

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        trainer = build_gan_trainer(config, resources=resources)
    log.info("%s", trainer.describe())
    log.info("generator %s parameters%s", f"{trainer.generator.count_params():,}",
             f", discriminator {trainer.discriminator.count_params():,}" if trainer.discriminator is not None else "")
    samples = sampler.batch(0)
    enable_xla(trainer, samples, requested=config.jit_compile)
    log.info("step 0: %s", ", ".join(f"{k} {v:.5g}" for k, v in term_values(trainer, samples).items()))

    options = RunOptions(run_dir, config.steps, config.checkpoint_every, resume=resume)
    images_callback = TensorBoardImages(Path(run_dir) / "tensorboard", lambda: render_samples(trainer, *samples),
                                        options.checkpoint_every)
    started = time.time()
    if config.bit_exact:
        log.info("bit-exact: TensorFlow's graph optimizer is off while this run's steps are made")
    with bit_exact_graphs(config.bit_exact):
        fit_run(trainer, sampler.dataset, options, config=config, callbacks=[images_callback],
                checkpoint_objects=trainer.checkpoint_objects(),
                data_identity=data_identity(config.data, (config.scale,)), verbose=verbose)
    log.info("training took %.1f s", time.time() - started)

    generator = float32_copy(trainer.inference_generator)
    if not is_chief(strategy):  # the chief alone writes the run folder and the exports
        return GANRunResult(generator, Path(run_dir), None, None)
    generator.save(Path(run_dir) / "generator.keras")
    exported = None
    if export_dir is not None:
        exported = export_savedmodel(generator, export_dir, export_name)
    print(f"\nGenerator saved to {Path(run_dir) / 'generator.keras'}" + (f" and exported to {exported}" if exported else ""))
    table = None
    if eval_data:
        baseline = load_trainable_generator(config.init_from) if config.producer == "multipass" else None
        table = final_table(config, generator, eval_data, Path(run_dir), baseline=baseline)
        print("\n" + table)
    return GANRunResult(generator, Path(run_dir), exported, table)
