"""Estimated peak memory of a model's forward pass per input pixel, for the request limits.

A fully convolutional network's activations grow with the pixel count, so its peak memory is
about ``bytes_per_pixel * height * width`` (plus the weights, which are loaded once). The
estimate traces the function on float32 ``[1, h, w, 3]`` with static shapes (nothing runs) and
replays its ops in creation order, a valid execution order: each op's outputs are allocated
when it runs and freed after their last consumer; the peak of the live bytes is
:func:`peak_activation_bytes`. :func:`bytes_per_pixel` is the growth of that peak between two
probe sizes, times :data:`RUNTIME_FACTOR`.

The replay runs one op at a time and copies nothing inside a kernel. TensorFlow's CPU
executor runs independent ops side by side, oneDNN reorders convolution inputs and outputs
into blocked layouts, and freed memory is not always returned: the measured growth of a
served request's resident memory is 1.47 to 1.70 times the replayed peak (docs/serving.md,
``benchmarks/serving_memory.py``), hence the factor 2. For EUSR the replayed peak is two
feature maps of the widest layer at the output resolution: ``2 * 4 * channels * s^2`` bytes
per LR pixel at scale ``s`` (8,192 for the paper's 64 channels at x4, 1,024 for 8).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

__all__ = ["PROBE_SIDES", "RUNTIME_FACTOR", "bytes_per_pixel", "peak_activation_bytes"]

#: Measured resident memory over the replayed peak is 1.47-1.70 (docs/serving.md): limits use 2.
RUNTIME_FACTOR = 2.0
#: Square input sides of the two traces whose peaks give the growth per pixel (multiples of
#: 32: every stride of the project's networks divides them).
PROBE_SIDES = (128, 256)
#: Ops that run nested graphs, whose inner tensors a replay of the outer graph would miss.
_NESTED = {"PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase"}


def _tensor_bytes(tensor: tf.Tensor) -> int:
    if tensor.dtype in (tf.resource, tf.variant, tf.string):
        return 0
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(f"cannot estimate memory: {tensor.op.type} output {tensor.name} has unknown shape {shape}")
    return int(np.prod(shape.as_list(), dtype=np.int64)) * tensor.dtype.size


def peak_activation_bytes(function: Callable[[tf.Tensor], object], height: int, width: int) -> int:
    """The largest sum of live tensor bytes when ``function``'s ops run one after the other on
    float32 ``[1, height, width, 3]``.

    Raises:
        ValueError: the graph holds ops that run nested graphs (function calls, control flow)
            or tensors of unknown shape; export with an explicit pixel limit instead.
    """
    graph = tf.function(function, autograph=False).get_concrete_function(tf.TensorSpec([1, height, width, 3], tf.float32)).graph
    operations = graph.get_operations()
    nested = sorted({op.type for op in operations} & _NESTED)
    if nested:
        raise ValueError(f"cannot estimate memory: the model's graph runs nested graphs ({', '.join(nested)})")
    last_use = {}
    for index, op in enumerate(operations):
        for tensor in op.inputs:
            last_use[tensor.ref()] = index
    live = peak = 0
    for index, op in enumerate(operations):
        live += sum(_tensor_bytes(tensor) for tensor in op.outputs)
        peak = max(peak, live)
        unused = [tensor for tensor in op.outputs if tensor.ref() not in last_use]
        done = [ref.deref() for ref in {tensor.ref() for tensor in op.inputs} if last_use[ref] == index]
        live -= sum(_tensor_bytes(tensor) for tensor in unused + done)
    return peak


def bytes_per_pixel(function: Callable[[tf.Tensor], object]) -> int:
    """Estimated peak bytes per input pixel of ``function`` (float32 ``[1, H, W, 3]`` in):
    the growth of :func:`peak_activation_bytes` between the :data:`PROBE_SIDES`, times
    :data:`RUNTIME_FACTOR`, rounded up."""
    small, large = PROBE_SIDES
    growth = peak_activation_bytes(function, large, large) - peak_activation_bytes(function, small, small)
    return int(np.ceil(RUNTIME_FACTOR * growth / (large**2 - small**2)))
