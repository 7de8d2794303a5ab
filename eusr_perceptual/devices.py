"""What the machine offers the compute choices that depend on it."""

from __future__ import annotations

import tensorflow as tf


def xla_by_default() -> bool:
    """Whether XLA pays here when nobody asked: with a GPU. On the 2-core x86 CPU this project is
    developed on, oneDNN's kernels are faster than XLA's (``docs/performance.md``)."""
    return bool(tf.config.list_physical_devices("GPU"))
