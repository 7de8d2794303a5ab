#!/usr/bin/env python
"""Steps per second of EUSR pre-training (run on demand, not a test).

    python benchmarks/pretrain_speed.py                 # paper preset: 64 ch, 32 blocks, 16 x 48x48
    python benchmarks/pretrain_speed.py --preset demo --steps 20

Times the compiled per-scale training steps of :class:`MultiScalePretrainer` on random
patches (the first step of each scale, which traces, is excluded) and prints seconds per
step for each path and the mean over the paper's uniform path choice.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from eusr_perceptual.models.eusr import EUSR
from eusr_perceptual.training.pretrain import PRETRAIN_PRESETS, MultiScalePretrainer, pretrain_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=sorted(PRETRAIN_PRESETS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per scale")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--jit", action="store_true")
    args = parser.parse_args()
    if args.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    config = PRETRAIN_PRESETS[args.preset]
    scales = config.model.scales
    current = {"scale": scales[0]}
    trainer = MultiScalePretrainer(EUSR(config.model), lambda step: current["scale"])
    trainer.compile(optimizer=pretrain_optimizer(config), jit_compile=args.jit)
    trainer.build_for_training()
    train_function = trainer.make_train_function()
    rng = np.random.default_rng(0)
    seconds = {}
    for scale in scales:
        current["scale"] = scale
        p, b = config.patch_size, config.batch_size
        batch = (
            tf.constant(rng.uniform(0, 255, (b, p, p, 3)), tf.float32),
            tf.constant(rng.uniform(0, 255, (b, p * scale, p * scale, 3)), tf.float32),
        )
        dataset = iter(tf.data.Dataset.from_tensors(batch).repeat())
        float(train_function(dataset)["loss"])  # trace and warm up
        started = time.perf_counter()
        for _ in range(args.steps):
            float(train_function(dataset)["loss"])
        seconds[scale] = (time.perf_counter() - started) / args.steps
    for scale, value in seconds.items():
        print(f"x{scale}: {value:.3f} s/step ({1 / value:.3f} steps/s)")
    mean = float(np.mean(list(seconds.values())))
    print(f"uniform path choice: {mean:.3f} s/step, {1 / mean:.3f} steps/s "
          f"({config.steps * mean / 86400:.1f} days for {config.steps:,} steps)")


if __name__ == "__main__":
    main()
