"""Trainers, their run loop and what they need (no TensorFlow import here, so that the
command-line tools can list their choices quickly)."""

STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")
"""The ``--strategy`` names; :func:`eusr_perceptual.training.strategy.make_strategy` builds them."""
