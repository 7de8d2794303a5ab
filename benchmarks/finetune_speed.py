#!/usr/bin/env python
"""Steps per second of 4PP-EUSR fine-tuning in the paper's configuration (on demand, not a test).

Full-size EUSR (6,295,689 parameters), the 5,238,561-parameter discriminator at 192x192, two
MobileNetV2 NIMA predictors (random weights: speed does not depend on them), 2 LR patches of
48x48 per step, the paper's step order (or --simultaneous).

    python benchmarks/finetune_speed.py                     # CPU or the first GPU, float32
    python benchmarks/finetune_speed.py --mixed-precision   # mixed_float16 (GPU)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--simultaneous", action="store_true", help="the authors' one-pass update")
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from eusr_perceptual.configs.finetune import PAPER
    from eusr_perceptual.models.discriminator import build_discriminator
    from eusr_perceptual.models.eusr import EUSR
    from eusr_perceptual.training.finetune import FourPassTrainer
    from nima.model import build_nima, inference_model

    if args.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    config = PAPER.replace(simultaneous_updates=args.simultaneous)
    generator = EUSR()
    generator.build()
    predictors = []
    for name in ("aesthetic", "subjective"):
        predictor = inference_model(build_nima(weights=None, input_shape=(192, 192, 3), name=name))
        predictor.trainable = False
        predictors.append(predictor)
    trainer = FourPassTrainer(generator, build_discriminator(4 * config.patch_size), *predictors, config)
    trainer.compile(jit_compile=args.jit)

    shape = (config.batch_size, config.patch_size, config.patch_size, 3)
    lr = tf.random.uniform(shape, 0, 255, seed=1)
    hr = tf.random.uniform((config.batch_size, 4 * config.patch_size, 4 * config.patch_size, 3), 0, 255, seed=2)
    data = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    started = time.time()
    trainer.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    warm = time.time()
    trainer.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    elapsed = time.time() - warm
    device = tf.config.list_logical_devices("GPU")[0].name if tf.config.list_logical_devices("GPU") else "CPU"
    print(f"device {device}, policy {keras.mixed_precision.global_policy().name}, "
          f"{'simultaneous' if args.simultaneous else 'sequential'} updates")
    print(f"EUSR {generator.count_params():,} / discriminator {trainer.discriminator.count_params():,} / "
          f"predictors {predictors[0].count_params():,} x2 parameters")
    print(f"first step (tracing) {warm - started:.1f} s; {args.steps} steps in {elapsed:.1f} s: "
          f"{args.steps / elapsed:.3f} steps/s ({elapsed / args.steps:.2f} s/step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
