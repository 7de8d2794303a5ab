"""XLA for a trainer's step where it compiles and pays; one log line when it cannot.

:func:`enable_xla` is called after ``compile`` and before ``fit``. When XLA is requested it
checks, without running a step (no weight, optimizer slot, metric or step counter changes),
what would stop Keras from compiling the step with ``jit_compile=True``:

* op determinism (``tf.config.experimental.enable_op_determinism``): Keras silently turns
  ``jit_compile=True`` into ``False`` under it (``keras.src.trainers.trainer.model_supports_jit``);
* a layer declaring ``supports_jit = False``;
* anything XLA cannot lower in the step as Keras builds it (Keras 3 compiles
  ``strategy.run(train_step)`` as one XLA function): an op without an XLA kernel
  (``tf.numpy_function``, string ops, ...), or a ``tf.distribute`` strategy whose replicas
  live on several devices (``MirroredStrategy`` over two CPUs: XLA cannot compile a function
  reading variables on another device).

The last check lowers the step to HLO with ``tf.function(jit_compile=True)
.experimental_get_compiler_ir`` on a sample batch (tracing only, nothing executes). If every
check passes, ``model.jit_compile`` is True; otherwise it is False and one log line says why.
The returned :class:`XlaChoice` goes into the run's config (:meth:`XlaChoice.as_config`).

Where it pays (``requested=None``, :func:`~eusr_perceptual.devices.xla_by_default`): with a GPU. On the 2-core x86
CPU of ``docs/performance.md`` TensorFlow's own kernels (oneDNN) run EUSR's convolutions
faster than XLA's CPU backend, in the pre-training step and in inference (the timings, and the
A/B with ``TF_ENABLE_ONEDNN_OPTS=0`` that shows oneDNN is the difference, are there). Keras' own
``jit_compile="auto"`` also turns XLA off on CPU-only machines, and under ``tf.distribute``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import keras
import tensorflow as tf
# Not in tf.config's public API; Keras reads it from here too.
from tensorflow.python.framework.config import is_op_determinism_enabled

from eusr_perceptual.devices import xla_by_default

log = logging.getLogger(__name__)

#: The reason recorded when XLA was not requested (``--no-jit``).
NOT_REQUESTED = "not requested (no --jit)"
#: The reason recorded when XLA was left to the default on a machine without a GPU.
CPU_DEFAULT = "off by default without a GPU: oneDNN runs the steps faster than XLA on a CPU (docs/performance.md)"


@dataclass(frozen=True)
class XlaChoice:
    """Whether a trainer's steps compile with XLA, and why (for the run config and the log)."""

    requested: bool
    enabled: bool
    reason: str

    def as_config(self) -> dict[str, Any]:
        return {"jit_requested": self.requested, "jit_compile": self.enabled, "jit_reason": self.reason}


def xla_blocker(model: keras.Model, sample_batch, step_function: Callable | None = None) -> str | None:
    """Why XLA cannot compile ``model``'s training step on ``sample_batch``; None if it can.

    Args:
        model: a compiled (and built) Keras model whose step ``fit`` runs.
        sample_batch: one batch as ``fit`` passes it to the step (e.g. ``(lr, hr)``).
        step_function: the per-replica step ``fit`` compiles; ``model.train_step`` by default.
            A trainer that dispatches between several steps passes one of them, e.g.
            ``lambda data: trainer.train_step_at_scale(4, data)`` for
            :class:`~eusr_perceptual.training.pretrain.MultiScalePretrainer` (its paths share
            every op kind, so one path stands for all).

    The step is traced and lowered to HLO (``stage="hlo"``), never run: the model's
    variables keep their values.
    """
    if is_op_determinism_enabled():
        return ("op determinism is enabled (tf.config.experimental.enable_op_determinism), "
                "under which Keras compiles without XLA")
    unsupported = [layer.name for layer in model._flatten_layers() if not getattr(layer, "supports_jit", True)]
    if unsupported:
        return f"layers {unsupported} declare supports_jit=False"
    step = step_function or model.train_step
    strategy = model.distribute_strategy

    # What Keras' TensorFlowTrainer._make_function compiles when jit_compile is True.
    probe = tf.function(lambda data: strategy.run(step, args=(data,)), jit_compile=True)
    try:
        probe.experimental_get_compiler_ir(sample_batch)(stage="hlo")
    except (ValueError, tf.errors.OpError) as error:
        message = str(error).strip().splitlines()[0][:300]
        if strategy.num_replicas_in_sync > 1:
            return (f"{type(strategy).__name__} over {strategy.num_replicas_in_sync} replicas: "
                    f"XLA cannot compile the replicated step here ({message})")
        return f"XLA cannot compile the step ({message})"
    return None


def enable_xla(model: keras.Model, sample_batch, requested: bool | None = None,
               step_function: Callable | None = None) -> XlaChoice:
    """Sets ``model.jit_compile`` to XLA where the training step compiles; returns the choice.

    Call after ``compile`` (which builds the optimizer) and before ``fit``. ``requested`` is
    the run's setting: True (``--jit``), False (``--no-jit``) or None (:func:`xla_by_default`).
    ``sample_batch`` and ``step_function`` are as in :func:`xla_blocker`. A fallback from a
    request logs one WARNING line with the reason.
    """
    if requested is None and not xla_by_default():
        choice = XlaChoice(False, False, CPU_DEFAULT)
    elif requested is False:
        choice = XlaChoice(False, False, NOT_REQUESTED)
    else:
        reason = xla_blocker(model, sample_batch, step_function)
        choice = XlaChoice(True, reason is None, reason or "the step compiles with XLA")
        if reason is not None:
            log.warning("XLA off for %s: %s", model.name, reason)
    if choice.enabled or not choice.requested:  # a fallback has said so in its warning
        log.info("XLA %s: %s", "on" if choice.enabled else "off", choice.reason)
    model.jit_compile = choice.enabled
    # Step functions made before this call were built with the previous setting.
    model.train_function = model.test_function = model.predict_function = None
    return choice
