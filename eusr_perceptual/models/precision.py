"""The float32 copy of a generator trained under mixed precision (for saving and serving)."""

from __future__ import annotations

import keras


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt under the float32 policy with the same weights; ``model`` itself when
    it already computes in float32. Works for any generator with ``get_config``/``from_config``
    and a no-argument ``build()`` (the project's generator protocol)."""
    if model.dtype_policy.name == "float32":
        return model
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        config = {k: v for k, v in model.get_config().items() if k != "dtype"}
        copy = model.__class__.from_config(config)
        if not copy.built:
            copy.build()
        copy.set_weights(model.get_weights())
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    return copy
