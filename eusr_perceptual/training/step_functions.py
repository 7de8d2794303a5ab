"""The one place the project reaches into Keras' TensorFlow trainer for its step compiler.

``TensorFlowTrainer._make_function(step)`` turns a one-batch step into the compiled
(``tf.function``, XLA when asked), distributed function ``fit`` calls. It is private, so every use
goes through here: the trainers that choose their step in Python (the pre-training path per
scale, the GAN's discriminator warm-up) compile each step with :func:`compiled_step`, and the
multi-worker workaround (:func:`~eusr_perceptual.training.strategy.keras_fit_context`) wraps
every step Keras compiles with :func:`wrapping_steps`. A Keras upgrade that renames it breaks
this module only.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import keras


def compiled_step(model: keras.Model, step: Callable) -> Callable:
    """Keras' compiled, distributed function of ``step(data) -> logs`` for ``model``."""
    return model._make_function(step)


@contextlib.contextmanager
def wrapping_steps(model: keras.Model, wrap: Callable[[Callable], Callable]) -> Iterator[None]:
    """Inside: each step function Keras compiles for ``model`` is compiled as ``wrap(step)``."""
    compile_step = model._make_function
    model._make_function = lambda step: compile_step(wrap(step))
    try:
        yield
    finally:
        del model._make_function  # the class's method again
