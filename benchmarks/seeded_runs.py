#!/usr/bin/env python
"""Do two seeded trainers of one GAN preset stay bit-identical? (issue 21 item 7)

    python benchmarks/seeded_runs.py esrgan_dp --steps 110                # default graphs
    python benchmarks/seeded_runs.py esrgan_dp --steps 110 --bit-exact    # TensorFlow's graph optimizer off
    python benchmarks/seeded_runs.py srgan_dp --steps 200 --inter-op-threads 1

Builds the preset's demo version twice with the same seed (tiny networks, random VGG19/ResNet-50,
the embedded photographs; no PSNR stage) and trains both in lockstep on the same numpy batches of
the sampler, one ``fit`` step each; after every step it compares every variable of both trainers
(G and D weights, BatchNorm statistics, both optimizers' slots, counters) and prints the first
step at which any differs, which variables, and the largest weight difference every 25 steps.
``--bit-exact`` runs both inside :func:`~eusr_perceptual.training.determinism.bit_exact_graphs`,
as ``--bit-exact`` runs of ``eusr-train-gan`` and demo studies do. Measured on the 2-core CPU
(see that module and docs/gan.md): default graphs first differ at step 91-92 (7.5e-9), with one
inter-op or one intra-op thread too; ``--bit-exact`` identical through 110 steps, 1.7x the
step time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from eusr_perceptual.configs.demo import demo_version
from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.data.samplers import make_sampler
from eusr_perceptual.pipelines.gan_run import build_gan_trainer
from eusr_perceptual.training.determinism import bit_exact_graphs


def state(trainer) -> list[tuple[str, np.ndarray]]:
    """Every variable of a trainer in a fixed order, with the first trainer's names."""
    groups = [trainer.generator.weights, trainer.discriminator.weights, trainer.optimizer.variables,
              trainer.d_optimizer.variables, trainer.variables]
    return [(variable.path, variable.numpy()) for group in groups for variable in group]


def compare(preset: str, steps: int) -> int | None:
    config = demo_version(PRESETS[preset]).replace(psnr_stage="", init_from="")
    sampler = make_sampler(config.data, (config.scale,), config.patch_size, config.batch_size, config.seed)
    trainers = [build_gan_trainer(config) for _ in range(2)]
    first = None
    started = time.time()
    for step in range(steps):
        batch = tf.data.Dataset.from_tensors(sampler.batch(step))
        for trainer in trainers:
            trainer.fit(batch, epochs=1, verbose=0)
        (a, b) = (state(trainer) for trainer in trainers)
        differing = [name for (name, x), (_, y) in zip(a, b) if np.any(x != y)]
        largest = max((float(np.max(np.abs(x - y))) for (_, x), (_, y) in zip(a, b)), default=0.0)
        if differing and first is None:
            first = step
            print(f"step {step}: {len(differing)} variables differ (largest {largest:.3g}), e.g. {differing[:4]}")
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step}: largest difference {largest:.3g}, {(time.time() - started) / (step + 1):.2f} s per step pair")
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(name for name, c in PRESETS.items() if c.discriminator))
    parser.add_argument("--steps", type=int, default=110)
    parser.add_argument("--bit-exact", action="store_true", help="TensorFlow's graph optimizer off (eusr-train-gan --bit-exact)")
    parser.add_argument("--inter-op-threads", type=int, default=0)
    parser.add_argument("--intra-op-threads", type=int, default=0)
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    with bit_exact_graphs(args.bit_exact):
        first = compare(args.preset, args.steps)
    print(f"{args.preset}, {args.steps} steps, bit_exact={args.bit_exact}: "
          + ("identical throughout" if first is None else f"first difference at step {first}"))


if __name__ == "__main__":
    main()
