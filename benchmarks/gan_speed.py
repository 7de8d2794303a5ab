#!/usr/bin/env python
"""Steps per second of any GAN preset at paper size (on demand, not a test).

Builds the preset's networks at full size (perceptual backbones and NIMA predictors with
random weights: speed does not depend on them), feeds one fixed batch of the preset's size,
times ``--steps`` compiled steps after a warm-up step.

    python benchmarks/gan_speed.py --preset srgan_vgg54 --preset esrgan
    python benchmarks/gan_speed.py --preset 4pp_eusr --mixed-precision      # GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def measure(name: str, steps: int, jit: bool) -> dict:
    import keras
    import tensorflow as tf

    from eusr_perceptual.configs.presets import PRESETS
    from eusr_perceptual.pipelines.gan_run import build_gan_trainer

    config = PRESETS[name].replace(backbone_weights="none", init_from="", aesthetic="", subjective="")
    resources = {}
    if config.predictors:
        from nima.model import build_nima, inference_model

        for predictor in config.predictors:
            resources[predictor] = inference_model(build_nima(weights=None, input_shape=(config.hr_size,) * 2 + (3,),
                                                              name=predictor))
    trainer = build_gan_trainer(config, resources=resources)
    trainer.jit_compile = jit
    lr = tf.random.uniform((config.batch_size, config.patch_size, config.patch_size, 3), 0, 255, seed=1)
    hr = tf.random.uniform((config.batch_size, config.hr_size, config.hr_size, 3), 0, 255, seed=2)
    data = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    started = time.time()
    trainer.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    warm = time.time()
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed = time.time() - warm
    result = {
        "preset": name, "policy": keras.mixed_precision.global_policy().name, "xla": jit,
        "generator_params": trainer.generator.count_params(),
        "discriminator_params": trainer.discriminator.count_params() if trainer.discriminator is not None else 0,
        "batch": config.batch_size, "hr_size": config.hr_size, "first_step_s": round(warm - started, 2),
        "steps_per_s": round(steps / elapsed, 4), "s_per_step": round(elapsed / steps, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    keras.backend.clear_session()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", required=True, help="preset name; repeatable")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    args = parser.parse_args(argv)

    import eusr_perceptual.cli  # noqa: F401  (quiet TensorFlow start)
    import keras

    if args.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    for name in args.preset:
        print(json.dumps(measure(name, args.steps, args.jit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
