"""Bit-exact seeded runs: TensorFlow's graph optimizer off while a run's step functions are made.

Measured (``benchmarks/seeded_runs.py``): two ESRGAN-DP demo trainers of one seed, fed the same
batches in lockstep, keep bit-identical weights, optimizer slots and counters for 91-92 steps and
then differ in the last bit of generator weights (7.5e-9), in every try: with the default thread
pools, with one inter-op or one intra-op thread, and with numpy batches instead of ``tf.data``;
the GAN amplifies it (``esrgan_dp`` 20.58 dB in ``eusr-study dp_table6``, 19.36 dB alone).
On one restored state, the step's gradients recomputed by a fresh function are identical every
time, while the trainer's own step function, run again, is not: after its first ~90 calls the
same graph executes in a different order. The likely mechanism: grappler (TensorFlow's graph
optimizer; its memory optimizer rewrites an AddN of several gradients into an accumulation in
arrival order) leaves sums whose rounding follows the execution order, and TensorFlow's executor
changes how it schedules cheap kernels once it has timed them. With grappler off
(``disable_meta_optimizer``) the pair stays bit-identical through 110 steps, at 1.7x the step
time on a 2-core CPU (ESRGAN-DP demo 484 -> 820 ms per step). TensorFlow 2's configuration API
switches grappler only as a whole (its memory optimizer has no switch of its own).

:func:`bit_exact_graphs` switches it off for the functions first run inside it (TensorFlow
optimizes a function once, when it first runs in a configuration) and restores the previous
setting afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf

_SWITCH = "disable_meta_optimizer"


def graph_optimizer_off() -> bool:
    """Whether graph functions made now get TensorFlow's graph optimizer switched off."""
    return bool(tf.config.optimizer.get_experimental_options().get(_SWITCH, False))


@contextlib.contextmanager
def bit_exact_graphs(enabled: bool = True) -> Iterator[None]:
    """Inside: graph functions made (first run) with TensorFlow's graph optimizer off, when
    ``enabled``; the process's previous setting is restored on exit."""
    if not enabled:
        yield
        return
    previous = graph_optimizer_off()
    tf.config.optimizer.set_experimental_options({_SWITCH: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({_SWITCH: previous})
